"""Offloaded sessions that start, report and fail well, end to end.

A real hub spawns onto the test bed's virtual nodes; the virtual kubelet
reports what interLink reports (submitted, JobID written back, queued as
HTCondor Idle, held with a reason). The tests read the hub's own progress
API (``/hub/api/users/{name}/server/progress``, an event stream) as the spawn
page does, and stop servers through the REST API (the path the idle culler
takes).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import requests
from jupyterhub.tests.utils import public_url
from jupyterhub.utils import url_path_join

from testbed.procs import pid_alive
from testbed.virtual_kubelet import (
    HOLD_ANNOTATION,
    PID_ANNOTATION,
    QUEUE_ANNOTATION,
    SUBMITTED_MESSAGE,
    SUBMITTED_REASON,
)

from .test_spawn_e2e import pod_history, reach_jupyterlab

HOLD_REASON = "The job attribute PeriodicHold expression evaluated to TRUE"
BLOCK_METADATA = {
    # Zero-to-JupyterHub's privileged init container (singleuser.cloudMetadata.blockWithIptables)
    "name": "block-cloud-metadata", "image": "quay.io/jupyterhub/k8s-network-tools:4.0.0",
    "command": ["iptables", "-A", "OUTPUT", "-d", "169.254.169.254", "-j", "DROP"],
    "securityContext": {"runAsUser": 0, "capabilities": {"add": ["NET_ADMIN"]}},
}
TARGETS: dict[str, Any] = {
    "naples": {
        "display_name": "INFN Naples (HTCondor)", "backend": "htcondor", "node": "vk-naples",
        "offload": "session", "network": "wstunnel", "start_timeout": 40,
        # 4 s in the "remote queue": longer than the held target's whole start_timeout.
        "annotations": {QUEUE_ANNOTATION: "4"},
    },
    "leonardo": {
        "display_name": "CINECA Leonardo (SLURM)", "backend": "slurm", "node": "vk-leonardo",
        "offload": "session", "start_timeout": 3, "pod_shape": {"run_as_user": 1234},
        "annotations": {HOLD_ANNOTATION: HOLD_REASON},
    },
}
PROFILES = [{"display_name": "Analysis", "slug": "analysis", "targets": list(TARGETS)}]


async def start_hub(spawn_hub):
    return await spawn_hub(
        {"offload_targets": TARGETS, "profile_list": PROFILES, "init_containers": [BLOCK_METADATA]},
        {"users": ["carol"]}, ("carol",),
    )


def _read_progress(url: str, token: str) -> list[dict[str, Any]]:
    events = []
    with requests.get(url, headers={"Authorization": f"token {token}"}, stream=True, timeout=90) as r:
        r.raise_for_status()
        for line in r.iter_lines(decode_unicode=True):
            if line and line.startswith("data:"):
                events.append(json.loads(line[len("data:"):]))
    return events


async def spawn_with_progress(hub, user: str, options: dict[str, Any]) -> tuple[Any, list[dict[str, Any]]]:
    """POST the spawn, follow the hub's progress event stream to its end."""
    token = await hub.token(user)
    spawn = asyncio.create_task(hub.api_spawn(user, options))
    spawner = hub.app.users[user].spawner
    for _ in range(100):
        if spawner.pending == "spawn" or spawn.done():
            break
        await asyncio.sleep(0.05)
    url = url_path_join(public_url(hub.app), "hub/api/users", user, "server/progress")
    events = await asyncio.to_thread(_read_progress, url, token)
    return await spawn, events


async def test_a_queued_session_reports_the_queue_and_stop_ends_the_remote_job(spawn_hub, admin):
    hub = await start_hub(spawn_hub)
    # What the remote server uses to reach the hub: an address of the hub's own API
    # written differently from the internal one, so that the test sees which is used.
    api_url = hub.app.hub.api_url.replace("127.0.0.1", "localhost")
    spawner = hub.app.users["carol"].spawner
    spawner.offload_targets = {**TARGETS, "naples": {**TARGETS["naples"], "hub_api_url": api_url}}

    async with pod_history(admin, hub.pod_name("carol")) as history:
        r, events = await spawn_with_progress(hub, "carol", {"profile": "analysis", "target": "naples"})
    assert r.status_code in (201, 202), r.text
    # As interLink's HTCondor plugin reports it: submitted, then Idle (ContainerCreating, no message).
    assert ("Pending", SUBMITTED_REASON, SUBMITTED_MESSAGE) in history, history
    assert ("Pending", "ContainerCreating", "") in history, history
    messages = [e.get("message", "") for e in events]
    queued = [m for m in messages if m.startswith("Waiting in the remote queue (job testbed-")]
    assert queued, messages
    assert events[-1].get("ready") is True, events
    assert messages.index(queued[0]) < len(messages) - 1
    assert spawner.start_timeout == 40

    pod = await admin.pod(hub.pod_name("carol"))
    assert pod["spec"]["nodeName"] == "vk-naples"
    assert pod["metadata"]["annotations"]["JobID"] in queued[0]
    env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
    assert env["JUPYTERHUB_API_URL"] == api_url
    assert env["JUPYTERHUB_ACTIVITY_URL"] == f"{api_url}/users/carol/activity"
    # Pod shape on a virtual node: no ServiceAccount token, the privileged init container kept local.
    assert pod["spec"]["automountServiceAccountToken"] is False
    assert pod["metadata"]["annotations"]["interlink.eu/disable-offload-init-containers"] == "block-cloud-metadata"
    # The server authenticates the user's token through hub_api_url.
    await reach_jupyterlab(hub, "carol")

    pid = int(pod["metadata"]["annotations"][PID_ANNOTATION])
    assert pid_alive(pid)
    await hub.stop("carol")  # DELETE /users/carol/server, as the idle culler does
    await hub.wait_stopped("carol")
    await admin.wait_pod(pod["metadata"]["name"], lambda p: p is None, "deleted", timeout=30)
    assert not pid_alive(pid), "the remote job (the test bed's process) still runs after stop"


async def test_a_held_job_shows_its_reason_and_times_out_at_its_targets_start_timeout(spawn_hub, admin):
    hub = await start_hub(spawn_hub)
    pod_name = hub.pod_name("carol")
    started = time.monotonic()
    r, events = await spawn_with_progress(hub, "carol", {"profile": "analysis", "target": "leonardo"})
    elapsed = time.monotonic() - started
    messages = [e.get("message", "") for e in events]
    assert f"Held: {HOLD_REASON} (job testbed-" in " | ".join(messages), messages
    assert events[-1].get("failed") is True, events
    # leonardo's start_timeout (3 s) applied, not the hub's (60 s) nor naples' (40 s),
    # which outlasts naples' 4-s queue in the test above.
    assert hub.app.users["carol"].spawner.start_timeout == 3
    assert elapsed < 30, elapsed
    # The timeout says what the site last reported.
    assert events[-1]["message"].startswith(
        "Spawn failed: CINECA Leonardo (SLURM) did not start your server within 3 seconds. "
        f"Last status: Held: {HOLD_REASON} (job testbed-"
    ), events
    assert r.status_code in (500, 202), r.text
    await hub.wait_spawn_failed("carol", timeout=30)
    await admin.wait_pod(pod_name, lambda p: p is None, "deleted after the timeout", timeout=30)


async def test_the_pod_shape_reaches_the_control_plane(spawn_hub, hub_kube):
    """The shaped pod (runAsUser for the SLURM job's UID) is what the API server stores."""
    hub = await start_hub(spawn_hub)
    spawner = hub.app.users["carol"].spawner
    spawner.user_options = {"profile": "analysis", "target": "leonardo"}
    # What the hub gives a spawner before start(): the token its Secret delivers.
    spawner.api_token = spawner.user.new_api_token()
    await spawner.load_user_options()
    manifest = await spawner.get_pod_manifest()
    body = hub_kube.api.sanitize_for_serialization(manifest)
    body["metadata"]["name"] = "shape-check"
    body["metadata"]["annotations"].pop(HOLD_ANNOTATION)
    stored = await hub_kube.create_pod(body)
    assert stored["spec"]["securityContext"]["runAsUser"] == 1234
    assert stored["spec"]["containers"][0]["securityContext"]["runAsUser"] == 1234
    assert stored["spec"]["automountServiceAccountToken"] is False
    await hub_kube.delete_pod("shape-check", grace=0)
