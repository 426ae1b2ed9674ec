"""offload_spawner: run JupyterHub servers and Dask clusters on interLink virtual nodes."""

from ._version import __version__

__all__ = ["OffloadSpawner", "__version__"]


def __getattr__(name: str) -> type:
    # Import the spawner lazily: the pure core must not pull in KubeSpawner.
    # Resolving it from a jupyterhub_config.py also registers the hub start-up
    # check (see offload_spawner.entrypoint).
    if name == "OffloadSpawner":
        from .entrypoint import OffloadSpawner

        return OffloadSpawner
    raise AttributeError(name)
