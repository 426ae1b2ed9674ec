"""The ``jupyterhub.spawners`` entry point (``c.JupyterHub.spawner_class = "offload"``).

JupyterHub has no start-up hook for spawner classes, but it resolves this
entry point when it applies its configuration inside ``JupyterHub.initialize``.
Resolving the class here is therefore where the start-up check
(:mod:`offload_spawner.hub.startup`) is registered on the running hub.
"""

from __future__ import annotations

from .hub.spawner import OffloadSpawner as _OffloadSpawner
from .hub.startup import install_startup_check


def __getattr__(name: str) -> type[_OffloadSpawner]:
    # An attribute, not a module-level name: the check is registered each time
    # the hub resolves the class, i.e. once JupyterHub is initialized.
    if name == "OffloadSpawner":
        install_startup_check()
        return _OffloadSpawner
    raise AttributeError(name)
