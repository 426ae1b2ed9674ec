"""``GET /hub/offload/availability``: live availability for the spawn form.

Authenticated with the hub's own login (cookie or token); answers for the
current user's default server only, with only the targets and accelerator
models their menu offers. Reads memory (the node watcher), never the
Kubernetes API per request.
"""

from __future__ import annotations

import json

from jupyterhub.handlers import BaseHandler
from jupyterhub.user import User
from tornado import web

AVAILABILITY_PATH = r"/offload/availability"


class AvailabilityHandler(BaseHandler):
    @web.authenticated
    async def get(self) -> None:
        from .spawner import OffloadSpawner

        user = self.current_user
        if not isinstance(user, User):
            raise web.HTTPError(403, "availability is shown to users only")
        spawner = user.spawner
        if not isinstance(spawner, OffloadSpawner):
            raise web.HTTPError(404)
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.set_header("Cache-Control", "no-store")
        self.write(json.dumps(await spawner.availability_json()))


#: for ``c.JupyterHub.extra_handlers`` when the spawner class is not named "offload"
default_handlers = [(AVAILABILITY_PATH, AvailabilityHandler)]
