"""Check the catalog when the hub starts, so a bad config stops the hub.

JupyterHub has no start-up hook for spawner classes, but it imports the
spawner class (our entry point, :mod:`offload_spawner.entrypoint`) while it
applies its config inside ``JupyterHub.initialize``. At that point we register
an observer on the hub's ``session_factory`` trait, which ``init_db`` sets once
config and logging are ready and long before any request is served. The
observer validates the catalog from the hub's own config and exits with
status 1 and the error's key paths.
"""

from __future__ import annotations

import logging
from typing import Any

from ..availability.handlers import install_handlers
from ..pipeline.catalog import CatalogError
from ..pipeline.reachability import catalog_warnings
from ..pipeline.summary import summarize
from .catalog_check import check_catalog
from .config_loader import spawner_config
from .spawner import OffloadSpawner

log = logging.getLogger(__name__)


def check_hub_config(app: Any) -> None:
    """Validate the catalog of ``app`` (a JupyterHub) if it uses OffloadSpawner."""
    cls = app.spawner_class
    if not (isinstance(cls, type) and issubclass(cls, OffloadSpawner)):
        return
    try:
        catalog = check_catalog(spawner_config(app.config, cls), cls)
    except CatalogError as e:
        app.log.critical("%s", e)
        raise SystemExit(1) from None
    app.log.info("offload_spawner: %s", summarize(catalog).splitlines()[0])
    for warning in catalog_warnings(catalog):
        app.log.warning("offload_spawner: %s", warning)


def install_startup_check() -> None:
    """Register :func:`check_hub_config` on the running JupyterHub, once."""
    from jupyterhub.app import JupyterHub  # lazy, as in handlers.install_handlers_on_running_hub

    if not JupyterHub.initialized():
        return
    app = JupyterHub.instance()
    if getattr(app, "_offload_spawner_check", False):
        return
    app._offload_spawner_check = True
    app.observe(lambda _change: check_hub_config(app), names=["session_factory"])
    install_handlers(app)
