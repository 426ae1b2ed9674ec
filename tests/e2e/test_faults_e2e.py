"""Faults on the test bed: each leaves no pod, no token Secret and no remote job behind.

* kube-apiserver restarts (the test bed's own binary, same port, certificates
  and etcd: :meth:`testbed.controlplane.ControlPlane.restart_apiserver`) while a
  spawn waits for its pod, and is down when a stop is asked for;
* the hub restarts (a new MockHub on the same database, ports and proxy
  address, the first one stopped without stopping servers, as JupyterHub's own
  ``test_resume_spawners`` does with ``cleanup_servers = False``) while a
  server runs: the new hub finds the server, rotates its token Secret with the
  target's token policy, and stopping it removes pod and Secret;
* the interLink API server of the real interLink stack (interLink's virtual
  kubelet, API server and SLURM plugin on a real SLURM) stops during a spawn:
  the spawn fails with the site's name, the virtual kubelet then reports
  ``InterlinkPingFailed``, the availability endpoint and the form show the
  target down, a new spawn is refused before anything is created, and no SLURM
  job exists.

Checks after a restart use the test bed's synchronous admin client (a new
connection per request): a pooled connection of the async one may be one the
old API server dropped.
"""

from __future__ import annotations

import asyncio
import base64
import os
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from jupyterhub.tests.mocking import MockHub
from jupyterhub.tests.utils import async_requests, public_url
from jupyterhub.utils import url_path_join
from kubespawner import KubeSpawner

from offload_spawner.identity.server_secret import ACCESS_TOKEN_KEY, REFRESH_TOKEN_KEY, secret_name
from offload_spawner.remote.lifecycle import SITE_UNREACHABLE
from test_tokens import jwt
from testbed.controlplane import free_ports
from testbed.interlink import DEFAULT_NODE
from testbed.virtual_kubelet import QUEUE_ANNOTATION

from .conftest import NAMESPACE, server_on_a_local_job
from .test_spawn_e2e import reach_jupyterlab

#: Seconds the imitation keeps the pod queued after binding it: the restart falls in them.
QUEUE_SECONDS = 6
LEONARDO: dict[str, Any] = {
    "display_name": "CINECA Leonardo (SLURM)",
    "backend": "slurm",
    "node": "vk-leonardo",
    "offload": "session",
    "start_timeout": 150,
    "annotations": {QUEUE_ANNOTATION: str(QUEUE_SECONDS)},
}
PROFILES = [{"display_name": "Analysis", "slug": "analysis"}]
SPAWN = {"profile": "analysis", "target": "leonardo"}
#: What no message a user reads may hold: a Python exception's class or an internal address.
NOT_FOR_USERS = ("Traceback", "ClientConnectorError", "ServerDisconnectedError", "aiohttp", "Errno")


# --- helpers ------------------------------------------------------------------------


def exists(cluster, kind: str, name: str) -> bool:
    status, body = cluster.control_plane.admin().request("GET", f"/api/v1/namespaces/{NAMESPACE}/{kind}/{name}")
    assert status in (200, 404), (status, body)
    return status == 200


async def until(what: str, check, timeout: float) -> Any:
    """Poll ``check()`` (sync or async) until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        assert time.monotonic() < deadline, f"not {what} after {timeout:.0f}s"
        await asyncio.sleep(0.5)


async def assert_nothing_left(cluster, pod_name: str, timeout: float = 60) -> None:
    """No pod and no token Secret of this server (the garbage collector may take a moment)."""
    await until(f"pod {pod_name} gone", lambda: not exists(cluster, "pods", pod_name), timeout)
    await until(
        f"Secret {secret_name(pod_name)} gone", lambda: not exists(cluster, "secrets", secret_name(pod_name)), timeout
    )


async def spawn_outcome(hub, user: str, timeout: float) -> str | None:
    """Wait until the user's spawn is over: None when the server is ready, else the
    message the spawn page shows."""
    deadline = time.monotonic() + timeout
    while True:
        model = await hub.api_user(user)
        server = model["servers"].get("")
        if server and server["ready"]:
            return None
        spawner = hub.app.users[user].spawner
        future = spawner._spawn_future
        if not server and future is not None and future.done():
            error = future.exception()
            assert error is not None, model
            return getattr(error, "jupyterhub_message", None) or str(error)
        assert time.monotonic() < deadline, f"{user}'s spawn still pending after {timeout}s: {model}"
        await asyncio.sleep(0.5)


def assert_for_users(message: str) -> None:
    assert message.strip(), "an empty message"
    for word in NOT_FOR_USERS:
        assert word not in message, message


# --- the API server restarts ------------------------------------------------------------


@pytest.fixture
def fresh_controllers_after(cluster) -> Any:
    """The next test gets a sound scheduler: kube-scheduler v1.35 that saw the API server
    restart has been seen to log "Scheduler cache is corrupted" and schedule nothing more
    (testbed/controlplane.py, restart_controllers)."""
    yield
    cluster.control_plane.restart_controllers()


async def test_an_apiserver_restart_while_a_spawn_waits_for_its_pod(spawn_hub, cluster, admin, fresh_controllers_after):
    hub = await spawn_hub({"offload_targets": {"leonardo": LEONARDO}, "profile_list": PROFILES}, {}, ("carol",))
    pod_name = hub.pod_name("carol")
    r = await hub.api_spawn("carol", SPAWN)
    assert r.status_code in (201, 202), r.text
    # Bound to the virtual node and queued at the "site": the spawn waits for the pod.
    await admin.wait_pod(pod_name, lambda p: bool(p and p["spec"].get("nodeName")), "bound", timeout=60)
    assert exists(cluster, "secrets", secret_name(pod_name))

    await asyncio.to_thread(cluster.control_plane.restart_apiserver, 2.0)

    failure = await spawn_outcome(hub, "carol", timeout=180)
    if failure is None:
        await reach_jupyterlab(hub, "carol")
    else:
        assert_for_users(failure)
    await hub.stop("carol")
    await hub.wait_stopped("carol", timeout=90)
    await assert_nothing_left(cluster, pod_name)


async def test_a_stop_asked_for_while_the_apiserver_is_down_deletes_pod_and_secret(
    spawn_hub, cluster, fresh_controllers_after
):
    """KubeSpawner gives up on the pod delete at the first refused connection, and
    JupyterHub then forgets the server (jupyterhub/user.py, User.stop): the pod and its
    Secret would keep running unseen. The delete is tried again until the API is back."""
    hub = await spawn_hub(
        {"offload_targets": {"leonardo": {**LEONARDO, "annotations": {}}}, "profile_list": PROFILES}, {}, ("carol",)
    )
    pod_name = hub.pod_name("carol")
    r = await hub.api_spawn("carol", SPAWN)
    assert r.status_code in (201, 202), r.text
    await hub.wait_ready("carol", timeout=90)
    assert exists(cluster, "secrets", secret_name(pod_name))

    await asyncio.to_thread(cluster.control_plane.stop_apiserver)
    try:
        stopping = asyncio.ensure_future(hub.stop("carol"))
        await asyncio.sleep(3)  # the hub's first delete requests are refused
    finally:
        await asyncio.to_thread(cluster.control_plane.start_apiserver)
    await stopping
    await hub.wait_stopped("carol", timeout=90)
    await assert_nothing_left(cluster, pod_name)


# --- the hub restarts ------------------------------------------------------------------


def access_token(n: int) -> str:
    return jwt(
        {
            "sub": "7f0c-carol",
            "iss": "https://iam.example.org/",
            "exp": int(time.time()) + 3600,
            "jti": f"access-{n}-{os.urandom(8).hex()}",
        }
    )


def refresh_token(n: int) -> str:
    return jwt({"jti": f"refresh-{n}-{os.urandom(8).hex()}"})


@pytest.fixture
def shared_hub_db(tmp_path, monkeypatch) -> str:
    """One database for the hub and the hub that replaces it (MockHub reads this variable)."""
    url = f"sqlite:///{tmp_path / 'jupyterhub.sqlite'}"
    monkeypatch.setenv("JUPYTERHUB_TEST_DB_URL", url)
    return url


async def stop_hub_leaving_servers(app) -> None:
    """Stop a MockHub as a restarted hub process would go away, servers left running:
    JupyterHub's ``cleanup`` with ``cleanup_servers = False`` (the proxy goes with it),
    then the HTTP server and the periodic tasks (not JupyterHub's ``stop``, which would
    also cancel every task of this test's event loop)."""
    app.cleanup_servers = False
    for user in app.users.values():
        for spawner in user.spawners.values():
            spawner.stop_polling()
            task = getattr(spawner, "_rotation_task", None)
            if task is not None and not task.done():
                task.cancel()
    await app.cleanup()
    if app.http_server:
        app.http_server.stop()
    for callback in app._periodic_callbacks.values():
        callback.stop()
    if app.metrics_collector:
        app.metrics_collector.stop()
    # A new process starts with no reflectors and no API clients.
    await KubeSpawner._stop_all_reflectors()
    app.db.close()
    app.users.clear()  # nothing of this hub is stopped again at the fixture's teardown


def secret_value(cluster, pod_name: str, key: str) -> str:
    path = f"/api/v1/namespaces/{NAMESPACE}/secrets/{secret_name(pod_name)}"
    secret = cluster.control_plane.admin().call("GET", path)
    return base64.b64decode(secret["data"][key]).decode()


async def test_a_restarted_hub_finds_the_server_rotates_its_tokens_and_stops_it(
    spawn_hub, cluster, crypt_key, shared_hub_db, monkeypatch
):
    hub_port, proxy_port, proxy_api_port = free_ports(3)
    same_addresses = {
        "JupyterHub": {"hub_port": hub_port, "bind_url": f"http://127.0.0.1:{proxy_port}/@/space%20word/"},
        "ConfigurableHTTPProxy": {"api_url": f"http://127.0.0.1:{proxy_api_port}"},
    }
    # The refresh token is delivered too (an admin's opt-in): its rotation shows that the
    # target's token policy, not the default one, rotates the Secret after the restart.
    targets = {"leonardo": {**LEONARDO, "annotations": {}, "tokens": {"refresh_token": True}}}
    spawner_config = {"offload_targets": targets, "profile_list": PROFILES}
    hub = await spawn_hub(spawner_config, {}, ("carol",), hub_config=same_addresses)
    hub.app.authenticator.enable_auth_state = True
    user = hub.app.users["carol"]
    first = {"access_token": access_token(1), "refresh_token": refresh_token(1)}
    await user.save_auth_state({**first, "id_token": "x", "scope": []})
    r = await hub.api_spawn("carol", SPAWN)
    assert r.status_code in (201, 202), r.text
    await hub.wait_ready("carol", timeout=90)
    pod_name = hub.pod_name("carol")
    pod_uid = cluster.control_plane.admin().call("GET", f"/api/v1/namespaces/{NAMESPACE}/pods/{pod_name}")["metadata"][
        "uid"
    ]
    assert secret_value(cluster, pod_name, REFRESH_TOKEN_KEY) == first["refresh_token"]

    await stop_hub_leaving_servers(hub.app)
    assert exists(cluster, "pods", pod_name) and exists(cluster, "secrets", secret_name(pod_name))

    # MockHub empties the users of a database it opens (test_clean_db, not a config trait).
    clean_init_db = MockHub.init_db

    def init_db_keeping_users(app):
        app.test_clean_db = False
        clean_init_db(app)

    monkeypatch.setattr(MockHub, "init_db", init_db_keeping_users)
    hub = await spawn_hub(spawner_config, {}, ("carol",), hub_config=same_addresses)
    hub.app.authenticator.enable_auth_state = True
    # Found again: the same pod, ready, reachable through the new proxy with the new hub's tokens.
    await hub.wait_ready("carol", timeout=60)
    spawner = hub.app.users["carol"].spawner
    assert spawner._plan is None  # nothing of the old hub's memory: what follows comes from its state
    assert (
        cluster.control_plane.admin().call("GET", f"/api/v1/namespaces/{NAMESPACE}/pods/{pod_name}")["metadata"]["uid"]
        == pod_uid
    )
    await reach_jupyterlab(hub, "carol")

    # New tokens in the auth_state: the next poll rotates the Secret, refresh token included.
    second = {"access_token": access_token(2), "refresh_token": refresh_token(2)}
    await hub.app.users["carol"].save_auth_state({**second, "id_token": "x", "scope": []})
    assert await spawner.poll() is None
    assert await asyncio.wait_for(spawner._rotation_task, 30) is True
    assert secret_value(cluster, pod_name, ACCESS_TOKEN_KEY) == second["access_token"]
    assert secret_value(cluster, pod_name, REFRESH_TOKEN_KEY) == second["refresh_token"]
    owner = cluster.control_plane.admin().call(
        "GET", f"/api/v1/namespaces/{NAMESPACE}/secrets/{secret_name(pod_name)}"
    )["metadata"]["ownerReferences"]
    assert [o["uid"] for o in owner] == [pod_uid]

    await hub.stop("carol")
    await hub.wait_stopped("carol", timeout=60)
    await assert_nothing_left(cluster, pod_name)


# --- the site's interLink API server goes away (real interLink stack) -------------------

SLURM_TARGET: dict[str, Any] = {
    "display_name": "Local SLURM (interLink)",
    "backend": "slurm",
    "node": DEFAULT_NODE,
    "offload": "session",
    "start_timeout": 150,
    "limits": {"cores": 2, "memory": "4G"},
    "slurm": {"partition": "boost_usr_prod", "account": "icsc_ai", "qos": "normal", "time_limit": "01:00:00"},
}
SLURM_PROFILES = [
    {
        "display_name": "Analysis",
        "slug": "analysis",
        "cores": {"choices": [1], "default": 1},
        "memory": {"choices": ["1G"], "default": "1G"},
    }
]


@pytest.fixture
async def interlink_down(interlink_stack) -> AsyncIterator[Any]:
    """The interLink API server stopped for the test, started again afterwards (the
    virtual kubelet's next ping then makes the node Ready again)."""
    yield interlink_stack
    if not interlink_stack._process("interlink").alive():
        interlink_stack.start_component("interlink")
    await until("vk-slurm Ready again", interlink_stack.node_ready, 90)


async def availability(hub, user: str) -> dict[str, Any]:
    r = await async_requests.get(
        url_path_join(public_url(hub.app), "hub/offload/availability"), cookies=hub.cookies[user]
    )
    assert r.status_code == 200, r.text[:500]
    return r.json()


async def test_interlink_down_during_a_spawn_fails_it_shows_the_site_down_and_leaves_no_job(
    spawn_hub, cluster, interlink_down
):
    stack, slurm = interlink_down, interlink_down.slurm
    cluster.control_plane.bind_node_reader()  # availability needs to read nodes
    try:
        hub = await spawn_hub(
            {"offload_targets": {"slurm": SLURM_TARGET}, "profile_list": SLURM_PROFILES, **server_on_a_local_job()},
            {},
            ("carol",),
            hub_config={"JupyterHub": {"spawner_class": "offload"}},
        )
        await until("the target up", lambda: _in_state(hub, "up"), 60)
        pod_name = hub.pod_name("carol")
        submitted, jobs = stack.pods_submitted(), dict(slurm.jobs())

        # The site's interLink API server goes away; the node is still Ready (it pings every 30 s).
        stack.stop_component("interlink")
        assert stack.node_ready()
        r = await hub.api_spawn("carol", {"profile": "analysis", "target": "slurm"})
        if r.status_code == 503:  # failed before the hub's slow_spawn_timeout: the answer says why
            failure = r.json()["message"]
        else:
            assert r.status_code in (201, 202), r.text
            failure = await spawn_outcome(hub, "carol", timeout=120)
        assert failure is not None, "a server started with the site's interLink API server down"
        # interLink's virtual kubelet fails the pod, ProviderFailed with a dump of its HTTP
        # request as the message (interLink pkg/virtualkubelet/virtualkubelet.go,
        # handleRemoteExecutionFailure; execute.go, createRequest): the user reads this instead.
        assert failure == f"Local SLURM (interLink) could not run your server: {SITE_UNREACHABLE}", failure
        await assert_nothing_left(cluster, pod_name)

        # The next ping fails: the node says so, and so do the endpoint and the form.
        await until("InterlinkPingFailed on vk-slurm", stack.ping_failed, 75)
        target = await until("the target down", lambda: _in_state(hub, "down"), 30)
        assert target["reason"].startswith("interLink ping failed: "), target
        form = (await hub.get_form("carol")).text
        assert "interLink ping failed" in form
        # A new spawn is refused before anything is created, in the user's words.
        r = await hub.api_spawn("carol", {"profile": "analysis", "target": "slurm"})
        assert r.status_code == 400, r.text
        message = r.json()["message"]
        assert message.startswith("Local SLURM (interLink) is down (interLink ping failed: "), message
        assert message.endswith("try again later or pick another target."), message
        assert not exists(cluster, "pods", pod_name)

        # Nothing reached SLURM: no job was submitted, none is queued or running.
        assert stack.pods_submitted() == submitted
        assert dict(slurm.jobs()) == jobs
        assert not slurm.active_jobs()
    finally:
        cluster.control_plane.unbind_node_reader()


_LAST_SEEN: list[dict[str, Any]] = []


async def _in_state(hub, status: str) -> dict[str, Any] | None:
    target = (await availability(hub, "carol"))["targets"]["slurm"]
    if target["status"] != status and (not _LAST_SEEN or _LAST_SEEN[-1] != target):
        _LAST_SEEN.append(target)
        print(f"availability of slurm: {target}")  # shown when the wait fails
    return target if target["status"] == status else None
