"""Apply a :class:`~offload_spawner.pipeline.plan.PodPlan` onto KubeSpawner.

Two edges: :func:`plan_traits` gives the KubeSpawner traits a plan sets
(resources, timeouts), and :func:`apply_plan_to_pod` adds placement and
metadata to the V1Pod KubeSpawner built.  Placement and metadata are added to
the finished manifest, not through KubeSpawner traits, because KubeSpawner runs
``str.format`` over ``extra_labels``/``extra_annotations``: values added here
are never re-expanded.
"""

from __future__ import annotations

from typing import Any

from kubernetes_asyncio.client.models import (
    V1Affinity,
    V1NodeAffinity,
    V1Pod,
    V1PreferredSchedulingTerm,
    V1ResourceRequirements,
    V1Toleration,
    V1Volume,
    V1VolumeMount,
)
from kubespawner.utils import get_k8s_model

from ..pipeline.plan import PodPlan
from ..pipeline.pod_shape import REMOTE_PVC_ANNOTATION, add_to_list_annotation
from ..pipeline.storage import StoragePlan


def plan_traits(plan: PodPlan) -> dict[str, Any]:
    """KubeSpawner trait values a plan sets (only the ones it decides)."""
    traits: dict[str, Any] = {}
    for name in ("cpu_limit", "cpu_guarantee", "mem_limit", "mem_guarantee", "start_timeout", "http_timeout"):
        value = getattr(plan, name)
        if value is not None:
            traits[name] = value
    claim = plan.storage.claim if plan.storage is not None else None
    if claim is not None:
        # The user's claim is created once, by KubeSpawner's own machinery
        # (storage_pvc_ensure; an existing claim is reused as it is).
        traits.update(
            storage_pvc_ensure=True,
            pvc_name=claim.name,
            storage_capacity=str(claim.size),
            storage_access_modes=list(claim.access_modes),
        )
        if claim.storage_class is not None:
            traits["storage_class"] = claim.storage_class
    return traits


#: The claim traits a plan sets for one spawn (the spawner restores them before the next).
STORAGE_TRAITS = ("storage_pvc_ensure", "pvc_name", "storage_capacity", "storage_access_modes", "storage_class")


def apply_plan_to_pod(pod: V1Pod, plan: PodPlan) -> V1Pod:
    """Add the plan's placement, accelerators and metadata to ``pod`` (in place)."""
    meta = pod.metadata
    meta.labels = {**(meta.labels or {}), **plan.labels}
    meta.annotations = {**(meta.annotations or {}), **plan.annotations}

    spec = pod.spec
    if plan.node_selector:
        spec.node_selector = {**(spec.node_selector or {}), **plan.node_selector}
    if plan.tolerations:
        present = list(spec.tolerations or [])
        for toleration in plan.tolerations:
            model = get_k8s_model(V1Toleration, toleration)
            if model not in present:
                present.append(model)
        spec.tolerations = present
    if plan.resource_requests:
        container = spec.containers[0]
        # kubernetes_asyncio types V1Container.resources as always set; a pod may have none.
        requirements: V1ResourceRequirements | None = container.resources
        if requirements is None:
            requirements = container.resources = V1ResourceRequirements()
        requirements.requests = {**(requirements.requests or {}), **plan.resource_requests}
    if plan.extra_resource_limits:
        container = spec.containers[0]
        resources: V1ResourceRequirements | None = container.resources
        if resources is None:
            resources = container.resources = V1ResourceRequirements()
        resources.limits = {**(resources.limits or {}), **plan.extra_resource_limits}
        # Extended resources cannot be overcommitted: requests must equal limits.
        resources.requests = {**(resources.requests or {}), **plan.extra_resource_limits}
    if plan.preferred_node_terms:
        affinity = spec.affinity or V1Affinity()
        node_affinity = affinity.node_affinity or V1NodeAffinity()
        preferred = list(node_affinity.preferred_during_scheduling_ignored_during_execution or [])
        preferred += [get_k8s_model(V1PreferredSchedulingTerm, term) for term in plan.preferred_node_terms]
        node_affinity.preferred_during_scheduling_ignored_during_execution = preferred
        affinity.node_affinity = node_affinity
        spec.affinity = affinity
    return pod


def apply_storage_to_pod(pod: V1Pod, storage: StoragePlan) -> V1Pod:
    """Add the user's volumes to ``pod`` (in place), after it was shaped for its
    target, so that a remote target's reshaping (PVC -> emptyDir) does not touch them."""
    spec = pod.spec
    if storage.volumes:
        spec.volumes = list(spec.volumes or []) + [get_k8s_model(V1Volume, v) for v in storage.volumes]
        container = spec.containers[0]
        container.volume_mounts = list(container.volume_mounts or []) + [
            get_k8s_model(V1VolumeMount, m) for m in storage.volume_mounts
        ]
    if storage.remote_claims:
        add_to_list_annotation(pod, REMOTE_PVC_ANNOTATION, list(storage.remote_claims))
    return pod
