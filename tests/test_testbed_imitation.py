"""The test bed's virtual kubelet says what interLink's says, word for word.

The expected values are copied from interLink/pkg/virtualkubelet/virtualkubelet.go
(NewProviderConfig for node labels, CreatePod for the submitted state).
"""

from __future__ import annotations

from offload_spawner.pipeline.catalog import DEFAULT_MODEL_LABELS
from testbed.nodes import DEFAULT_NODES, NodeSpec

INTERLINK_BASE_LABELS = {
    "alpha.service-controller.kubernetes.io/exclude-balancer": "true",
    "kubernetes.io/os": "virtual-kubelet",
    "kubernetes.io/role": "agent",
    "node.kubernetes.io/exclude-from-external-load-balancers": "true",
    "virtual-node.interlink/type": "virtual-kubelet",
}


def test_virtual_node_labels_are_exactly_interlinks():
    nodes = {spec.name: spec for spec in DEFAULT_NODES}
    assert nodes["vk-leonardo"].all_labels() == {
        **INTERLINK_BASE_LABELS,
        "kubernetes.io/hostname": "vk-leonardo",
        "nvidia-gpu-type": "a100",
    }
    assert nodes["vk-docker"].all_labels() == {
        **INTERLINK_BASE_LABELS,
        "kubernetes.io/hostname": "vk-docker",
        "xilinx-fpga-type": "u55c",
    }
    assert nodes["vk-naples"].all_labels() == {**INTERLINK_BASE_LABELS, "kubernetes.io/hostname": "vk-naples"}


def test_an_accelerator_interlink_does_not_label_gets_no_label():
    spec = NodeSpec(
        "vk-amd",
        cpu="8",
        memory="8Gi",
        backend="slurm",
        extended={"amd.com/gpu": "2"},
        models={"amd.com/gpu": "mi250", "intel.com/fpga": "agilex"},
    )
    labels = spec.all_labels()
    assert "amd-gpu-type" not in labels and labels["intel-fpga-type"] == "agilex"


def test_the_spawner_relies_only_on_labels_interlink_sets():
    assert set(DEFAULT_MODEL_LABELS.values()) == {"nvidia-gpu-type", "xilinx-fpga-type", "intel-fpga-type"}


def test_submitted_state_is_interlinks_and_the_spawner_reads_its_reason():
    from offload_spawner.remote.lifecycle import SUBMITTED_REASON as READ_REASON
    from testbed.virtual_kubelet import SUBMITTED_MESSAGE, SUBMITTED_REASON

    assert (SUBMITTED_REASON, SUBMITTED_MESSAGE) == (
        "Remote pod submitted",
        "The pod has been submitted to the remote plugin for creation",
    )
    assert READ_REASON == SUBMITTED_REASON
