"""Live availability and admission against the real control plane.

The hub is started with ``spawner_class = "offload"`` (the entry point), which
also registers ``/hub/offload/availability``. The node watcher runs on
KubeSpawner's reflectors with the hub's ServiceAccount: with the opt-in
ClusterRole ``offload-spawner-nodes`` bound (the first two tests) or with
Zero-to-JupyterHub's hub Role only (the last one).
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from jupyterhub.tests.utils import async_requests, auth_header, public_url
from jupyterhub.utils import url_path_join
from kubernetes_asyncio.client import rest

TARGETS: dict[str, Any] = {
    "cluster": {"display_name": "This cluster", "backend": "kubernetes"},
    "leonardo": {
        "display_name": "CINECA Leonardo (SLURM)",
        "backend": "slurm",
        "node": "vk-leonardo",
        "offload": "session",
        "allowed_groups": ["ai-infn"],
        "limits": {"cores": 32, "memory": "480G", "accelerators": {"nvidia.com/gpu": 4}},
    },
    "fpga": {
        "display_name": "FPGA box (Docker)",
        "backend": "docker",
        "node": "vk-docker",
        "offload": "session",
        "allowed_groups": ["fpga"],
        "limits": {"cores": 16, "memory": "64G", "accelerators": {"xilinx.com/fpga": 2}},
    },
}
PROFILES: list[dict[str, Any]] = [
    {
        "display_name": "Analysis",
        "slug": "analysis",
        "cores": {"choices": [1, 2], "default": 1},
        "memory": {"choices": ["1G", "2G"], "default": "1G"},
        "accelerators": {
            "nvidia.com/gpu": {"display_name": "NVIDIA GPU", "models": ["a100"], "max": 4},
            "xilinx.com/fpga": {"display_name": "AMD/Xilinx FPGA", "models": ["u55c"], "max": 2},
        },
    }
]
STRATEGIC = "application/strategic-merge-patch+json"
GPU_REQUEST = {
    "profile": "analysis",
    "target": "leonardo",
    "accelerator": "nvidia.com/gpu:a100",
    "accelerator_count": 1,
}


@pytest.fixture
def node_reader(cluster) -> AsyncIterator[None]:
    """The opt-in ClusterRole bound to the hub's ServiceAccount for this test."""
    cluster.control_plane.bind_node_reader()
    yield
    cluster.control_plane.unbind_node_reader()


async def start_hub(spawn_hub, users: tuple[str, ...], groups: dict[str, list[str]]):
    return await spawn_hub(
        {"offload_targets": TARGETS, "profile_list": PROFILES},
        groups,
        users,
        hub_config={"JupyterHub": {"spawner_class": "offload"}},
    )


async def availability(hub, user: str) -> dict[str, Any]:
    url = url_path_join(public_url(hub.app), "hub/offload/availability")
    r = await async_requests.get(url, cookies=hub.cookies[user])
    assert r.status_code == 200, r.text[:500]
    assert r.headers["Content-Type"].startswith("application/json")
    return r.json()


async def form_html(hub, user: str) -> str:
    r = await hub.get_form(user)
    assert r.status_code == 200, r.text[:500]
    return r.text


async def until(what: str, check: Callable[[], Any], timeout: float) -> float:
    """Poll ``check`` (async) until true; return how long it took."""
    t0 = time.monotonic()
    while True:
        if await check():
            return time.monotonic() - t0
        assert time.monotonic() - t0 < timeout, f"not {what} after {timeout}s"
        await asyncio.sleep(0.05)


def patch_node_status(cluster, node: str, status: dict[str, Any]) -> None:
    cluster.control_plane.admin().call(
        "PATCH", f"/api/v1/nodes/{node}/status", {"status": status}, content_type=STRATEGIC
    )


def ready_condition(ok: bool, message: str) -> dict[str, Any]:
    return {
        "conditions": [
            {
                "type": "Ready",
                "status": "True" if ok else "False",
                "reason": "InterlinkPingSuccessful" if ok else "InterlinkPingFailed",
                "message": message,
            }
        ]
    }


_COUNTING: contextvars.ContextVar[bool] = contextvars.ContextVar("count_api_calls", default=False)


@pytest.fixture
def api_calls(monkeypatch) -> list[str]:
    """Kubernetes API requests made by code running with ``_COUNTING`` set (this test's
    own task), wrapping the client's one request method; the watcher's background
    tasks have their own context and are not counted."""
    calls: list[str] = []
    original = rest.RESTClientObject.request

    async def counting(self, method, url, *args, **kwargs):
        if _COUNTING.get():
            calls.append(f"{method} {url}")
        return await original(self, method, url, *args, **kwargs)

    monkeypatch.setattr(rest.RESTClientObject, "request", counting)
    return calls


async def test_form_and_endpoint_follow_the_virtual_node(spawn_hub, node_reader, cluster, api_calls):
    hub = await start_hub(spawn_hub, ("carol", "bob"), {"ai-infn": ["carol"], "cms": ["bob"]})

    # The first render starts the watcher (and waits for its first load).
    await until("up", lambda: _contains(form_html(hub, "carol"), "NVIDIA GPU a100: 4 total, 0 used, 4 available"), 15)
    data = await availability(hub, "carol")
    assert set(data["targets"]) == {"cluster", "leonardo"}  # not fpga: carol may not use it
    leonardo = data["targets"]["leonardo"]
    assert leonardo["status"] == "up" and leonardo["reason"] == "interLink ping OK"
    assert leonardo["accelerators"] == {"nvidia.com/gpu:a100": {"total": 4, "used": 0, "available": 4}}
    assert leonardo["cores_total"] == 32
    # bob sees neither of the virtual-node targets; without a login there is nothing.
    assert set((await availability(hub, "bob"))["targets"]) == {"cluster"}
    r = await async_requests.get(url_path_join(public_url(hub.app), "hub/offload/availability"), allow_redirects=False)
    assert r.status_code in (302, 403) and "vk-leonardo" not in r.text and "Leonardo" not in r.text

    # Zero Kubernetes API calls per form render / availability answer, once the watcher runs.
    spawner = hub.app.users["carol"].spawner
    token = _COUNTING.set(True)
    try:
        for _ in range(5):
            assert "4 available" in await spawner.get_options_form()
            assert (await spawner.availability_json())["targets"]["leonardo"]["status"] == "up"
    finally:
        _COUNTING.reset(token)
    assert api_calls == []

    try:
        # The site's plugin reports only 2 GPUs now.
        patch_node_status(cluster, "vk-leonardo", {"allocatable": {"nvidia.com/gpu": "2"}})
        latency = await until(
            "showing 2 GPUs", lambda: _contains(form_html(hub, "carol"), "a100: 2 total, 0 used, 2 available"), 5
        )
        print(f"form followed allocatable in {latency:.3f}s")
        latency = await until(
            "JSON 2 GPUs",
            lambda: _json_has(
                hub, "carol", lambda t: t["leonardo"]["accelerators"]["nvidia.com/gpu:a100"]["total"] == 2
            ),
            5,
        )
        print(f"endpoint followed allocatable in {latency:.3f}s")

        # The interLink ping fails: the target is down, with the site's reason, and disabled.
        t0 = time.monotonic()
        patch_node_status(cluster, "vk-leonardo", ready_condition(False, "plugin did not answer"))
        await until("JSON down", lambda: _json_has(hub, "carol", lambda t: t["leonardo"]["status"] == "down"), 5)
        print(f"endpoint followed readiness in {time.monotonic() - t0:.3f}s")
        page = await form_html(hub, "carol")
        assert "Down: interLink ping failed: plugin did not answer" in page
        assert '<option value="leonardo" disabled>CINECA Leonardo (SLURM) (down)</option>' in page
        assert '<option value="cluster" selected>' in page  # the default moved off the down target
        r = await hub.api_spawn("carol", GPU_REQUEST)
        assert r.status_code == 400, r.text
        assert "CINECA Leonardo (SLURM) is down (interLink ping failed: plugin did not answer)" in r.json()["message"]
    finally:
        patch_node_status(
            cluster, "vk-leonardo", {"allocatable": {"nvidia.com/gpu": "4"}, **ready_condition(True, "pong")}
        )
    await until("up again", lambda: _json_has(hub, "carol", lambda t: t["leonardo"]["status"] == "up"), 5)


async def _contains(page, text: str) -> bool:
    return text in await page


async def _json_has(hub, user: str, test: Callable[[dict], bool]) -> bool:
    return test((await availability(hub, user))["targets"])


async def spawn_all_at_once(hub, users: tuple[str, ...], options: dict[str, Any]) -> list[tuple[int, str]]:
    """POST every user's spawn request to the REST API at the same time (the hub
    test helpers send one request at a time, which would hide any race)."""
    headers = {user: {"Sec-Fetch-Mode": "cors", **auth_header(hub.app.db, user)} for user in users}
    base = public_url(hub.app, path="hub")

    async def one(session: aiohttp.ClientSession, user: str) -> tuple[int, str]:
        url = url_path_join(base, "api/users", user, "server")
        async with session.post(url, data=json.dumps(options), headers=headers[user]) as r:
            return r.status, await r.text()

    async with aiohttp.ClientSession() as session:
        return list(await asyncio.gather(*(one(session, u) for u in users)))


async def test_twenty_concurrent_spawns_for_four_gpus(spawn_hub, node_reader, admin):
    """20 users ask for one a100 each at the same moment; vk-leonardo has 4.
    The 4 admitted servers are the real jupyterhub-singleuser; the 16 refused
    spawns create nothing."""
    users = tuple(f"gpu{i:02d}" for i in range(20))
    t0 = time.monotonic()
    hub = await start_hub(spawn_hub, users, {"ai-infn": list(users)})
    print(f"hub with 20 users in {time.monotonic() - t0:.1f}s")
    data = await availability(hub, users[0])  # starts the watcher
    if data["targets"]["leonardo"]["status"] != "up":
        await until("watcher up", lambda: _json_has(hub, users[0], lambda t: t["leonardo"]["status"] == "up"), 10)

    t0 = time.monotonic()
    responses = await spawn_all_at_once(hub, users, GPU_REQUEST)
    print(f"20 concurrent spawn requests answered in {time.monotonic() - t0:.1f}s")
    admitted = [u for u, (status, _) in zip(users, responses, strict=True) if status in (201, 202)]
    refused = [
        (u, status, body) for u, (status, body) in zip(users, responses, strict=True) if status not in (201, 202)
    ]
    assert len(admitted) == 4, list(zip(users, responses, strict=True))
    assert len(refused) == 16
    for user, status, body in refused:
        assert status == 400, body
        assert json.loads(body)["message"] == (
            "All 4 NVIDIA GPU a100 on CINECA Leonardo (SLURM) are in use; try again later or pick another target."
        )
        assert (await hub.api_user(user))["servers"] == {}

    t0 = time.monotonic()
    await asyncio.gather(*(hub.wait_ready(u, timeout=90) for u in admitted))
    print(f"4 servers ready in {time.monotonic() - t0:.1f}s")
    pods = await admin.pods()
    assert sorted(p["metadata"]["name"] for p in pods) == sorted(hub.pod_name(u) for u in admitted)
    assert all(p["spec"]["nodeName"] == "vk-leonardo" for p in pods)
    # Bound and counted as used; nothing is double-counted with the reservations.
    leonardo = (await availability(hub, users[0]))["targets"]["leonardo"]
    assert leonardo["accelerators"]["nvidia.com/gpu:a100"] == {"total": 4, "used": 4, "available": 0}

    # A stopped server gives its GPU back.
    await hub.stop(admitted[0])
    await hub.wait_stopped(admitted[0])
    await admin.wait_pod(hub.pod_name(admitted[0]), lambda p: p is None, "deleted", timeout=30)
    await until(
        "one GPU free",
        lambda: _json_has(
            hub, users[0], lambda t: t["leonardo"]["accelerators"]["nvidia.com/gpu:a100"]["available"] == 1
        ),
        5,
    )


async def test_with_the_hub_role_only_availability_is_unknown_and_spawns_go_ahead(spawn_hub, admin, caplog):
    hub = await start_hub(spawn_hub, ("carol",), {"ai-infn": ["carol"]})
    with caplog.at_level(logging.WARNING):
        page = await form_html(hub, "carol")
        page = await form_html(hub, "carol")
    assert "This site does not publish its free capacity to this hub" in page
    assert " disabled" not in page.split('id="offload-spawner-form"')[1]
    data = await availability(hub, "carol")
    assert data["targets"]["leonardo"]["status"] == "unknown"
    assert data["targets"]["leonardo"]["accelerators"] == {}
    warnings = [r for r in caplog.records if "may not list nodes" in r.getMessage()]
    assert len(warnings) == 1, [r.getMessage() for r in caplog.records]
    assert "helm-values/rbac-availability.yaml" in warnings[0].getMessage()

    # Not blocked: the spawn creates its pod on vk-leonardo.
    r = await hub.api_spawn("carol", GPU_REQUEST)
    assert r.status_code in (201, 202), r.text
    pod = await admin.wait_pod(
        hub.pod_name("carol"), lambda p: bool(p and p["spec"].get("nodeName")), "bound", timeout=30
    )
    assert pod["spec"]["nodeName"] == "vk-leonardo"
    assert json.dumps(pod).count("nvidia.com/gpu") >= 1
