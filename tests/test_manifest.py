"""offload_spawner.hub.manifest: a plan onto KubeSpawner's traits and its V1Pod."""

import pytest
from kubernetes_asyncio.client.models import V1Container, V1ObjectMeta, V1Pod, V1PodSpec, V1Toleration
from kubespawner.objects import make_pod

from offload_spawner.hub.manifest import apply_plan_to_pod, plan_traits
from offload_spawner.pipeline.catalog import INTERLINK_TOLERATION
from offload_spawner.pipeline.menu import build_menu
from offload_spawner.pipeline.plan import PodPlan, build_plan
from offload_spawner.pipeline.selection import select

GI = 2**30
GPU_USER = ["cms", "ai-infn", "gpu-users"]


def kube_pod(**kwargs):
    args = dict(name="jupyter-alice", cmd=["jupyterhub-singleuser"], port=8888, image="ghcr.io/org/alma9:1.0")
    args.update(kwargs)
    return make_pod(**args)


def _drop_none(value):
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value


def as_dict(pod):
    """The pod as the API would receive it (camelCase keys, no unset fields)."""
    return _drop_none(pod.to_dict(serialize=True))


@pytest.fixture
def leonardo_plan(contract_catalog):
    selection = select(
        build_menu(contract_catalog, GPU_USER),
        {
            "target": "leonardo",
            "cores": 4,
            "memory": "8G",
            "accelerator": "nvidia.com/gpu:a100",
            "accelerator_count": 2,
        },
    )
    return build_plan(contract_catalog, selection)


def test_plan_traits(leonardo_plan):
    assert plan_traits(leonardo_plan) == {
        "cpu_limit": 4,
        "cpu_guarantee": 4,
        "mem_limit": 8 * GI,
        "mem_guarantee": 8 * GI,
    }


def test_plan_traits_only_what_the_plan_decides():
    assert plan_traits(PodPlan()) == {}
    assert plan_traits(PodPlan(start_timeout=900, http_timeout=60)) == {"start_timeout": 900, "http_timeout": 60}


def test_apply_plan_to_a_kubespawner_pod(leonardo_plan):
    pod = kube_pod(
        labels={"component": "singleuser-server"},
        annotations={"hub.jupyter.org/username": "alice"},
        node_selector={"hub.jupyter.org/node-purpose": "user"},
        tolerations=[
            {"key": "hub.jupyter.org/dedicated", "operator": "Equal", "value": "user", "effect": "NoSchedule"}
        ],
        cpu_limit=4,
        mem_limit=8 * GI,
    )
    apply_plan_to_pod(pod, leonardo_plan)
    data = as_dict(pod)
    meta, spec = data["metadata"], data["spec"]
    assert meta["labels"] == {"component": "singleuser-server", "offload-spawner.io/target": "leonardo"}
    assert meta["annotations"]["hub.jupyter.org/username"] == "alice"
    assert meta["annotations"]["offload-spawner.io/target"] == "leonardo"
    assert meta["annotations"]["slurm-job.vk.io/flags"].startswith("--partition=boost_usr_prod ")
    assert spec["nodeSelector"] == {
        "hub.jupyter.org/node-purpose": "user",
        "kubernetes.io/hostname": "vk-leonardo",
        "nvidia-gpu-type": "a100",
    }
    assert spec["tolerations"] == [
        {"key": "hub.jupyter.org/dedicated", "operator": "Equal", "value": "user", "effect": "NoSchedule"},
        {"key": "virtual-node.interlink/no-schedule", "operator": "Exists", "effect": "NoSchedule"},
    ]
    resources = spec["containers"][0]["resources"]
    assert resources["limits"]["nvidia.com/gpu"] == "2"
    assert resources["requests"]["nvidia.com/gpu"] == "2"  # extended resources: requests == limits
    assert str(resources["limits"]["cpu"]) == "4"  # KubeSpawner's own resources are kept
    assert resources["limits"]["memory"] == 8 * GI


def test_toleration_already_present_is_not_duplicated(leonardo_plan):
    pod = kube_pod(tolerations=[dict(INTERLINK_TOLERATION)])
    apply_plan_to_pod(pod, leonardo_plan)
    apply_plan_to_pod(pod, leonardo_plan)  # applying twice changes nothing either
    tolerations = as_dict(pod)["spec"]["tolerations"]
    assert tolerations == [{"key": "virtual-node.interlink/no-schedule", "operator": "Exists", "effect": "NoSchedule"}]


def test_plan_wins_on_a_conflicting_node_selector(leonardo_plan):
    pod = kube_pod(node_selector={"kubernetes.io/hostname": "some-node", "zone": "a"})
    apply_plan_to_pod(pod, leonardo_plan)
    assert as_dict(pod)["spec"]["nodeSelector"] == {
        "kubernetes.io/hostname": "vk-leonardo",
        "zone": "a",
        "nvidia-gpu-type": "a100",
    }


def test_simple_pod_without_resources_or_metadata_maps():
    pod = V1Pod(metadata=V1ObjectMeta(name="p"), spec=V1PodSpec(containers=[V1Container(name="notebook", image="x")]))
    plan = PodPlan(
        target="t",
        tolerations=(dict(INTERLINK_TOLERATION),),
        node_selector={"kubernetes.io/hostname": "vk-t"},
        extra_resource_limits={"xilinx.com/fpga": "1"},
        labels={"offload-spawner.io/target": "t"},
        annotations={"offload-spawner.io/target": "t"},
    )
    apply_plan_to_pod(pod, plan)
    assert pod.metadata.labels == {"offload-spawner.io/target": "t"}
    assert pod.metadata.annotations == {"offload-spawner.io/target": "t"}
    assert pod.spec.node_selector == {"kubernetes.io/hostname": "vk-t"}
    assert pod.spec.tolerations == [
        V1Toleration(key="virtual-node.interlink/no-schedule", operator="Exists", effect="NoSchedule")
    ]
    resources = pod.spec.containers[0].resources
    assert resources.limits == {"xilinx.com/fpga": "1"}
    assert resources.requests == {"xilinx.com/fpga": "1"}


def test_existing_extended_request_is_overwritten_to_match_the_limit():
    pod = kube_pod(extra_resource_guarantees={"nvidia.com/gpu": "1"}, extra_resource_limits={"nvidia.com/gpu": "1"})
    apply_plan_to_pod(pod, PodPlan(extra_resource_limits={"nvidia.com/gpu": "3"}))
    resources = as_dict(pod)["spec"]["containers"][0]["resources"]
    assert resources["limits"]["nvidia.com/gpu"] == resources["requests"]["nvidia.com/gpu"] == "3"


def test_empty_plan_leaves_the_pod_as_kubespawner_made_it():
    pod = kube_pod(labels={"a": "b"}, node_selector={"n": "1"}, tolerations=[{"key": "k", "operator": "Exists"}])
    before = as_dict(pod)
    apply_plan_to_pod(pod, PodPlan())
    assert as_dict(pod) == before


def test_only_the_notebook_container_gets_accelerators():
    pod = kube_pod(extra_containers=[{"name": "sidecar", "image": "busybox"}])
    apply_plan_to_pod(pod, PodPlan(extra_resource_limits={"nvidia.com/gpu": "1"}))
    containers = as_dict(pod)["spec"]["containers"]
    assert containers[0]["name"] == "notebook"
    assert containers[0]["resources"]["limits"] == {"nvidia.com/gpu": "1"}
    sidecar = next(c for c in containers if c["name"] == "sidecar")
    assert "nvidia.com/gpu" not in str(sidecar.get("resources"))


def test_metadata_values_are_not_re_expanded():
    """Values are added to the finished manifest, so braces are never str.format-ed."""
    pod = kube_pod()
    apply_plan_to_pod(pod, PodPlan(annotations={"example.org/a": "{username}"}))
    assert pod.metadata.annotations["example.org/a"] == "{username}"
