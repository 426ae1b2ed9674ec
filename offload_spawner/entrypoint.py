"""The ``jupyterhub.spawners`` entry point (``c.JupyterHub.spawner_class = "offload"``).

JupyterHub has no start-up hook for spawner classes, but it resolves this
entry point when it applies its configuration inside ``JupyterHub.initialize``.
Resolving the class here is therefore where the start-up check
(:mod:`offload_spawner.startup`) is registered on the running hub.
"""

from __future__ import annotations


def __getattr__(name: str) -> type:
    if name == "OffloadSpawner":
        from .spawner import OffloadSpawner
        from .startup import install_startup_check

        install_startup_check()
        return OffloadSpawner
    raise AttributeError(name)
