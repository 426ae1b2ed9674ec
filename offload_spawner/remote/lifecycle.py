"""What an offloaded server's pod is doing, in words a user understands.

Pure: (target display name, pod dict, the pod's events, now, submitted_at)
in, a :class:`PodStatus` out. The spawner feeds it from KubeSpawner's pod and
event reflectors (for ``progress()`` and for ending a spawn the remote site
refused). What interLink reports (its virtual kubelet copies the plugin's
status into the pod):

* submitted: container Waiting with **reason** "Remote pod submitted" (set by
  the virtual kubelet's CreatePod, interLink/pkg/virtualkubelet/virtualkubelet.go);
* queued: HTCondor Idle -> Waiting ``ContainerCreating``; SLURM -> an empty
  Waiting state; interLink writes the remote job id back as annotation ``JobID``;
* held: Waiting ``JobHeld``, message = the hold reason;
* refused/failed: phase ``Failed``, reason ``ProviderFailed``, the plugin's message;
* running: phase ``Running``, Ready once the process is up.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

JOB_ID_ANNOTATION = "JobID"
#: the Waiting reason interLink sets when it hands a pod to its plugin
SUBMITTED_REASON = "Remote pod submitted"
HELD_REASON = "JobHeld"
#: Site messages are shown as they come, but not without bound.
MAX_SITE_MESSAGE = 500
#: When its request to the interLink API server fails, interLink's virtual kubelet fails
#: the pod with a Go dump of that request as the message, headers included, and with
#: them its bearer token for the API server when one is configured
#: (interLink pkg/virtualkubelet/execute.go: createRequest's "log request: %#v",
#: doRequestWithClient's Authorization header; virtualkubelet.go,
#: handleRemoteExecutionFailure). Such a message is replaced by these words.
SITE_UNREACHABLE = "the site's interLink service could not be reached; please try again later"
_REQUEST_DUMP = re.compile(r"&http\.Request\{|\bhttp\.Header\{")
_BEARER = re.compile(r"(?i)\b(bearer)\s+[^\s\"'\\,}\]]+")


@dataclass(frozen=True)
class PodStatus:
    #: "requested" | "scheduling" | "submitted" | "queued" | "held" | "starting" | "running" | "failed"
    phase: str
    message: str
    #: for the spawn page's progress bar (0-100)
    progress: int
    #: the remote job id interLink wrote back, if any
    job_id: str | None = None
    #: for phase "failed": the site's own words
    failure: str | None = None


def format_duration(seconds: float) -> str:
    """``190`` -> ``"3 min 10 s"``; ``3720`` -> ``"1 h 2 min"``."""
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{secs} s"


def site_words(text: Any) -> str:
    """A site's message as a user may read it: never a dump of the virtual kubelet's HTTP
    request, nor a bearer token."""
    text = str(text)
    if _REQUEST_DUMP.search(text):
        return SITE_UNREACHABLE
    return _BEARER.sub(r"\1 <redacted>", text)


def _clip(text: str) -> str:
    text = " ".join(site_words(text).split())
    return text if len(text) <= MAX_SITE_MESSAGE else text[: MAX_SITE_MESSAGE - 1] + "…"


def _container_states(pod: dict[str, Any]) -> list[dict[str, Any]]:
    status = pod.get("status") or {}
    return [cs.get("state") or {} for cs in status.get("containerStatuses") or []]


def remote_failure(pod: dict[str, Any] | None) -> str | None:
    """The site's message if the pod failed for good (phase Failed/Succeeded, or a
    terminated container), else None. Only meaningful for virtual-node pods:
    interLink never restarts a container."""
    if not pod:
        return None
    status = pod.get("status") or {}
    phase = status.get("phase")
    for state in _container_states(pod):
        terminated = state.get("terminated")
        if terminated is not None:
            words = terminated.get("message") or status.get("message") or ""
            reason = terminated.get("reason") or status.get("reason") or "Error"
            code = terminated.get("exitCode")
            if words:
                return _clip(words)
            return f"{reason} (exit code {code})" if code is not None else reason
    if phase == "Failed":
        return _clip(status.get("message") or status.get("reason") or "the remote site reported a failure")
    if phase == "Succeeded":
        return "the server exited before it was ready"
    return None


def bound_seconds_ago(pod: dict[str, Any] | None, wall_now: float) -> float | None:
    """How long ago (seconds, >= 0) the pod was bound to its node, from its
    ``PodScheduled`` condition (the API server's clock, whole seconds), or None
    when it is not bound. The spawner's watch notes the binding as it happens;
    this answers when a start completed before the watch saw it."""
    if not pod or not (pod.get("spec") or {}).get("nodeName"):
        return None
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "True":
            when = condition.get("lastTransitionTime")
            if isinstance(when, str):
                try:
                    stamp = datetime.fromisoformat(when.replace("Z", "+00:00")).timestamp()
                except ValueError:
                    return None
                return max(0.0, wall_now - stamp)
    return None


def _scheduling_message(events: list[dict[str, Any]]) -> str | None:
    for event in reversed(events):
        if event.get("reason") == "FailedScheduling" and event.get("message"):
            return _clip(event["message"])
    return None


def _is_ready(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def describe(
    target: str,
    pod: dict[str, Any] | None,
    events: list[dict[str, Any]],
    now: float,
    submitted_at: float | None,
) -> PodStatus:
    """The state of ``pod`` (bound for the target shown as ``target``).

    ``now`` and ``submitted_at`` are on one clock (the caller's monotonic
    clock): ``submitted_at`` is when the caller first saw the pod handed to
    its node, and the time waited in the queue is counted from it.
    """
    if not pod:
        return PodStatus("requested", f"Requesting a server on {target}", 5)
    meta = pod.get("metadata") or {}
    job_id = (meta.get("annotations") or {}).get(JOB_ID_ANNOTATION) or None
    failure = remote_failure(pod)
    if failure is not None:
        return PodStatus("failed", f"{target} could not run the server: {failure}", 100, job_id, failure)

    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    if not spec.get("nodeName"):
        why = _scheduling_message(events)
        message = f"Waiting for {target} to accept the server"
        return PodStatus("scheduling", f"{message}: {why}" if why else message, 10)

    if status.get("phase") == "Running":
        if _is_ready(pod):
            return PodStatus("running", f"Running on {target}", 90, job_id)
        return PodStatus("starting", f"Starting on {target}", 75, job_id)

    job = f"job {job_id}, " if job_id else ""
    waited = format_duration(now - submitted_at) if submitted_at is not None else None
    states = _container_states(pod)
    waiting: dict[str, Any] | None = next((s["waiting"] for s in states if "waiting" in s), None)
    if waiting is None:
        # Bound, no container status yet: interLink is handing the pod to the site.
        return PodStatus("submitted", f"Submitted to {target}", 20, job_id)
    reason, words = waiting.get("reason") or "", waiting.get("message") or ""
    if reason == HELD_REASON:
        return PodStatus(
            "held", f"Held: {_clip(words) or 'no reason given'}" + (f" (job {job_id})" if job_id else ""), 40, job_id
        )
    if reason == SUBMITTED_REASON and not job_id:
        return PodStatus("submitted", f"Submitted to {target}", 20, job_id)
    if reason in ("", "ContainerCreating", SUBMITTED_REASON):
        # SLURM's empty waiting state, HTCondor's Idle, or submitted with a job id.
        detail = f"{job}{waited}" if waited else job.rstrip(", ")
        return PodStatus("queued", "Waiting in the remote queue" + (f" ({detail})" if detail else ""), 30, job_id)
    return PodStatus("starting", f"Starting on {target}: {reason}" + (f": {_clip(words)}" if words else ""), 50, job_id)


#: Kubelet waiting reasons (kubelet's images and container runtime manager)
#: and what they mean to the person waiting.
_IMAGE_PROBLEMS = frozenset({"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"})
_PREPARING = frozenset({"", "ContainerCreating", "PodInitializing"})


def describe_in_cluster(pod: dict[str, Any] | None, events: list[dict[str, Any]]) -> PodStatus:
    """The state of a server's pod on the hub's own cluster, in the same kind of
    words :func:`describe` gives for a remote site (instead of Kubernetes' raw
    events: timestamps, node and pod names, "Successfully assigned ...").

    A real kubelet restarts containers, so a terminated container is not a
    failure here: only phase Failed/Succeeded ends the wait."""
    if not pod:
        return PodStatus("requested", "Requesting your server", 5)
    status, spec = pod.get("status") or {}, pod.get("spec") or {}
    if status.get("phase") in ("Failed", "Succeeded"):
        failure = remote_failure(pod) or "the server stopped"
        return PodStatus("failed", f"Your server could not start: {failure}", 100, failure=failure)
    if not spec.get("nodeName"):
        why = _scheduling_message(events)
        message = "Waiting for room in this cluster"
        return PodStatus("scheduling", f"{message} ({why})" if why else message, 10)
    if status.get("phase") == "Running":
        if _is_ready(pod):
            return PodStatus("running", "Your server is running; connecting", 90)
        return PodStatus("starting", "Starting your server", 75)
    waiting: dict[str, Any] = next((s["waiting"] for s in _container_states(pod) if "waiting" in s), {})
    reason, words = waiting.get("reason") or "", waiting.get("message") or ""
    if reason in _IMAGE_PROBLEMS:
        return PodStatus(
            "starting", "The server's image cannot be downloaded" + (f": {_clip(words)}" if words else ""), 40
        )
    if reason in _PREPARING:
        return PodStatus("submitted", "Preparing your server (downloading its image if needed)", 30)
    return PodStatus("starting", f"Starting your server ({reason})", 50)


__all__ = ["PodStatus", "describe", "describe_in_cluster", "format_duration", "remote_failure", "site_words"]
