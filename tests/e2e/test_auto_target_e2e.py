""" "Any available" and the metrics, end to end: a real hub spawns real JupyterLab
servers onto the test bed's virtual nodes, choosing the target itself.

* vk-leonardo's cores are all taken (an admin's pod bound to it), so the
  automatic choice passes over Leonardo, lands on the Docker site, and the
  spawn page (the hub's progress event stream) says so;
* a site that refuses the job (the virtual kubelet reports ``ProviderFailed``,
  as interLink does for a refused submission) fails over to the next one,
  and nothing of the first attempt is left (its pod, with its uid, is gone;
  the token Secret is the second pod's);
* ``/hub/metrics`` scraped after each (parsed with prometheus_client's parser)
  shows the counts of what the test did, and the capacity gauges what the
  watcher sees.

The test bed has one GPU node, so the first target is made full by cores,
not by GPUs; the fit check is the same (availability.admission_refusal).
"""

from __future__ import annotations

import asyncio
from typing import Any

from jupyterhub.tests.utils import async_requests, auth_header, public_url
from jupyterhub.utils import url_path_join
from prometheus_client.parser import text_string_to_metric_families

from offload_spawner.identity.server_secret import secret_name
from testbed.virtual_kubelet import FAIL_ANNOTATION

from .test_availability_e2e import node_reader  # noqa: F401  (the fixture: the hub may read nodes)
from .test_offload_lifecycle_e2e import spawn_with_progress
from .test_spawn_e2e import INTERLINK_TOLERATION, reach_jupyterlab, watch_pod

FAIL_MESSAGE = "sbatch: error: Batch job submission failed: Invalid partition name specified"
TARGETS: dict[str, Any] = {
    "broken": {
        "display_name": "Broken site (SLURM)",
        "backend": "slurm",
        "node": "vk-leonardo",
        "offload": "session",
        "annotations": {FAIL_ANNOTATION: FAIL_MESSAGE},
    },
    "leonardo": {
        "display_name": "CINECA Leonardo (SLURM)",
        "backend": "slurm",
        "node": "vk-leonardo",
        "offload": "session",
        "limits": {"cores": 32, "memory": "480G"},
    },
    "docker": {
        "display_name": "Docker box",
        "backend": "docker",
        "node": "vk-docker",
        "offload": "session",
        "limits": {"cores": 16, "memory": "64G"},
    },
}
PROFILES = [
    {
        "display_name": "Analysis",
        "slug": "analysis",
        "cores": {"choices": [1, 2], "default": 1},
        "memory": {"choices": ["1G"], "default": "1G"},
        "targets": list(TARGETS),
    }
]
AUTO = {"profile": "analysis", "target": "auto"}


async def start_hub(spawn_hub, ranking: list[str]):
    return await spawn_hub(
        {
            "offload_targets": TARGETS,
            "profile_list": PROFILES,
            "offload_auto_target": True,
            "offload_auto_target_ranking": ranking,
            "start_timeout": 90,
        },
        {"users": ["carol"]},
        ("carol",),
    )


async def scrape(app) -> dict[tuple[str, tuple], float]:
    url = url_path_join(public_url(app), "hub/metrics")
    r = await async_requests.get(url, headers=auth_header(app.db, "admin"))
    r.raise_for_status()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


async def scrape_once_recorded(app, before: dict, name: str, timeout: float = 30, **labels: str) -> dict:
    """Scrape until sample ``name`` with ``labels`` has moved since ``before`` (at most ``timeout`` s)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        after = await scrape(app)
        if delta(before, after, name, **labels) or asyncio.get_running_loop().time() > deadline:
            return after
        await asyncio.sleep(0.2)


def delta(before: dict, after: dict, name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)


async def test_any_available_passes_over_a_full_site(spawn_hub, node_reader, admin):  # noqa: F811
    hub = await start_hub(spawn_hub, ["leonardo", "docker"])
    # An admin's pod takes all 32 cores of vk-leonardo.
    await admin.create_pod(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "busy-leonardo"},
            "spec": {
                "nodeName": "vk-leonardo",
                "tolerations": [INTERLINK_TOLERATION],
                "containers": [
                    {
                        "name": "c",
                        "image": "busybox",
                        "command": ["sleep", "600"],
                        "resources": {"requests": {"cpu": "32", "memory": "1Gi"}},
                    }
                ],
            },
        }
    )
    await admin.wait_pod(
        "busy-leonardo", lambda p: (p or {}).get("status", {}).get("phase") == "Running", "running", timeout=30
    )
    before = await scrape(hub.app)

    r, events = await spawn_with_progress(hub, "carol", AUTO)
    assert r.status_code in (201, 202), r.text
    messages = [e.get("message", "") for e in events]
    chosen = [m for m in messages if m.startswith("Any available: ")]
    assert chosen and chosen[0].startswith(
        "Any available: your server runs on Docker box (not: CINECA Leonardo (SLURM): Only 0 cores are free"
    ), messages
    assert events[-1].get("ready") is True, events
    pod = await admin.pod(hub.pod_name("carol"))
    assert pod["spec"]["nodeName"] == "vk-docker"
    await reach_jupyterlab(hub, "carol")

    docker = {"target": "docker", "backend": "docker"}
    # The spawn's figures are recorded when its start future completes, which
    # can come a moment after the server answers: wait for that, then compare.
    after = await scrape_once_recorded(
        hub.app, before, "offload_spawner_spawns_finished_total", outcome="succeeded", **docker
    )
    assert delta(before, after, "offload_spawner_spawns_started_total", **docker) == 1
    assert delta(before, after, "offload_spawner_spawns_finished_total", outcome="succeeded", **docker) == 1
    assert delta(before, after, "offload_spawner_spawn_duration_seconds_count", **docker) == 1
    assert delta(before, after, "offload_spawner_queue_duration_seconds_count", **docker) == 1
    assert delta(before, after, "offload_spawner_auto_choices_total", target="docker") == 1
    # The capacity gauges read the watcher's memory: Leonardo full, Docker with carol's core taken.
    leonardo = {"target": "leonardo", "backend": "slurm"}
    assert after[("offload_spawner_target_cores", tuple(sorted({**leonardo, "state": "free"}.items())))] == 0
    assert after[("offload_spawner_target_up", tuple(sorted(leonardo.items())))] == 1
    assert after[("offload_spawner_target_cores", tuple(sorted({**docker, "state": "allocated"}.items())))] == 1


async def test_a_refused_submission_fails_over_and_leaves_nothing_of_the_first_attempt(spawn_hub, admin):
    hub = await start_hub(spawn_hub, ["broken", "leonardo"])
    pod_name = hub.pod_name("carol")
    seen: list[dict[str, Any]] = []
    before = await scrape(hub.app)

    async with watch_pod(admin, pod_name, seen.append, timeout=120):
        r, events = await spawn_with_progress(hub, "carol", AUTO)
        await asyncio.sleep(0.5)  # let the watch deliver the last updates
    assert r.status_code in (201, 202), r.text
    messages = [e.get("message", "") for e in events]
    chosen = [m for m in messages if m.startswith("Any available: your server runs on ")]
    assert chosen == ["Any available: your server runs on Broken site (SLURM)."], messages
    failover = [m for m in messages if m.endswith("Any available: trying CINECA Leonardo (SLURM).")]
    assert failover == [
        (
            f"Broken site (SLURM) could not run your server: {FAIL_MESSAGE}. "
            "Any available: trying CINECA Leonardo (SLURM)."
        )
    ], messages
    assert messages.index(chosen[0]) < messages.index(failover[0])
    assert events[-1].get("ready") is True, events

    # The first attempt's pod failed with ProviderFailed, and is gone: the pod now is another one.
    first = next(p for p in seen if (p.get("status") or {}).get("reason") == "ProviderFailed")
    assert first["metadata"]["labels"]["offload-spawner.io/target"] == "broken"
    pod = await admin.pod(pod_name)
    assert pod["metadata"]["uid"] != first["metadata"]["uid"]
    assert pod["metadata"]["labels"]["offload-spawner.io/target"] == "leonardo"
    assert FAIL_ANNOTATION not in (pod["metadata"].get("annotations") or {})
    # The token Secret (same name) is the second pod's: the first one's was deleted.
    secret = await admin.secret(secret_name(pod_name))
    if secret is not None:
        assert [o["uid"] for o in secret["metadata"].get("ownerReferences", [])] == [pod["metadata"]["uid"]]
    await reach_jupyterlab(hub, "carol")

    after = await scrape(hub.app)
    assert delta(before, after, "offload_spawner_failovers_total", from_target="broken", to_target="leonardo") == 1
    assert (
        delta(
            before,
            after,
            "offload_spawner_spawns_finished_total",
            target="broken",
            backend="slurm",
            outcome="remote_failure",
        )
        == 1
    )
    assert (
        delta(
            before,
            after,
            "offload_spawner_spawns_finished_total",
            target="leonardo",
            backend="slurm",
            outcome="succeeded",
        )
        == 1
    )
    assert delta(before, after, "offload_spawner_spawns_started_total", target="broken", backend="slurm") == 1
    assert delta(before, after, "offload_spawner_spawns_started_total", target="leonardo", backend="slurm") == 1
