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

from .catalog import CatalogError

log = logging.getLogger(__name__)


def check_hub_config(app: Any) -> None:
    """Validate the catalog of ``app`` (a JupyterHub) if it uses OffloadSpawner."""
    from .config_loader import spawner_config
    from .spawner import OffloadSpawner, check_catalog
    from .summary import summarize

    cls = app.spawner_class
    if not (isinstance(cls, type) and issubclass(cls, OffloadSpawner)):
        return
    try:
        catalog = check_catalog(spawner_config(app.config, cls), cls)
    except CatalogError as e:
        app.log.critical("%s", e)
        raise SystemExit(1) from None
    app.log.info("offload_spawner: %s", summarize(catalog).splitlines()[0])
    from .reachability import catalog_warnings

    for warning in catalog_warnings(catalog):
        app.log.warning("offload_spawner: %s", warning)


def install_startup_check() -> None:
    """Register :func:`check_hub_config` on the running JupyterHub, once."""
    try:
        from jupyterhub.app import JupyterHub
    except ImportError:  # pragma: no cover - jupyterhub is a dependency
        return
    if not JupyterHub.initialized():
        return
    app = JupyterHub.instance()
    if getattr(app, "_offload_spawner_check", False):
        return
    app._offload_spawner_check = True
    app.observe(lambda _change: check_hub_config(app), names=["session_factory"])
    install_handlers(app)


def install_handlers(app: Any) -> None:
    """Add the availability endpoint (``/hub/offload/availability``) to the hub, once.

    Normally called while the hub applies its config, before ``init_handlers``
    reads ``extra_handlers`` (extended in place: assigning the trait would log
    JupyterHub's deprecation warning meant for admins' own handlers). When the
    spawner class was handed to the hub before the hub object existed (a hub
    built in Python, e.g. tests), the first spawner calls this after start-up
    and the route is added to the running tornado application instead.
    """
    from .handlers import default_handlers

    if getattr(app, "_offload_spawner_handlers", False):
        return
    app._offload_spawner_handlers = True
    web_app = getattr(app, "tornado_application", None)
    if web_app is None:
        app.extra_handlers.extend(h for h in default_handlers if h not in app.extra_handlers)
    else:
        web_app.add_handlers(".*$", app.add_url_prefix(app.hub_prefix, list(default_handlers)))


def install_handlers_on_running_hub() -> None:
    """:func:`install_handlers` on the hub of this process, if there is one."""
    try:
        from jupyterhub.app import JupyterHub
    except ImportError:  # pragma: no cover - jupyterhub is a dependency
        return
    if JupyterHub.initialized():
        install_handlers(JupyterHub.instance())
