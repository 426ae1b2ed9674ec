from __future__ import annotations

from .base import BackendAdapter


class KubernetesAdapter(BackendAdapter):
    """This cluster: no virtual node, no interLink annotations."""

    virtual = False
