"""offload_spawner: run JupyterHub servers and Dask clusters on interLink virtual nodes."""

from ._version import __version__

__all__ = ["__version__", "OffloadSpawner"]


def __getattr__(name):
    # Import the spawner lazily: the pure core must not pull in KubeSpawner.
    if name == "OffloadSpawner":
        from .spawner import OffloadSpawner

        return OffloadSpawner
    raise AttributeError(name)
