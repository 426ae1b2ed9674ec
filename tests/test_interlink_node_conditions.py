"""Availability reads a virtual node's conditions as interLink's virtual kubelet writes them.

interLink's virtual kubelet (interLink pkg/virtualkubelet/virtualkubelet.go,
``nodeUpdate``, ``NodeCondition`` and ``NodeConditionWithInterlink``) pings its
API server every 30 s and then replaces the node's conditions with: ``Ready``
True/False whose reason is always ``KubeletPending`` ("kubelet is pending."),
four pressure conditions, and ``InterlinkConnectivity`` True/False with reason
``InterlinkPingSuccessful`` / ``InterlinkPingFailed`` and the ping's result as
message. The conditions below are those, field for field;
tests/e2e/test_faults_e2e.py gets them from the real virtual kubelet.
"""

from __future__ import annotations

from offload_spawner.availability.availability import admission_refusal, cluster_view, node_state, target_availability
from test_availability import A100, TAINT

PING_ERROR = 'Ping failed: Post "http://127.0.0.1:4321/pinglink": dial tcp 127.0.0.1:4321: connect: connection refused'


def interlink_conditions(ready: bool, link_reason: str, link_message: str) -> list[dict[str, str]]:
    """``NodeConditionWithInterlink(ready, ...)`` as the API returns it (timestamps left out)."""
    return [
        {
            "type": "Ready",
            "status": "True" if ready else "False",
            "reason": "KubeletPending",
            "message": "kubelet is pending.",
        },
        {
            "type": "OutOfDisk",
            "status": "False",
            "reason": "KubeletHasSufficientDisk",
            "message": "kubelet has sufficient disk space available",
        },
        {
            "type": "MemoryPressure",
            "status": "False",
            "reason": "KubeletHasSufficientMemory",
            "message": "kubelet has sufficient memory available",
        },
        {
            "type": "DiskPressure",
            "status": "False",
            "reason": "KubeletHasNoDiskPressure",
            "message": "kubelet has no disk pressure",
        },
        {
            "type": "NetworkUnavailable",
            "status": "False" if ready else "True",
            "reason": "RouteCreated",
            "message": "RouteController created a route",
        },
        {
            "type": "InterlinkConnectivity",
            "status": "True" if ready else "False",
            "reason": link_reason,
            "message": link_message,
        },
    ]


def vk_node(conditions: list[dict[str, str]]) -> dict:
    allocatable = {"cpu": "32", "memory": "480Gi", "pods": "100", "nvidia.com/gpu": "4"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": "vk-leonardo", "labels": {"nvidia-gpu-type": "a100"}},
        "spec": {"taints": [TAINT]},
        "status": {"allocatable": allocatable, "capacity": allocatable, "conditions": conditions},
    }


def test_a_failed_interlink_ping_is_the_reason_a_site_is_down(contract_catalog):
    node = vk_node(interlink_conditions(False, "InterlinkPingFailed", PING_ERROR))
    state = node_state("vk-leonardo", node, [])
    assert not state.ready
    assert (state.reason, state.message) == ("InterlinkPingFailed", PING_ERROR)
    a = target_availability("leonardo", contract_catalog.offload_targets["leonardo"], [A100], cluster_view([node]))
    assert a.status == "down"
    assert a.reason.startswith("interLink ping failed: Ping failed: ")
    assert "kubelet is pending" not in a.reason
    refusal = admission_refusal(a, 1, 2**30)
    assert refusal.startswith("CINECA Leonardo (SLURM) is down (interLink ping failed: ")
    assert refusal.endswith("try again later or pick another target.")


def test_a_successful_ping_is_shown_for_a_ready_site(contract_catalog):
    node = vk_node(interlink_conditions(True, "InterlinkPingSuccessful", "Ping successful with code 200"))
    a = target_availability("leonardo", contract_catalog.offload_targets["leonardo"], [A100], cluster_view([node]))
    assert a.status == "up"
    assert a.reason == "interLink ping OK"


def test_a_node_not_ready_for_another_reason_says_so_not_the_last_ping(contract_catalog):
    """The node lifecycle controller marks a silent node Unknown; the last ping's words
    (successful) would contradict that and are not shown."""
    conditions = interlink_conditions(True, "InterlinkPingSuccessful", "Ping successful with code 200")
    conditions[0] = {
        "type": "Ready",
        "status": "Unknown",
        "reason": "NodeStatusUnknown",
        "message": "Kubelet stopped posting node status.",
    }
    node = vk_node(conditions)
    a = target_availability("leonardo", contract_catalog.offload_targets["leonardo"], [A100], cluster_view([node]))
    assert a.status == "down"
    assert a.reason == "the site's virtual node is not ready (Kubelet stopped posting node status.)"
