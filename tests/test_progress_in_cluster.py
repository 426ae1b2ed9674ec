"""describe_in_cluster: a server on the hub's own cluster, in a user's words.

The pod and event dicts are shaped as the API server returns them (a kubelet's
waiting reasons; the scheduler's FailedScheduling event). The spawner feeds
this from KubeSpawner's reflectors; tests/e2e/test_progress_in_cluster_e2e.py
reads the hub's progress stream on the test bed.
"""

from __future__ import annotations

import re

import pytest

from offload_spawner.remote.lifecycle import describe_in_cluster

RAW = re.compile(r"\d{4}-\d\d-\d\dT|\[(Normal|Warning)\]|jupyter-|node-local|Successfully assigned")
EVENTS = [
    {
        "reason": "Scheduled",
        "message": "Successfully assigned jhub/jupyter-bob to node-local",
        "lastTimestamp": "2026-12-01T21:50:00Z",
    },
]


def pod(node=None, phase="Pending", waiting=None, ready=False):
    status: dict = {"phase": phase}
    if waiting is not None:
        status["containerStatuses"] = [{"name": "notebook", "state": {"waiting": waiting}}]
    if ready:
        status["conditions"] = [{"type": "Ready", "status": "True"}]
    return {"metadata": {"name": "jupyter-bob"}, "spec": {"nodeName": node} if node else {}, "status": status}


@pytest.mark.parametrize(
    ("the_pod", "phase", "start"),
    [
        (None, "requested", "Requesting your server"),
        (pod(), "scheduling", "Waiting for room in this cluster"),
        (pod("node-local"), "submitted", "Preparing your server"),
        (pod("node-local", waiting={"reason": "ContainerCreating"}), "submitted", "Preparing your server"),
        (
            pod("node-local", waiting={"reason": "ImagePullBackOff", "message": 'Back-off pulling image "x"'}),
            "starting",
            "The server's image cannot be downloaded: Back-off pulling image",
        ),
        (pod("node-local", phase="Running"), "starting", "Starting your server"),
        (pod("node-local", phase="Running", ready=True), "running", "Your server is running"),
        (pod("node-local", phase="Failed"), "failed", "Your server could not start"),
    ],
)
def test_each_state_in_a_users_words(the_pod, phase, start):
    status = describe_in_cluster(the_pod, EVENTS)
    assert status.phase == phase and status.message.startswith(start), status
    assert not RAW.search(status.message), status.message


def test_the_schedulers_reason_is_given_without_event_decoration():
    events = [
        {
            "reason": "FailedScheduling",
            "message": "0/4 nodes are available: 4 Insufficient cpu.",
            "lastTimestamp": "2026-12-01T21:50:00Z",
        }
    ]
    status = describe_in_cluster(pod(), events)
    assert status.message == "Waiting for room in this cluster (0/4 nodes are available: 4 Insufficient cpu.)"
