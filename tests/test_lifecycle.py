"""offload_spawner.remote.lifecycle: pod status + events -> what the user is told."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from offload_spawner.remote.lifecycle import bound_seconds_ago, describe, format_duration, remote_failure
from offload_spawner.remote.remote_session import RemoteSessionMixin

TARGET = "CINECA Leonardo (SLURM)"


def pod(
    phase: str = "Pending",
    node: str | None = "vk-leonardo",
    waiting: dict | None = None,
    terminated: dict | None = None,
    job_id: str | None = None,
    ready: bool = False,
    **status: Any,
) -> dict:
    out: dict[str, Any] = {
        "metadata": {"name": "jupyter-carol", "annotations": {}},
        "spec": {},
        "status": {"phase": phase, **status},
    }
    if node:
        out["spec"]["nodeName"] = node
    if job_id:
        out["metadata"]["annotations"]["JobID"] = job_id
    state = (
        {"waiting": waiting} if waiting is not None else {"terminated": terminated} if terminated is not None else None
    )
    if state is not None:
        out["status"]["containerStatuses"] = [{"name": "notebook", "state": state}]
    if phase == "Running":
        if state is None:
            out["status"]["containerStatuses"] = [{"name": "notebook", "state": {"running": {}}}]
        out["status"]["conditions"] = [{"type": "Ready", "status": "True" if ready else "False"}]
    return out


@pytest.mark.parametrize(
    "seconds, text", [(0, "0 s"), (45, "45 s"), (190, "3 min 10 s"), (3720, "1 h 2 min"), (-3, "0 s")]
)
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


def test_no_pod_yet():
    status = describe(TARGET, None, [], 10.0, None)
    assert status.phase == "requested" and TARGET in status.message


def test_not_scheduled_shows_the_schedulers_reason():
    event = {"reason": "FailedScheduling", "message": "0/4 nodes are available: 1 node(s) were unschedulable."}
    status = describe(TARGET, pod(node=None), [{"reason": "Scheduled", "message": "x"}, event], 10.0, None)
    assert status.phase == "scheduling"
    assert status.message == f"Waiting for {TARGET} to accept the server: {event['message']}"
    assert describe(TARGET, pod(node=None), [], 10.0, None).message == f"Waiting for {TARGET} to accept the server"


#: What interLink's virtual kubelet sets when it hands a pod to its plugin
#: (interLink/pkg/virtualkubelet/virtualkubelet.go, CreatePod): the words are the *reason*.
INTERLINK_SUBMITTED = {
    "reason": "Remote pod submitted",
    "message": "The pod has been submitted to the remote plugin for creation",
}


def test_submitted():
    status = describe(TARGET, pod(waiting=INTERLINK_SUBMITTED), [], 5.0, 5.0)
    assert (status.phase, status.message, status.progress) == ("submitted", f"Submitted to {TARGET}", 20)
    assert describe(TARGET, pod(), [], 5.0, 5.0).message == f"Submitted to {TARGET}"


@pytest.mark.parametrize("waiting", [{}, {"reason": "ContainerCreating"}, INTERLINK_SUBMITTED])
def test_queued_shows_the_job_id_and_the_time_waited(waiting):
    """SLURM queued (empty Waiting), HTCondor Idle (ContainerCreating), or submitted with a job id."""
    status = describe(TARGET, pod(waiting=waiting, job_id="1234"), [], 1190.0, 1000.0)
    assert status.phase == "queued"
    assert status.message == "Waiting in the remote queue (job 1234, 3 min 10 s)"
    assert status.job_id == "1234"


def test_queued_without_a_job_id():
    assert describe(TARGET, pod(waiting={}), [], 12.0, 0.0).message == "Waiting in the remote queue (12 s)"
    assert describe(TARGET, pod(waiting={}), [], 12.0, None).message == "Waiting in the remote queue"


def test_held_shows_the_hold_reason():
    status = describe(
        TARGET, pod(waiting={"reason": "JobHeld", "message": "Job exceeded memory"}, job_id="77.0"), [], 3.0, 1.0
    )
    assert status.phase == "held"
    assert status.message == "Held: Job exceeded memory (job 77.0)"
    assert status.phase != "failed"


def test_starting_and_running():
    assert describe(TARGET, pod("Running"), [], 1.0, 0.0).phase == "starting"
    running = describe(TARGET, pod("Running", ready=True, job_id="9"), [], 1.0, 0.0)
    assert (running.phase, running.message) == ("running", f"Running on {TARGET}")
    other = describe(TARGET, pod(waiting={"reason": "ImagePullBackOff", "message": "no such image"}), [], 1.0, 0.0)
    assert other.message == f"Starting on {TARGET}: ImagePullBackOff: no such image"


def test_provider_failed_is_a_failure_with_the_sites_message():
    message = "sbatch: error: Batch job submission failed: Invalid partition name specified"
    failed = pod("Failed", reason="ProviderFailed", message=message)
    assert remote_failure(failed) == message
    status = describe(TARGET, failed, [], 1.0, 0.0)
    assert status.phase == "failed" and status.failure == message
    assert status.message == f"{TARGET} could not run the server: {message}"


def test_terminated_container_is_a_failure():
    assert remote_failure(pod("Running", terminated={"exitCode": 137, "reason": "OOMKilled"})) is not None
    assert remote_failure(pod(terminated={"exitCode": 2, "reason": "Error"})) == "Error (exit code 2)"
    assert (
        remote_failure(pod(terminated={"exitCode": 1, "message": "apptainer: image not found"}))
        == "apptainer: image not found"
    )
    assert remote_failure(pod("Succeeded")) == "the server exited before it was ready"


@pytest.mark.parametrize(
    "p", [None, pod(), pod(waiting={}), pod(waiting={"reason": "JobHeld", "message": "x"}), pod("Running", ready=True)]
)
def test_no_failure_while_pending_held_or_running(p):
    assert remote_failure(p) is None


def test_a_long_site_message_is_clipped():
    status = describe(TARGET, pod("Failed", reason="ProviderFailed", message="x" * 5000), [], 1.0, 0.0)
    assert len(status.failure) == 500 and status.failure.endswith("…")


# --- the queue time when a start completes before the watch saw the pod bound ---------


def _bound_pod(when: str | None) -> dict:
    conditions = [{"type": "PodScheduled", "status": "True", "lastTransitionTime": when}] if when else []
    return {"spec": {"nodeName": "vk-docker"}, "status": {"conditions": conditions}}


def test_bound_seconds_ago_reads_the_pods_podscheduled_condition():
    wall = datetime(2026, 12, 2, 2, 0, 30, tzinfo=UTC).timestamp()
    assert bound_seconds_ago(_bound_pod("2026-12-02T02:00:00Z"), wall) == 30.0
    assert bound_seconds_ago(_bound_pod("2026-12-02T02:01:00Z"), wall) == 0.0  # the API server's clock ahead
    assert bound_seconds_ago(_bound_pod(None), wall) is None
    assert bound_seconds_ago({"spec": {}, "status": {}}, wall) is None  # not bound
    assert bound_seconds_ago(_bound_pod("yesterday"), wall) is None
    assert bound_seconds_ago(None, wall) is None


def test_a_start_faster_than_the_watch_still_has_its_submission_time():
    # The hub's watch never saw the pod bound (the start completed first): the
    # spawner takes the binding time from the pod, so the queue time is measured.
    scheduled = datetime.fromtimestamp(time.time() - 12, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    spawner = SimpleNamespace(
        _offload_submitted_at=None,
        pod_reflector=SimpleNamespace(pods={"jhub/jupyter-carol": _bound_pod(scheduled)}),
        namespace="jhub",
        pod_name="jupyter-carol",
    )
    RemoteSessionMixin._note_submitted_after_start(spawner)  # type: ignore[arg-type]
    assert spawner._offload_submitted_at is not None
    assert 11 <= time.monotonic() - spawner._offload_submitted_at <= 14
    # one it did see is kept
    spawner._offload_submitted_at = 5.0
    RemoteSessionMixin._note_submitted_after_start(spawner)  # type: ignore[arg-type]
    assert spawner._offload_submitted_at == 5.0
