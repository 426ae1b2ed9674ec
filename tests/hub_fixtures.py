"""A real JupyterHub for tests: pytest-jupyterhub's ``hub_app`` (MockHub) with
the real configurable-http-proxy from npm, users logged in through the hub's
login page, groups created through the hub's REST API.

The one stand-in is :class:`RecordingSpawner`: there is no Kubernetes API
server in these tests (the control-plane test bed is a later issue), so its
``start()`` runs OffloadSpawner's real option handling and KubeSpawner's real
pod manifest, records the pod that KubeSpawner would create, and answers for
the "server" with a local HTTP stub so the hub's spawn completes.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from typing import Any, ClassVar

import pytest
from jupyterhub.tests.utils import api_request, async_requests, public_url
from jupyterhub.utils import url_path_join
from kubernetes_asyncio.client import ApiClient
from tornado import web
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from offload_spawner.hub.spawner import OffloadSpawner


class _StubHandler(web.RequestHandler):
    def get(self, *args):
        self.write({"stub": "single-user server stand-in"})


class RecordingSpawner(OffloadSpawner):
    """OffloadSpawner whose start() stops at the Kubernetes API edge (see module doc)."""

    recorded: ClassVar[list[tuple[str, dict]]] = []
    stub_url: ClassVar[str] = ""

    async def start(self):  # type: ignore[override]
        await self.load_user_options()
        pod = await self.get_pod_manifest()
        async with ApiClient() as client:
            self.recorded.append((self.user.name, client.sanitize_for_serialization(pod)))
        self._recording_running = True
        return self.stub_url

    async def poll(self):
        return None if getattr(self, "_recording_running", False) else 0

    async def stop(self, now=False):
        self._recording_running = False


@pytest.fixture
async def stub_server():
    sockets = bind_sockets(0, "127.0.0.1")
    server = HTTPServer(web.Application([(r"/(.*)", _StubHandler)]))
    server.add_sockets(sockets)
    port = sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def requires_chp():
    if shutil.which("configurable-http-proxy") is None:
        pytest.fail(
            "configurable-http-proxy is not on PATH: run `npm install -g configurable-http-proxy` (.ci/run does)"
        )


class HubClient:
    """Talk to a running hub the way a browser and a REST client do."""

    def __init__(self, app):
        self.app = app
        self.cookies: dict[str, Any] = {}

    async def login(self, name: str):
        self.cookies[name] = await self.app.login_user(name)
        return self.cookies[name]

    async def set_groups(self, groups: dict[str, list[str]]) -> None:
        for group, users in groups.items():
            r = await api_request(self.app, "groups", group, method="post", data=json.dumps({"users": users}))
            assert r.status_code in (201, 409), r.text
            if r.status_code == 409:
                r = await api_request(
                    self.app, "groups", group, "users", method="post", data=json.dumps({"users": users})
                )
                r.raise_for_status()

    def spawn_url(self, user: str) -> str:
        return url_path_join(public_url(self.app), "hub/spawn", user)

    async def get_form(self, user: str):
        return await async_requests.get(self.spawn_url(user), cookies=self.cookies[user])

    async def post_form(self, user: str, data: dict[str, str]):
        cookies = self.cookies[user]
        body = {"_xsrf": cookies["_xsrf"], **data}
        return await async_requests.post(self.spawn_url(user), data=body, cookies=cookies, allow_redirects=False)

    async def api_spawn(self, user: str, options: Any):
        return await api_request(self.app, "users", user, "server", method="post", data=json.dumps(options), name=user)

    async def api_user(self, user: str) -> dict:
        r = await api_request(self.app, "users", user)
        r.raise_for_status()
        return r.json()

    async def wait_ready(self, user: str, timeout: float = 20) -> dict:
        for _ in range(int(timeout * 10)):
            model = await self.api_user(user)
            server = model["servers"].get("")
            if server and server["ready"]:
                return model
            await asyncio.sleep(0.1)
        raise AssertionError(f"{user}'s server did not become ready: {model}")

    async def stop(self, user: str) -> None:
        r = await api_request(self.app, "users", user, "server", method="delete")
        assert r.status_code in (202, 204), r.text


@pytest.fixture
async def offload_hub(hub_app, stub_server, requires_chp, tmp_path):
    """Factory: start a hub whose spawner is (a recording) OffloadSpawner.

    ``spawner_config`` is the OffloadSpawner/KubeSpawner config dict.
    """
    RecordingSpawner.recorded = []
    RecordingSpawner.stub_url = stub_server

    async def start(spawner_config: dict, groups: dict[str, list[str]] | None = None, users=()):
        app = await hub_app(
            config={
                "JupyterHub": {"spawner_class": RecordingSpawner},
                "RecordingSpawner": spawner_config,
                # JupyterHub kills the proxy named in an existing pid file: never
                # share the default ./jupyterhub-proxy.pid with another run.
                "ConfigurableHTTPProxy": {"pid_file": str(tmp_path / "proxy.pid")},
            }
        )
        client = HubClient(app)
        for user in users:
            await client.login(user)
        if groups:
            await client.set_groups(groups)
        return client

    yield start
    RecordingSpawner.recorded = []
