"""Dask workers through the real interLink HTCondor plugin (testbed/htcondor.py).

Path: kube-apiserver -> interLink's virtual kubelet (node ``vk-htcondor``) ->
interLink API server -> the upstream HTCondor plugin ``handles.py`` -> the
test bed's ``condor_submit``/``condor_q``/``condor_rm`` stand-ins
(testbed/condor: no HTCondor exists here; they run the job on this machine
and report HTCondor's JobStatus codes) -> the job's ``singularity exec`` line
(testbed/singularity stand-in) runs the real ``dask worker``.

The target is the demo catalog's HTCondor target (demo/jupyterhub_config.py,
``naples``: ``offload: dask``, so Dask workers and no notebook sessions), on
this stack's node, with 2-core 8G workers. The worker pod is the one the
dask-kubernetes operator builds from the server's Dask file
(tests/dask_pods.py); its command is replaced by a ``dask worker`` for a real
scheduler started here on loopback (workers reach a scheduler only through
interLink mesh networking, which this machine's loopback stands in for), as
in test_interlink_slurm_e2e.py.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import html
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from distributed import Client

from dask_pods import offloaded_worker_pod
from offload_spawner.identity.server_secret import ACCESS_TOKEN_KEY, HUB_TOKEN_KEY, secret_name
from offload_spawner.remote.lifecycle import describe
from testbed.htcondor import COLLECTOR_HOST, DEFAULT_NODE, SCHEDD_HOST, HTCondorStack
from testbed.interlink import job_id
from upstream_plugins import submit_value

from .conftest import server_token_secret

#: The demo catalog's "naples" target (demo/jupyterhub_config.py) on this stack's node,
#: with the worker size the issue names: 2 cores, 8G.
NAPLES = {
    "display_name": "INFN Naples (HTCondor)",
    "backend": "htcondor",
    "node": DEFAULT_NODE,
    "offload": "dask",
    "limits": {"cores": 96, "memory": "180G"},
    "start_timeout": 900,
    "hub_api_url": "http://127.0.0.1:8081/hub/api",
    "dask": {"worker_cores": 2, "worker_memory": "8G", "scheduler_memory": "1G"},
}
SERVER_POD = "jupyter-dask-condor"
#: HTCondor's JobStatus codes (what condor_q reports; handles.py, StatusHandler, maps them).
IDLE, RUNNING, REMOVED = 1, 2, 3


async def _until(what: str, check: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        assert time.monotonic() < deadline, f"not {what} after {timeout:.0f}s"
        await asyncio.sleep(0.5)


async def _worker_pod(tmp_path: Path, scheduler_port: int) -> dict[str, Any]:
    """The worker pod for the naples target, its command a real ``dask worker`` for our scheduler."""
    return await offloaded_worker_pod(
        "naples",
        NAPLES,
        server_pod=SERVER_POD,
        user_name="dask-condor",
        scheduler_port=scheduler_port,
        worker_name="condor-worker",
        tmp_path=tmp_path,
    )


@pytest.fixture
async def server_secret(admin):
    """The per-server Secret the worker's tokens are referenced from (the hub makes it)."""
    async with server_token_secret(admin, SERVER_POD) as name:
        yield name


def _waiting_reason(pod: dict[str, Any] | None) -> str | None:
    statuses = ((pod or {}).get("status") or {}).get("containerStatuses") or [{}]
    return ((statuses[0].get("state") or {}).get("waiting") or {}).get("reason")


def _job_output(stack, cluster: str) -> str:
    ad = stack.job_ad(cluster) or {}
    parts = []
    for key in ("Out", "Err"):
        with contextlib.suppress(KeyError, OSError):
            parts.append(f"== {key}:\n{Path(ad[key]).read_text(errors='replace')[-3000:]}")
    return "\n".join(parts) or f"no output for job {cluster}: {ad}"


async def test_a_dask_worker_runs_as_an_htcondor_job_and_joins_the_scheduler(
    admin, htcondor_stack, dask_scheduler, server_secret, tmp_path
):
    stack = htcondor_stack
    submitted_before = stack.pods_submitted()
    worker = await _worker_pod(tmp_path, dask_scheduler)
    pod_name = worker["metadata"]["name"]
    try:
        await admin.create_pod(worker)
        pod = await admin.wait_pod(
            pod_name, lambda p: job_id(p or {}) is not None, "submitted to HTCondor", timeout=120
        )
        assert pod["spec"]["nodeName"] == DEFAULT_NODE
        # ... the node interLink's own virtual kubelet registered, with interLink's label and taint.
        node = stack.node_object()
        assert node["metadata"]["labels"]["virtual-node.interlink/type"] == "virtual-kubelet"
        assert {"key": "virtual-node.interlink/no-schedule", "value": "true", "effect": "NoSchedule"} in [
            {k: t.get(k) for k in ("key", "value", "effect")} for t in node["spec"]["taints"]
        ]
        cluster = job_id(pod)
        assert stack.pods_submitted() == submitted_before + 1

        # The submit file the real plugin wrote for the 2-core 8G worker (it asks in MB).
        meta = pod["metadata"]
        submit = (stack.data_root / f"{meta['name']}-{meta['uid']}.jdl").read_text()
        assert submit_value(submit, "RequestCpus") == "2", submit
        assert submit_value(submit, "RequestMemory") == "8192", submit
        # ... handed to condor_submit as handles.py does it, and the job id it answered is the pod's.
        (call,) = [c for c in stack.calls("condor_submit") if c[-2].endswith(f"{meta['name']}-{meta['uid']}.jdl")]
        assert call[1:5] == ["-pool", COLLECTOR_HOST, "-remote", SCHEDD_HOST] and call[-1] == "-spool", call
        ad = stack.job_ad(cluster)
        assert ad is not None and (ad["RequestCpus"], ad["RequestMemory"]) == (2, 8192), ad

        async with Client(f"tcp://127.0.0.1:{dask_scheduler}", asynchronous=True, timeout=30) as client:
            try:
                await client.wait_for_workers(1, timeout=120)
            except TimeoutError:
                raise AssertionError(f"no worker joined; job output: {_job_output(stack, cluster)}") from None
            names = {w.get("name") for w in client.scheduler_info().get("workers", {}).values()}
            assert names == {"condor-worker"}
            assert await client.submit(sum, [1, 2, 3]) == 6
        assert stack.job_ad(cluster)["JobStatus"] == RUNNING
        # condor_q's Running reaches Kubernetes as a running, ready container (handles.py, StatusHandler).
        pod = await admin.wait_pod(
            pod_name, lambda p: (p or {}).get("status", {}).get("phase") == "Running", "Running", timeout=90
        )
        (status,) = pod["status"]["containerStatuses"]
        assert "running" in status["state"] and status["ready"] is True, status
    finally:
        await admin.delete_pod(pod_name)
        await admin.wait_pod(pod_name, lambda p: p is None, "deleted", timeout=90)


async def test_deleting_the_worker_removes_its_htcondor_job(
    admin, htcondor_stack, dask_scheduler, server_secret, tmp_path
):
    """A job HTCondor keeps Idle shows as a waiting (ContainerCreating) pod, then runs.
    Delete -> interLink -> handles.py's ``condor_rm <id>``: the job's process ends, the
    job leaves the queue as Removed, the plugin deletes its job files, no pod remains.

    And what the released plugin does with the worker's Secret volume, stated so that a
    change shows up here (README's limitations say it): handles.py (``mountSecrets``)
    copies *every* key of the Secret, ignoring the volume's ``items`` (the worker's volume
    names only the access token, yet the server's hub token is copied and sent with the
    job in ``transfer_input_files``); interLink sends Secrets as Kubernetes JSON, whose
    ``data`` values are base64, and the plugin writes those strings as they are; and
    ``delete_pod`` removes only the ``.jid``/``.sh``/``.jdl`` files, so the copies stay."""
    stack = htcondor_stack
    worker = await _worker_pod(tmp_path, dask_scheduler)
    # The catalog sends no token file to an HTCondor target (backends/htcondor.py,
    # volume_files_refusal): the worker's tokens are env only ...
    assert not [v for v in worker["spec"].get("volumes") or [] if "secret" in v]
    # ... because of what the plugin does with a Secret volume naming only the access token:
    worker["spec"].setdefault("volumes", []).append(
        {
            "name": "offload-tokens",
            "secret": {"secretName": secret_name(SERVER_POD), "items": [{"key": ACCESS_TOKEN_KEY, "path": "token"}]},
        }
    )
    worker["spec"]["containers"][0].setdefault("volumeMounts", []).append(
        {"name": "offload-tokens", "mountPath": "/var/run/secrets/offload-spawner", "readOnly": True}
    )
    pod_name = worker["metadata"]["name"]
    stack.set_idle_seconds(3600)  # no slot matched yet: the job waits Idle
    await admin.create_pod(worker)
    try:
        pod = await admin.wait_pod(
            pod_name, lambda p: job_id(p or {}) is not None, "submitted to HTCondor", timeout=120
        )
        cluster = job_id(pod)
        # Idle (1) reaches Kubernetes as a waiting container, ContainerCreating (handles.py, StatusHandler).
        pod = await admin.wait_pod(
            pod_name, lambda p: _waiting_reason(p) == "ContainerCreating", "waiting ContainerCreating", timeout=90
        )
        assert pod["status"]["phase"] == "Pending" and stack.job_ad(cluster)["JobStatus"] == IDLE
        # ... which the spawner's progress reads as waiting in the remote queue, with the job id.
        queued = describe(NAPLES["display_name"], pod, [], now=0.0, submitted_at=None)
        assert (queued.phase, queued.message) == ("queued", f"Waiting in the remote queue (job {cluster})")
        stack.set_idle_seconds(0)
        await _until("the job running", lambda: (stack.job_ad(cluster) or {}).get("JobStatus") == RUNNING, 60)
        meta = pod["metadata"]
        job_files = [stack.data_root / f"{meta['name']}-{meta['uid']}{ext}" for ext in (".jid", ".sh", ".jdl")]
        assert all(f.exists() for f in job_files), job_files
        copies = stack.data_root / f"jhub-{meta['uid']}" / "secrets"
        hub_token_copies = sorted(copies.rglob(HUB_TOKEN_KEY))
        assert hub_token_copies, f"no copy of the hub token under {copies}"
        assert hub_token_copies[0].read_text() == base64.b64encode(b"not-a-real-token").decode()
        submit = job_files[2].read_text()
        assert str(hub_token_copies[0]) in submit_value(submit, "transfer_input_files").split(",")
    finally:
        stack.set_idle_seconds(0)
        await admin.delete_pod(pod_name)
    await admin.wait_pod(pod_name, lambda p: p is None, "deleted", timeout=90)
    await _until("condor_rm called for the job", lambda: ["condor_rm", cluster] in stack.calls("condor_rm"), 60)
    # Out of the queue (into the history) once the job's process has ended.
    await _until("the job removed", lambda: not (stack.spool / "jobs" / f"{cluster}.json").exists(), 60)
    assert stack.job_ad(cluster)["JobStatus"] == REMOVED
    # handles.py deletes the job's files once condor_rm has answered (delete_pod).
    await _until("the plugin's job files deleted", lambda: not any(f.exists() for f in job_files), 30)
    assert await admin.pods(label_selector="") == []
    assert hub_token_copies[0].exists(), "the plugin now deletes its copies of the Secret: update the README"


async def test_a_held_job_shows_its_hold_reason_and_delete_removes_it(
    admin, htcondor_stack, dask_scheduler, server_secret, tmp_path
):
    """A job the site holds (``condor_hold``, as an admin or a policy does) reaches Kubernetes
    as a waiting container ``JobHeld`` with HTCondor's HoldReason (handles.py, StatusHandler),
    which the spawner's progress shows as held with that reason; delete removes the held job."""
    stack = htcondor_stack
    worker = await _worker_pod(tmp_path, dask_scheduler)
    pod_name = worker["metadata"]["name"]
    await admin.create_pod(worker)
    try:
        pod = await admin.wait_pod(
            pod_name, lambda p: job_id(p or {}) is not None, "submitted to HTCondor", timeout=120
        )
        cluster = job_id(pod)
        await _until("the job running", lambda: (stack.job_ad(cluster) or {}).get("JobStatus") == RUNNING, 60)
        held = stack.condor("condor_hold", cluster)
        assert held.returncode == 0, held.stderr
        reason = stack.job_ad(cluster)["HoldReason"]
        assert reason.startswith("via condor_hold"), reason
        pod = await admin.wait_pod(pod_name, lambda p: _waiting_reason(p) == "JobHeld", "waiting JobHeld", timeout=90)
        (status,) = pod["status"]["containerStatuses"]
        assert status["state"]["waiting"]["message"] == reason and status["ready"] is False, status
        shown = describe(NAPLES["display_name"], pod, [], now=0.0, submitted_at=None)
        assert (shown.phase, shown.message) == ("held", f"Held: {reason} (job {cluster})")
    finally:
        await admin.delete_pod(pod_name)
    await admin.wait_pod(pod_name, lambda p: p is None, "deleted", timeout=90)
    await _until("the held job removed", lambda: (stack.job_ad(cluster) or {}).get("JobStatus") == REMOVED, 60)


def test_as_released_interlinks_api_server_takes_the_plugins_201_for_a_failure(cluster, tmp_path):
    """Without the test bed's ``--created-as-ok``: handles.py answers a successful
    ``/create`` with 201; interLink's API server passes that code on with an error body
    (pkg/interlink/api/handler.go, ``ReqWithError``: anything but 200 is an error), and its
    virtual kubelet, which takes only 200 (pkg/virtualkubelet/execute.go, ``createRequest``),
    marks the pod ProviderFailed, although HTCondor got the job."""
    stack = HTCondorStack(
        cluster.control_plane,
        tmp_path / "as-released",
        node="vk-htcondor-as-released",
        accept_created=False,
        kubelet=False,
    ).start()
    try:
        uid = "00000000-0000-4000-8000-000000000201"
        pod = {
            "metadata": {"name": "as-released", "namespace": "jhub", "uid": uid},
            "spec": {"containers": [{"name": "main", "image": "busybox", "command": ["sleep", "60"]}]},
        }
        body = {"pod": pod, "configmaps": [], "secrets": [], "projectedvolumesmaps": []}
        r = requests.post(f"http://127.0.0.1:{stack.api_port}/create", json=body, timeout=60)
        assert r.status_code == 201, (r.status_code, r.text)
        assert "call exit status: 500" in r.text and uid in html.unescape(r.text), r.text
        assert len(stack.calls("condor_submit")) == 1  # the job was submitted all the same
    finally:
        stack.stop()
