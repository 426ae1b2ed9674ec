"""Any other interLink plugin: ``backend: generic``."""

from __future__ import annotations

from .base import BackendAdapter


class GenericAdapter(BackendAdapter):
    """Any other interLink plugin: only the target's own static ``annotations``."""

    name = "generic"
    summary = "any other interLink plugin (only the target's own `annotations`)"
    order = 90


BACKEND = GenericAdapter()
