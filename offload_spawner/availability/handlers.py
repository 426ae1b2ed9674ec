"""``GET /hub/offload/availability``: live availability for the spawn form.

Authenticated with the hub's own login (cookie or token); answers for the
current user's default server only, with only the targets and accelerator
models their menu offers. Reads memory (the node watcher), never the
Kubernetes API per request.

The handler asks the spawner through :class:`ServesAvailability` (what
:class:`~offload_spawner.availability.admission.AdmissionMixin` provides), so this module
imports nothing of the spawner and the mixin can install the route.
"""

from __future__ import annotations

import json
from typing import Any, Protocol, runtime_checkable

from jupyterhub.handlers import BaseHandler
from jupyterhub.user import User
from tornado import web

AVAILABILITY_PATH = r"/offload/availability"


@runtime_checkable
class ServesAvailability(Protocol):
    """A spawner that answers the availability endpoint (OffloadSpawner, through AdmissionMixin)."""

    async def availability_json(self) -> dict[str, Any]: ...


class AvailabilityHandler(BaseHandler):
    @web.authenticated
    async def get(self) -> None:
        user = self.current_user
        if not isinstance(user, User):
            raise web.HTTPError(403, "availability is shown to users only")
        spawner = user.spawner
        if not isinstance(spawner, ServesAvailability):
            raise web.HTTPError(404)
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.set_header("Cache-Control", "no-store")
        self.write(json.dumps(await spawner.availability_json()))


#: for ``c.JupyterHub.extra_handlers`` when the spawner class is not named "offload"
default_handlers = [(AVAILABILITY_PATH, AvailabilityHandler)]


def install_handlers(app: Any) -> None:
    """Add the availability endpoint (``/hub/offload/availability``) to the hub, once.

    Normally called while the hub applies its config, before ``init_handlers``
    reads ``extra_handlers`` (extended in place: assigning the trait would log
    JupyterHub's deprecation warning meant for admins' own handlers). When the
    spawner class was handed to the hub before the hub object existed (a hub
    built in Python, e.g. tests), the first spawner calls this after start-up
    and the route is added to the running tornado application instead.
    """
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
    # Lazy: the hub application module is large, and a spawner built outside a
    # hub (the CLI, tests) never needs it.
    from jupyterhub.app import JupyterHub

    if JupyterHub.initialized():
        install_handlers(JupyterHub.instance())
