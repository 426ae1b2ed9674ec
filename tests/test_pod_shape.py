"""offload_spawner.pipeline.pod_shape: the server pod reshaped for a virtual node."""

from __future__ import annotations

import copy

import pytest
from kubernetes_asyncio.client import ApiClient
from kubernetes_asyncio.client.models import (
    V1Capabilities,
    V1Container,
    V1ObjectMeta,
    V1PersistentVolumeClaimVolumeSource,
    V1Pod,
    V1PodSecurityContext,
    V1PodSpec,
    V1SecretVolumeSource,
    V1SecurityContext,
    V1Volume,
    V1VolumeMount,
)

from offload_spawner.pipeline.catalog import PodShapeSettings, build_catalog
from offload_spawner.pipeline.pod_shape import DISABLE_INIT_ANNOTATION, REMOTE_PVC_ANNOTATION, shape_pod


def z2jh_pod() -> V1Pod:
    """The shape of a Zero-to-JupyterHub user pod: home PVC, a Secret volume, block-cloud-metadata."""
    return V1Pod(
        metadata=V1ObjectMeta(name="jupyter-carol", annotations={"hub.jupyter.org/username": "carol"}),
        spec=V1PodSpec(
            containers=[
                V1Container(
                    name="notebook",
                    image="img",
                    volume_mounts=[
                        V1VolumeMount(name="home", mount_path="/home/jovyan"),
                        V1VolumeMount(name="tokens", mount_path="/secrets"),
                    ],
                    security_context=V1SecurityContext(run_as_user=1000),
                )
            ],
            init_containers=[
                V1Container(
                    name="block-cloud-metadata",
                    image="tools",
                    security_context=V1SecurityContext(run_as_user=0, capabilities=V1Capabilities(add=["NET_ADMIN"])),
                ),
                V1Container(name="fetch-config", image="tools", security_context=V1SecurityContext(run_as_user=1000)),
            ],
            volumes=[
                V1Volume(
                    name="home", persistent_volume_claim=V1PersistentVolumeClaimVolumeSource(claim_name="claim-carol")
                ),
                V1Volume(name="tokens", secret=V1SecretVolumeSource(secret_name="s")),
                {"name": "shared", "persistentVolumeClaim": {"claimName": "shared-data"}},
            ],
            security_context=V1PodSecurityContext(fs_group=100),
            automount_service_account_token=None,
        ),
    )


def as_dict(pod: V1Pod) -> dict:
    return ApiClient.sanitize_for_serialization(ApiClient.__new__(ApiClient), pod)


def volumes(pod: V1Pod) -> dict:
    return {v["name"]: {k: val for k, val in v.items() if k != "name"} for v in as_dict(pod)["spec"]["volumes"]}


def target(**fields):
    base = {"display_name": "T", "backend": "slurm", "node": "vk-leonardo"}
    return build_catalog(offload_targets={"t": {**base, **fields}}).offload_targets["t"]


def test_defaults_by_backend():
    assert target().effective_pod_shape().volumes == "emptydir"
    assert target(backend="interlink-kubernetes").effective_pod_shape().volumes == "keep"
    assert target(pod_shape={"volumes": "drop"}).effective_pod_shape().volumes == "drop"
    assert target().effective_pod_shape().automount_service_account_token is False


def test_default_shape_for_slurm():
    pod = shape_pod(z2jh_pod(), target().effective_pod_shape(), "slurm")
    out = as_dict(pod)
    assert volumes(pod) == {
        "home": {"emptyDir": {}},
        "tokens": {"secret": {"secretName": "s"}},
        "shared": {"emptyDir": {}},
    }
    assert [m["name"] for m in out["spec"]["containers"][0]["volumeMounts"]] == ["home", "tokens"]
    assert out["metadata"]["annotations"][DISABLE_INIT_ANNOTATION] == "block-cloud-metadata"
    assert [c["name"] for c in out["spec"]["initContainers"]] == ["block-cloud-metadata", "fetch-config"]
    assert out["spec"]["automountServiceAccountToken"] is False
    assert out["spec"]["securityContext"] == {"fsGroup": 100}  # nothing set: KubeSpawner's kept
    assert REMOTE_PVC_ANNOTATION not in out["metadata"]["annotations"]


def test_drop_removes_pvc_volumes_and_their_mounts():
    pod = shape_pod(z2jh_pod(), PodShapeSettings(volumes="drop", privileged_init_containers="drop"), "htcondor")
    out = as_dict(pod)
    assert set(volumes(pod)) == {"tokens"}
    assert [m["name"] for m in out["spec"]["containers"][0]["volumeMounts"]] == ["tokens"]
    assert [c["name"] for c in out["spec"]["initContainers"]] == ["fetch-config"]
    assert DISABLE_INIT_ANNOTATION not in out["metadata"]["annotations"]


def test_a_list_keeps_the_named_pvcs():
    pod = shape_pod(z2jh_pod(), PodShapeSettings(volumes=["shared"]), "docker")
    assert volumes(pod)["home"] == {"emptyDir": {}}
    assert volumes(pod)["shared"] == {"persistentVolumeClaim": {"claimName": "shared-data"}}


def test_interlink_kubernetes_keeps_pvcs_and_lists_them_for_replication():
    pod = z2jh_pod()
    pod.metadata.annotations[REMOTE_PVC_ANNOTATION] = "datasets"  # from the target's kubernetes_plugin settings
    shape_pod(pod, target(backend="interlink-kubernetes").effective_pod_shape(), "interlink-kubernetes")
    assert volumes(pod)["home"] == {"persistentVolumeClaim": {"claimName": "claim-carol"}}
    assert pod.metadata.annotations[REMOTE_PVC_ANNOTATION] == "datasets,claim-carol,shared-data"


def test_keep_leaves_privileged_init_containers_alone():
    pod = shape_pod(
        z2jh_pod(),
        PodShapeSettings(volumes="keep", privileged_init_containers="keep", automount_service_account_token=True),
        "slurm",
    )
    assert as_dict(pod) == {
        **as_dict(z2jh_pod()),
        "spec": {**as_dict(z2jh_pod())["spec"], "automountServiceAccountToken": True},
    }


def test_uid_for_the_slurm_job():
    pod = shape_pod(z2jh_pod(), PodShapeSettings(run_as_user=5123, run_as_group=600, fs_group=600), "slurm")
    out = as_dict(pod)
    assert out["spec"]["securityContext"] == {"runAsUser": 5123, "runAsGroup": 600, "fsGroup": 600}
    # The container's own runAsUser (1000) would win over the pod's: it is made to agree.
    assert out["spec"]["containers"][0]["securityContext"] == {"runAsUser": 5123, "runAsGroup": 600}
    # init containers that stay local keep their own
    assert out["spec"]["initContainers"][0]["securityContext"]["runAsUser"] == 0


def test_a_pod_without_pvcs_or_init_containers_is_only_given_the_token_setting():
    pod = V1Pod(metadata=V1ObjectMeta(name="p"), spec=V1PodSpec(containers=[V1Container(name="notebook")]))
    before = copy.deepcopy(as_dict(pod))
    shape_pod(pod, target().effective_pod_shape(), "slurm")
    assert as_dict(pod) == {**before, "spec": {**before["spec"], "automountServiceAccountToken": False}}


@pytest.mark.parametrize(
    "shape, message",
    [
        ({"volumes": "sometimes"}, "offload_targets.t.pod_shape.volumes"),
        ({"run_as_user": -1}, "offload_targets.t.pod_shape.run_as_user"),
        ({"privileged_init_containers": "remote"}, "offload_targets.t.pod_shape.privileged_init_containers"),
        ({"uid": 1000}, "offload_targets.t.pod_shape.uid: unknown key"),
    ],
)
def test_bad_pod_shape_names_the_key(shape, message):
    from offload_spawner.pipeline.catalog import CatalogError

    with pytest.raises(CatalogError) as e:
        target(pod_shape=shape)
    assert any(p.startswith(message) for p in e.value.problems), e.value.problems


def test_pod_shape_is_for_virtual_targets_only():
    from offload_spawner.pipeline.catalog import CatalogError

    with pytest.raises(CatalogError) as e:
        build_catalog(offload_targets={"c": {"display_name": "C", "pod_shape": {"volumes": "drop"}}})
    assert e.value.problems == [
        "offload_targets.c: 'network' and 'pod_shape' are for virtual-node targets, not kubernetes"
    ]


def _affinity(pod: V1Pod) -> dict:
    return as_dict(pod)["spec"].get("affinity") or {}


def test_z2jh_node_purpose_affinity_is_dropped_other_required_terms_kept():
    from kubernetes_asyncio.client.models import V1Affinity, V1NodeAffinity, V1NodeSelector

    def pod_with(expressions):
        pod = z2jh_pod()
        pod.spec.affinity = V1Affinity(
            node_affinity=V1NodeAffinity(
                required_during_scheduling_ignored_during_execution=V1NodeSelector(
                    node_selector_terms=[{"matchExpressions": expressions}]
                )
            )
        )
        return pod

    purpose = {"key": "hub.jupyter.org/node-purpose", "operator": "In", "values": ["user"]}
    zone = {"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["a"]}
    pod = shape_pod(pod_with([purpose]), target().effective_pod_shape(), "slurm")
    assert _affinity(pod) == {"nodeAffinity": {}}
    pod = shape_pod(pod_with([purpose, zone]), target().effective_pod_shape(), "slurm")
    terms = _affinity(pod)["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms == [{"matchExpressions": [zone]}]
    pod = shape_pod(pod_with([purpose]), PodShapeSettings(keep_node_purpose_affinity=True), "slurm")
    assert _affinity(pod) == as_dict(pod_with([purpose]))["spec"]["affinity"]
