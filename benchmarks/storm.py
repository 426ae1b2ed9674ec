"""Figures on the test bed (a real kube-apiserver, scheduler and controller
manager, and the test bed's virtual kubelet; see testbed/): real hub processes
(benchmarks/hubproc.py) whose spawner talks to it with the hub
ServiceAccount's kubeconfig, as tests/e2e/conftest.py sets up its hubs.

* a node's capacity change reaching the next form render (the node watcher);
* 50 concurrent spawns, then 50 concurrent stops, through the hub's REST API,
  OffloadSpawner and KubeSpawner alternately; afterwards no pod and no new
  Secret may be left in the namespace.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
NAMESPACE = "jhub"
USERS = tuple(f"storm{i:02d}" for i in range(50))
STRATEGIC = "application/strategic-merge-patch+json"

_COMMON = {
    "namespace": NAMESPACE,
    "cmd": [sys.executable, str(HERE / "standin_server.py")],
    "args": [],
    "start_timeout": 300,
    "http_timeout": 300,
}
# The same small server for both spawners: a quarter core and 256 MiB on the
# in-cluster node (node-local: 16 cores, 64 GiB, 110 pods).
OFFLOAD_STORM = {
    **_COMMON,
    "profile_list": [
        {"display_name": "Lecture", "slug": "lecture", "cores": {"choices": [0.25]}, "memory": {"choices": ["256M"]}}
    ],
    "offload_targets": {"cluster": {"display_name": "This cluster", "backend": "kubernetes"}},
}
KUBESPAWNER_STORM = {
    **_COMMON,
    "profile_list": [
        {
            "display_name": "Lecture",
            "slug": "lecture",
            "kubespawner_override": {
                "cpu_guarantee": 0.25,
                "cpu_limit": 0.25,
                "mem_guarantee": "256M",
                "mem_limit": "256M",
            },
        }
    ],
}
CAPACITY = {
    "offload_targets": {
        "leonardo": {
            "display_name": "CINECA Leonardo (SLURM)",
            "backend": "slurm",
            "node": "vk-leonardo",
            "offload": "session",
            "limits": {"cores": 32, "memory": "480G", "accelerators": {"nvidia.com/gpu": 4}},
        }
    },
    "profile_list": [
        {
            "display_name": "GPU",
            "slug": "gpu",
            "cores": {"choices": [1]},
            "memory": {"choices": ["1G"]},
            "accelerators": {"nvidia.com/gpu": {"display_name": "NVIDIA GPU", "models": ["a100"], "max": 4}},
        }
    ],
    "offload_availability_wait": 10.0,
}


def _binaries_built() -> bool:
    out = subprocess.run([str(ROOT / "testbed" / "build.sh"), "--bin-dir"], capture_output=True, text=True)
    bin_dir = Path(out.stdout.strip())
    return out.returncode == 0 and all((bin_dir / b).exists() for b in ("etcd", "kube-apiserver"))


def run(figures: Any) -> None:
    if not _binaries_built():
        figures.note(
            "testbed",
            "the test bed's binaries are not built (make testbed-build); "
            "capacity-change and spawn-storm figures skipped",
        )
        return
    from testbed import LocalCluster

    with LocalCluster(echo=lambda message: None) as cluster:
        try:
            capacity_change(figures, cluster)
        except Exception as e:
            figures.note("capacity change", f"failed: {type(e).__name__}: {e}"[:500])
        spawn_storm(figures, cluster)


def _hub(cluster: Any, spawner_class: str, section: str, settings: dict, groups: dict[str, list[str]]):
    from hubproc import HubProcess

    return HubProcess(
        spawner_class, section, repr(settings), groups, env={"KUBECONFIG": str(cluster.control_plane.hub_kubeconfig)}
    )


def capacity_change(figures: Any, cluster: Any, repeats: int = 3) -> None:
    """Patch vk-leonardo's allocatable GPUs; time until the next form render shows it."""
    admin = cluster.control_plane.admin()
    cluster.control_plane.bind_node_reader()
    latencies = []
    try:
        with _hub(cluster, "offload", "OffloadSpawner", CAPACITY, {"ai-infn": ["alice"]}) as hub:
            browser = hub.login("alice")
            _until(lambda: "a100: 4 total" in hub.form(browser), 30)
            for i in range(repeats):
                count = "2" if i % 2 == 0 else "4"
                admin.call(
                    "PATCH",
                    "/api/v1/nodes/vk-leonardo/status",
                    {"status": {"allocatable": {"nvidia.com/gpu": count}}},
                    content_type=STRATEGIC,
                )
                start = time.monotonic()
                _until(lambda c=count: f"a100: {c} total" in hub.form(browser), 10)
                latencies.append((time.monotonic() - start) * 1e3)
    finally:
        admin.call(
            "PATCH",
            "/api/v1/nodes/vk-leonardo/status",
            {"status": {"allocatable": {"nvidia.com/gpu": "4"}}},
            content_type=STRATEGIC,
        )
        cluster.control_plane.unbind_node_reader()
    figures.single("capacity change on a node -> next form render ms", statistics.median(latencies), target=1000)


def _until(check, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not reached in {timeout}s")
        time.sleep(0.02)


def spawn_storm(figures: Any, cluster: Any, rounds: int = 1) -> None:
    admin = cluster.control_plane.admin()
    results: dict[str, dict[str, list[float]]] = {k: {"spawn": [], "stop": []} for k in ("offload", "kubespawner")}
    left: dict[str, int] = {"offload": 0, "kubespawner": 0}
    groups = {"lecture": list(USERS)}
    for _ in range(rounds):
        for kind, spawner_class, section, settings, options in (
            ("offload", "offload", "OffloadSpawner", OFFLOAD_STORM, {"profile": "lecture"}),
            ("kubespawner", "kubespawner.KubeSpawner", "KubeSpawner", KUBESPAWNER_STORM, {"profile": "lecture"}),
        ):
            secrets_before = {
                s["metadata"]["name"] for s in admin.call("GET", f"/api/v1/namespaces/{NAMESPACE}/secrets")["items"]
            }
            with _hub(cluster, spawner_class, section, settings, groups) as hub:
                spawn_ms, stop_ms = asyncio.run(_storm(hub, options, admin))
            results[kind]["spawn"].append(spawn_ms)
            results[kind]["stop"].append(stop_ms)
            pods = admin.call("GET", f"/api/v1/namespaces/{NAMESPACE}/pods")["items"]
            secrets_after = admin.call("GET", f"/api/v1/namespaces/{NAMESPACE}/secrets")["items"]
            secrets = [s["metadata"]["name"] for s in secrets_after if s["metadata"]["name"] not in secrets_before]
            left[kind] += len(pods) + len(secrets)
            for pod in pods:  # leave the namespace clean for the next round
                admin.request("DELETE", f"/api/v1/namespaces/{NAMESPACE}/pods/{pod['metadata']['name']}")
    for phase, name in (
        ("spawn", "50 concurrent spawns until all running ms"),
        ("stop", "50 concurrent stops until all gone ms"),
    ):
        figures.pair(
            name,
            statistics.median(results["offload"][phase]),
            statistics.median(results["kubespawner"][phase]),
            target=1.1,
        )
    figures.pair("pods and Secrets left behind after 50 stops", left["offload"], left["kubespawner"])


async def _storm(hub: Any, options: dict, admin: Any) -> tuple[float, float]:
    headers = {"Authorization": f"token {hub.token}"}
    base = f"{hub.url}/hub/api/users"
    async with aiohttp.ClientSession(headers=headers) as session:

        async def post(user: str) -> None:
            async with session.post(f"{base}/{user}/server", data=json.dumps(options)) as r:
                assert r.status in (201, 202), (user, r.status, await r.text())

        async def delete(user: str) -> None:
            async with session.delete(f"{base}/{user}/server") as r:
                assert r.status in (202, 204), (user, r.status, await r.text())

        async def servers() -> dict[str, dict]:
            async with session.get(f"{base}?state=active") as r:
                return {u["name"]: u["servers"].get("", {}) for u in await r.json()}

        start = time.monotonic()
        await asyncio.gather(*(post(u) for u in USERS))
        while True:
            active = await servers()
            if sum(1 for u in USERS if active.get(u, {}).get("ready")) == len(USERS):
                break
            failed = [u for u in USERS if u not in active]
            assert not failed, f"spawns failed: {failed[:5]}; see {hub.workdir / 'hub.log'}"
            assert time.monotonic() - start < 600, "not all running after 600 s"
            await asyncio.sleep(0.1)
        spawn_ms = (time.monotonic() - start) * 1e3

        start = time.monotonic()
        await asyncio.gather(*(delete(u) for u in USERS))
        while True:
            active = await servers()
            pods = admin.call("GET", f"/api/v1/namespaces/{NAMESPACE}/pods")["items"]
            if not any(u in active for u in USERS) and not pods:
                break
            assert time.monotonic() - start < 300, "not all stopped after 300 s"
            await asyncio.sleep(0.1)
        stop_ms = (time.monotonic() - start) * 1e3
    return spawn_ms, stop_ms
