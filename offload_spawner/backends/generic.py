from __future__ import annotations

from .base import BackendAdapter


class GenericAdapter(BackendAdapter):
    """Any other interLink plugin: only the target's own static ``annotations``."""
