"""The offload_spawner test bed: a real Kubernetes control plane on loopback,
interLink-style virtual nodes, and a local virtual kubelet that runs pods as
processes; optionally a real SLURM cluster behind the real interLink stack. See testbed/README.md and ``python -m testbed --help``.

Names are imported lazily so that ``python -m testbed.virtual_kubelet`` does
not import its own module twice.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "LocalCluster": "cluster",
    "ControlPlane": "controlplane",
    "ensure_built": "controlplane",
    "DEFAULT_NODES": "nodes",
    "INTERLINK_TAINT": "nodes",
    "NodeSpec": "nodes",
    "SlurmCluster": "slurm",
    "InterlinkStack": "interlink",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
