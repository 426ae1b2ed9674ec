"""Sessions on a SLURM target through the real interLink stack and a real SLURM cluster.

The chain is the production one (see testbed/interlink.py and testbed/slurm.py):
the hub's OffloadSpawner creates the pod on the test bed's kube-apiserver, the
real kube-scheduler binds it to the node interLink's own virtual kubelet
registered (``vk-slurm``), the virtual kubelet hands it to interLink's API
server, the interLink SLURM plugin writes the job script and runs ``sbatch``,
and slurmd runs the job, whose container line the ``singularity`` stand-in
(the only stand-in here) runs as the real ``jupyterhub-singleuser``.

Networking: interLink's virtual kubelet reports ``status.podIP`` 127.0.0.1
for a pod without ``interlink.eu/pod-ip`` (interLink
``pkg/virtualkubelet/virtualkubelet.go``); the job runs on this machine, so the
hub reaches the server on loopback at the spawner's port, and the server
reaches the hub's API on loopback. Each hub here gets a free port of its own.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
import requests
from distributed import Client
from jupyterhub.tests.utils import public_url
from jupyterhub.utils import url_path_join

from dask_pods import offloaded_worker_pod
from offload_spawner.identity.server_secret import secret_name
from testbed.controlplane import free_ports
from testbed.interlink import DEFAULT_NODE, job_id

from .conftest import server_on_a_local_job, server_token_secret
from .test_offload_lifecycle_e2e import spawn_with_progress
from .test_spawn_e2e import pod_history, reach_jupyterlab

SLURM_FLAGS = {"partition": "boost_usr_prod", "account": "icsc_ai", "qos": "normal", "time_limit": "01:00:00"}
TARGETS: dict[str, Any] = {
    "slurm": {
        "display_name": "Local SLURM (interLink)",
        "backend": "slurm",
        "node": DEFAULT_NODE,
        "offload": "session",
        "slurm": SLURM_FLAGS,
        "start_timeout": 150,
        "limits": {"cores": 2, "memory": "4G"},
    },
    "bad-partition": {
        "display_name": "Misconfigured SLURM (interLink)",
        "backend": "slurm",
        "node": DEFAULT_NODE,
        "offload": "session",
        "slurm": {**SLURM_FLAGS, "partition": "no_such_partition"},
        "start_timeout": 150,
        "limits": {"cores": 2, "memory": "4G"},
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
SBATCH_REFUSAL = "sbatch: error: invalid partition specified: no_such_partition"


@pytest.fixture
async def slurm_hub(spawn_hub, interlink_stack):
    return await spawn_hub(
        {"offload_targets": TARGETS, "profile_list": PROFILES, **server_on_a_local_job()},
        {"ai-infn": ["carol", "dave"]},
        ("carol", "dave"),
    )


async def _until(what: str, check, timeout: float) -> Any:
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


async def test_a_session_runs_as_a_slurm_job_and_stop_cancels_it(slurm_hub, admin, interlink_stack):
    hub, slurm = slurm_hub, interlink_stack.slurm
    pod_name = hub.pod_name("carol")
    submitted_before = interlink_stack.pods_submitted()
    async with pod_history(admin, pod_name) as history:
        r = await hub.api_spawn("carol", {"profile": "analysis", "target": "slurm"})
        assert r.status_code in (201, 202), r.text
        await hub.wait_ready("carol", timeout=150)
    pod = await admin.pod(pod_name)
    assert pod["spec"]["nodeName"] == DEFAULT_NODE
    # interLink's virtual kubelet reported it first as submitted to the plugin.
    assert any(h[1] == "Remote pod submitted" for h in history), history
    jid = job_id(pod)
    assert jid, pod["metadata"].get("annotations")
    assert pod["status"]["podIP"] == "127.0.0.1"
    assert interlink_stack.pods_submitted() == submitted_before + 1
    # The job is SLURM's: running, in the catalog's partition, with the pod's limits.
    job = slurm.run("squeue", "-h", "-j", jid, "-o", "%T|%P|%C|%m").stdout.strip()
    assert job.split("|")[:3] == ["RUNNING", "boost_usr_prod", "1"], job
    await reach_jupyterlab(hub, "carol")

    secret = secret_name(pod_name)
    assert await admin.secret(secret) is not None
    await hub.stop("carol")
    await hub.wait_stopped("carol", timeout=60)
    await admin.wait_pod(pod_name, lambda p: p is None, "deleted", timeout=90)
    await _until("the SLURM job cancelled", lambda: not slurm.active_jobs(), 60)
    assert dict(slurm.jobs())[jid] in ("CANCELLED", "COMPLETED"), slurm.jobs()

    async def secret_gone() -> bool:
        return await admin.secret(secret) is None

    await _until("the Secret deleted", secret_gone, 60)


async def test_flags_sbatch_refuses_fail_the_spawn_with_slurms_message(slurm_hub, admin, interlink_stack):
    hub, slurm = slurm_hub, interlink_stack.slurm
    jobs_before = len(slurm.jobs())
    _, events = await spawn_with_progress(hub, "carol", {"profile": "analysis", "target": "bad-partition"})
    messages = [e.get("message", "") for e in events]
    assert events[-1].get("failed") is True, messages
    # SLURM's own words reach the user, well before the target's 150-s start_timeout.
    assert SBATCH_REFUSAL in events[-1]["message"], messages
    assert "Misconfigured SLURM (interLink)" in events[-1]["message"], messages
    assert "did not start your server within" not in events[-1]["message"], messages
    await hub.wait_spawn_failed("carol", timeout=60)
    await admin.wait_pod(hub.pod_name("carol"), lambda p: p is None, "deleted after the failed spawn", timeout=90)
    assert len(slurm.jobs()) == jobs_before, "sbatch refused the job: no job may exist"


async def test_a_session_that_does_not_fit_waits_in_kubernetes_scheduling(slurm_hub, admin, interlink_stack):
    """The SLURM plugin's ping writes SLURM's free cores into the node's allocatable, so
    while another job holds every core the pod stays Pending (FailedScheduling) and the
    user is told why; once the job ends the session starts."""
    hub, slurm = slurm_hub, interlink_stack.slurm
    blocker = slurm.run(
        "sbatch", "--parsable", "-p", "boost_usr_prod", "-c", str(slurm.cpus), "--mem", "100", "--wrap", "sleep 600"
    ).stdout.strip()
    try:
        await _until(
            "the blocking job running",
            lambda: slurm.run("squeue", "-h", "-j", blocker, "-o", "%T").stdout.strip() == "RUNNING",
            60,
        )
        # The next ping (every 30 s) carries SLURM's free resources to the node.
        await _until("allocatable cpu 0 on the node", lambda: interlink_stack.allocatable_cpu() == "0", 90)
        spawn = asyncio.create_task(hub.api_spawn("dave", {"profile": "analysis", "target": "slurm"}))
        pod_name = hub.pod_name("dave")
        token = await hub.token("dave")
        url = url_path_join(public_url(hub.app), "hub/api/users/dave/server/progress")
        await _until("the spawn pending", lambda: hub.app.users["dave"].spawner.pending == "spawn", 30)
        waiting = await asyncio.to_thread(_first_progress_message, url, token, "Insufficient cpu")
        assert waiting, "the progress stream ended without saying why the session waits"
        pod = await admin.pod(pod_name)
        assert not pod["spec"].get("nodeName"), pod["spec"]
        assert waiting.startswith("Waiting for Local SLURM (interLink) to accept the server"), waiting
        assert "Insufficient cpu" in waiting, waiting
    finally:
        slurm.run("scancel", blocker, check=False)
    r = await spawn
    assert r.status_code in (201, 202), r.text
    await hub.wait_ready("dave", timeout=150)
    pod = await admin.pod(hub.pod_name("dave"))
    assert pod["spec"]["nodeName"] == DEFAULT_NODE
    await reach_jupyterlab(hub, "dave")
    await hub.stop("dave")
    await hub.wait_stopped("dave", timeout=60)
    await _until("no SLURM job left", lambda: not slurm.active_jobs(), 90)


def _first_progress_message(url: str, token: str, words: str) -> str | None:
    """Read the hub's progress event stream (as the spawn page does) until a message holds ``words``."""
    with requests.get(url, headers={"Authorization": f"token {token}"}, stream=True, timeout=120) as r:
        r.raise_for_status()
        for line in r.iter_lines(decode_unicode=True):
            if line and line.startswith("data:"):
                message = json.loads(line[len("data:") :]).get("message", "")
                if words in message:
                    return message
    return None


DASK_TARGET = {
    "display_name": "Local SLURM Dask (interLink)",
    "backend": "slurm",
    "node": DEFAULT_NODE,
    "offload": "dask",
    "slurm": SLURM_FLAGS,
    "limits": {"cores": 2, "memory": "4G"},
    "hub_api_url": "http://127.0.0.1:8081/hub/api",
    "dask": {"worker_cores": 1, "worker_memory": "1G", "scheduler_memory": "1G"},
}


async def test_a_dask_worker_on_the_slurm_target_runs_as_a_slurm_job_and_joins_the_scheduler(
    admin, interlink_stack, dask_scheduler, tmp_path
):
    """The worker pod the dask-kubernetes operator would build from the server's Dask
    file goes through interLink to SLURM; the real ``dask worker`` it runs joins a
    real scheduler (started here on loopback: workers on a virtual node reach a
    scheduler only with interLink mesh networking, which this machine's loopback
    stands in for)."""
    slurm = interlink_stack.slurm
    worker = await offloaded_worker_pod(
        "slurm-dask",
        DASK_TARGET,
        server_pod="jupyter-dask-slurm",
        user_name="dask-slurm",
        scheduler_port=dask_scheduler,
        worker_name="slurm-worker",
        tmp_path=tmp_path,
    )
    pod_name = worker["metadata"]["name"]
    async with server_token_secret(admin, "jupyter-dask-slurm"):
        try:
            await admin.create_pod(worker)
            pod = await admin.wait_pod(
                pod_name, lambda p: job_id(p or {}) is not None, "submitted to SLURM", timeout=120
            )
            assert pod["spec"]["nodeName"] == DEFAULT_NODE
            jid = job_id(pod)
            async with Client(f"tcp://127.0.0.1:{dask_scheduler}", asynchronous=True, timeout=30) as client:
                try:
                    await client.wait_for_workers(1, timeout=120)
                except TimeoutError:
                    raise AssertionError(f"no worker joined; job output: {_job_output(interlink_stack, pod)}") from None
                assert _worker_names(client) == {"slurm-worker"}
                assert await client.submit(sum, [1, 2, 3]) == 6
            job = slurm.run("squeue", "-h", "-j", jid, "-o", "%T|%P").stdout.strip()
            assert job == "RUNNING|boost_usr_prod", job
            await admin.delete_pod(pod_name)
            await admin.wait_pod(pod_name, lambda p: p is None, "deleted", timeout=90)
            await _until("the worker's SLURM job cancelled", lambda: jid not in slurm.active_jobs(), 60)
        finally:
            await admin.delete_pod(pod_name)


def _job_output(stack, pod: dict[str, Any]) -> str:
    """What the SLURM plugin's job wrote (job.out and the container's run-*.out)."""
    folder = stack.data_root / f"{pod['metadata']['namespace']}-{pod['metadata']['uid']}"
    return (
        "\n".join(f"== {f.name}:\n{f.read_text(errors='replace')[-3000:]}" for f in sorted(folder.glob("*.out")))
        or f"nothing in {folder}"
    )


def _worker_names(client) -> set[str]:
    return {w.get("name") for w in client.scheduler_info().get("workers", {}).values()}


async def test_storage_binds_reach_the_slurm_job(spawn_hub, admin, interlink_stack, tmp_path):
    """A storage volume's site path, bound by the real SLURM plugin into the job's
    container line (``slurm-job.vk.io/singularity-mounts``), is what the server
    sees at the mount path: here its root directory, where a file the site holds
    is listed. (The ``singularity`` stand-in cannot mount; it rewrites arguments
    that start with the mount path to the bound site path, as a bind would show them.)"""
    site = tmp_path / "leonardo_work"
    (site / "carol").mkdir(parents=True)
    (site / "carol" / "results.txt").write_text("on the site\n")
    # Not /work: this checkout's own paths may start with it, and the stand-in rewrites by prefix.
    storage = {
        "work": {
            "display_name": "$WORK",
            "mount_path": "/site-work",
            "targets": {"slurm": {"path": f"{site}/{{username}}"}},
        }
    }
    (port,) = free_ports(1)
    hub = await spawn_hub(
        {
            "offload_targets": TARGETS,
            "profile_list": PROFILES,
            "port": port,
            "ip": "127.0.0.1",
            "http_timeout": 120,
            "storage": storage,
            # The server's root at the volume's mount path (two words, as traitlets' command line takes them).
            "args": ["--allow-root", "--ServerApp.root_dir", "/site-work"],
        },
        {"ai-infn": ["carol"]},
        ("carol",),
    )
    r = await hub.api_spawn("carol", {"profile": "analysis", "target": "slurm"})
    assert r.status_code in (201, 202), r.text
    await hub.wait_ready("carol", timeout=150)
    pod = await admin.pod(hub.pod_name("carol"))
    assert pod["metadata"]["annotations"]["slurm-job.vk.io/singularity-mounts"] == f"--bind {site}/carol:/site-work"
    # job.slurm runs job.sh, which holds the container line the plugin wrote.
    script = (interlink_stack.data_root / f"jhub-{pod['metadata']['uid']}" / "job.sh").read_text()
    assert f"--bind {site}/carol:/site-work" in script, script[-2000:]
    token = await hub.token("carol")
    listing = await hub.via_proxy("carol", "api/contents/", token)
    assert listing.status_code == 200, listing.text[:300]
    assert "results.txt" in {entry["name"] for entry in listing.json()["content"]}
    await hub.stop("carol")
    await hub.wait_stopped("carol", timeout=60)
    await _until("no SLURM job left", lambda: not interlink_stack.slurm.active_jobs(), 90)
