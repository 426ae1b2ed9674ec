"""Offloaded sessions that start, report and fail well, end to end.

A real hub spawns onto virtual nodes. The queued session runs on the real
interLink stack (interLink's virtual kubelet, API server and SLURM plugin in
front of a real SLURM): its job waits in SLURM's queue (PENDING) while the
partition is down. The plugin answers an empty Waiting state for it
(interlink-slurm-plugin ``pkg/slurm/Status.go``, case ``PD``); the pod, as
seen in Kubernetes, shows interLink's "Remote pod submitted" Waiting state
with the ``JobID`` annotation, and that empty Waiting state once the virtual
kubelet has taken the plugin's answer (either may be what a user's spawn page
reads while the job waits). A held job with
its reason stays on the test bed's imitation (``testbed/virtual_kubelet.py``):
the SLURM plugin reports a held job as PENDING without any reason, and
interLink's HTCondor plugin does not run here. The tests read the hub's own
progress API (``/hub/api/users/{name}/server/progress``, an event stream) as
the spawn page does, and stop servers through the REST API (the path the idle
culler takes).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import requests
from jupyterhub.tests.utils import public_url
from jupyterhub.utils import url_path_join

from testbed.controlplane import free_ports
from testbed.interlink import DEFAULT_NODE, job_id
from testbed.virtual_kubelet import (
    HOLD_ANNOTATION,
    SUBMITTED_MESSAGE,
    SUBMITTED_REASON,
)

from .test_spawn_e2e import pod_history, reach_jupyterlab

HOLD_REASON = "The job attribute PeriodicHold expression evaluated to TRUE"
BLOCK_METADATA = {
    # Zero-to-JupyterHub's privileged init container (singleuser.cloudMetadata.blockWithIptables)
    "name": "block-cloud-metadata",
    "image": "quay.io/jupyterhub/k8s-network-tools:4.0.0",
    "command": ["iptables", "-A", "OUTPUT", "-d", "169.254.169.254", "-j", "DROP"],
    "securityContext": {"runAsUser": 0, "capabilities": {"add": ["NET_ADMIN"]}},
}
PARTITION = "boost_usr_prod"
TARGETS: dict[str, Any] = {
    # The real interLink stack's node (the session-wide ``interlink_stack`` fixture).
    "slurm": {
        "display_name": "Local SLURM (interLink)",
        "backend": "slurm",
        "node": DEFAULT_NODE,
        "offload": "session",
        "start_timeout": 150,
        "slurm": {"partition": PARTITION},
    },
    "leonardo": {
        "display_name": "CINECA Leonardo (SLURM)",
        "backend": "slurm",
        "node": "vk-leonardo",
        "offload": "session",
        "start_timeout": 3,
        "pod_shape": {"run_as_user": 1234},
        "annotations": {HOLD_ANNOTATION: HOLD_REASON},
    },
}
PROFILES = [{"display_name": "Analysis", "slug": "analysis", "targets": list(TARGETS)}]


async def start_hub(spawn_hub):
    # interLink's virtual kubelet reports pod IP 127.0.0.1 for a job on this machine:
    # the server listens there, on a free port of its own.
    (port,) = free_ports(1)
    return await spawn_hub(
        {
            "offload_targets": TARGETS,
            "profile_list": PROFILES,
            "init_containers": [BLOCK_METADATA],
            "port": port,
            "ip": "127.0.0.1",
            "http_timeout": 120,
        },
        {"users": ["carol"]},
        ("carol",),
    )


def _read_progress(url: str, token: str) -> list[dict[str, Any]]:
    events = []
    with requests.get(url, headers={"Authorization": f"token {token}"}, stream=True, timeout=90) as r:
        r.raise_for_status()
        for line in r.iter_lines(decode_unicode=True):
            if line and line.startswith("data:"):
                events.append(json.loads(line[len("data:") :]))
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


async def _queue_messages(url: str, token: str, until: str) -> list[str]:
    """Progress messages, read as the spawn page reads them, up to the first holding ``until``."""

    def read() -> list[str]:
        seen = []
        with requests.get(url, headers={"Authorization": f"token {token}"}, stream=True, timeout=150) as r:
            r.raise_for_status()
            for line in r.iter_lines(decode_unicode=True):
                if line and line.startswith("data:"):
                    seen.append(json.loads(line[len("data:") :]).get("message", ""))
                    if until in seen[-1]:
                        break
        return seen

    return await asyncio.to_thread(read)


async def test_a_queued_session_reports_the_queue_and_stop_ends_the_remote_job(spawn_hub, admin, interlink_stack):
    """While the partition is down SLURM keeps the job PENDING: the user reads
    "Waiting in the remote queue (job N)"; once the partition is up the session starts."""
    slurm = interlink_stack.slurm
    hub = await start_hub(spawn_hub)
    # What the remote server uses to reach the hub: an address of the hub's own API
    # written differently from the internal one, so that the test sees which is used.
    api_url = hub.app.hub.api_url.replace("127.0.0.1", "localhost")
    spawner = hub.app.users["carol"].spawner
    spawner.offload_targets = {**TARGETS, "slurm": {**TARGETS["slurm"], "hub_api_url": api_url}}
    pod_name = hub.pod_name("carol")

    slurm.run("scontrol", "update", f"PartitionName={PARTITION}", "State=DOWN")
    try:
        async with pod_history(admin, pod_name) as history:
            token = await hub.token("carol")
            spawn = asyncio.create_task(hub.api_spawn("carol", {"profile": "analysis", "target": "slurm"}))
            for _ in range(200):
                if spawner.pending == "spawn" or spawn.done():
                    break
                await asyncio.sleep(0.05)
            url = url_path_join(public_url(hub.app), "hub/api/users/carol/server/progress")
            messages = await _queue_messages(url, token, "Waiting in the remote queue")
            queued = [m for m in messages if m.startswith("Waiting in the remote queue (job ")]
            assert queued, messages
            pod = await admin.pod(pod_name)
            jid = job_id(pod)
            assert jid and f"(job {jid}," in queued[0], (jid, queued)
            # SLURM's own view: the job waits in the queue because the partition is down.
            job = slurm.run("squeue", "-h", "-j", jid, "-o", "%T|%r").stdout.strip()
            assert job == "PENDING|PartitionDown", job
            waiting = pod["status"]["containerStatuses"][0]["state"].get("waiting")
            assert waiting is not None and waiting.get("reason", "") in (SUBMITTED_REASON, ""), pod["status"]
            slurm.run("scontrol", "update", f"PartitionName={PARTITION}", "State=UP")
            r = await spawn
            assert r.status_code in (201, 202), r.text
            await hub.wait_ready("carol", timeout=150)
    finally:
        slurm.run("scontrol", "update", f"PartitionName={PARTITION}", "State=UP", check=False)
    # As interLink reports it: submitted to the plugin, perhaps SLURM's PD (an empty Waiting), then running.
    submitted, queued_state = ("Pending", SUBMITTED_REASON, SUBMITTED_MESSAGE), ("Pending", "", "")
    waits = [h for h in history if h[1] is not None]
    assert waits[0] == submitted and set(waits) <= {submitted, queued_state}, history
    assert history[-1][0] == "Running", history
    assert slurm.run("squeue", "-h", "-j", jid, "-o", "%T").stdout.strip() == "RUNNING"

    pod = await admin.pod(pod_name)
    assert pod["spec"]["nodeName"] == DEFAULT_NODE
    env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
    assert env["JUPYTERHUB_API_URL"] == api_url
    assert env["JUPYTERHUB_ACTIVITY_URL"] == f"{api_url}/users/carol/activity"
    # Pod shape on a virtual node: no ServiceAccount token, the privileged init container kept local.
    assert pod["spec"]["automountServiceAccountToken"] is False
    assert pod["metadata"]["annotations"]["interlink.eu/disable-offload-init-containers"] == "block-cloud-metadata"
    # The server authenticates the user's token through hub_api_url.
    await reach_jupyterlab(hub, "carol")

    await hub.stop("carol")  # DELETE /users/carol/server, as the idle culler does
    await hub.wait_stopped("carol", timeout=60)
    await admin.wait_pod(pod_name, lambda p: p is None, "deleted", timeout=90)
    # The remote job ended with the session: the plugin cancelled it.
    assert jid not in slurm.active_jobs(), slurm.jobs()


async def test_a_held_job_shows_its_reason_and_times_out_at_its_targets_start_timeout(spawn_hub, admin):
    hub = await start_hub(spawn_hub)
    pod_name = hub.pod_name("carol")
    started = time.monotonic()
    r, events = await spawn_with_progress(hub, "carol", {"profile": "analysis", "target": "leonardo"})
    elapsed = time.monotonic() - started
    messages = [e.get("message", "") for e in events]
    assert f"Held: {HOLD_REASON} (job testbed-" in " | ".join(messages), messages
    assert events[-1].get("failed") is True, events
    # leonardo's start_timeout (3 s) applied, not the hub's (60 s) nor the SLURM target's (150 s).
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
