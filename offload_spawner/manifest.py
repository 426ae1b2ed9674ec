"""Apply a :class:`~offload_spawner.plan.PodPlan` onto KubeSpawner.

Two edges: :func:`plan_traits` gives the KubeSpawner traits a plan sets
(resources, timeouts), and :func:`apply_plan_to_pod` adds placement and
metadata to the V1Pod KubeSpawner built.  Placement and metadata are added to
the finished manifest, not through KubeSpawner traits, because KubeSpawner runs
``str.format`` over ``extra_labels``/``extra_annotations``: values added here
are never re-expanded.
"""

from __future__ import annotations

from typing import Any

from kubernetes_asyncio.client.models import V1Pod, V1ResourceRequirements, V1Toleration
from kubespawner.utils import get_k8s_model

from .plan import PodPlan


def plan_traits(plan: PodPlan) -> dict[str, Any]:
    """KubeSpawner trait values a plan sets (only the ones it decides)."""
    traits: dict[str, Any] = {}
    for name in ("cpu_limit", "cpu_guarantee", "mem_limit", "mem_guarantee", "start_timeout", "http_timeout"):
        value = getattr(plan, name)
        if value is not None:
            traits[name] = value
    return traits


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
        if container.resources is None:
            container.resources = V1ResourceRequirements()
        container.resources.requests = {**(container.resources.requests or {}), **plan.resource_requests}
    if plan.extra_resource_limits:
        container = spec.containers[0]
        if container.resources is None:
            container.resources = V1ResourceRequirements()
        resources = container.resources
        resources.limits = {**(resources.limits or {}), **plan.extra_resource_limits}
        # Extended resources cannot be overcommitted: requests must equal limits.
        resources.requests = {**(resources.requests or {}), **plan.extra_resource_limits}
    return pod
