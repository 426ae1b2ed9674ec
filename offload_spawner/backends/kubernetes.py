"""This cluster: ``backend: kubernetes`` (the default)."""

from __future__ import annotations

from .base import BackendAdapter


class KubernetesAdapter(BackendAdapter):
    """This cluster: no virtual node, no interLink annotations."""

    name = "kubernetes"
    summary = "this cluster (no `node`)"
    order = 0
    virtual = False


BACKEND = KubernetesAdapter()
