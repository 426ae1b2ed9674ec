"""The pod plan: a validated selection turned into what the pod must carry.

Plain data in (catalog + selection), plain data out (:class:`PodPlan`).  The
spawner applies ``overrides`` the way KubeSpawner applies kubespawner_override,
then the rest onto the pod manifest (:mod:`offload_spawner.hub.manifest`).
Annotation values come from typed admin settings and validated numbers only.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..backends import adapter_for
from .catalog import (
    INTERLINK_TOLERATION,
    Catalog,
    PodShapeSettings,
    Profile,
    Target,
    TokenPolicy,
    accelerator_model_label,
)
from .reservations import reservation_affinity, reservation_tolerations
from .selection import Selection
from .storage import SUMMARY_ENV, StoragePlan, build_storage, join_annotations
from .unlisted_value import fill_value

TARGET_KEY = "offload-spawner.io/target"


@dataclass(frozen=True)
class PodPlan:
    target: str | None = None
    #: "none" (in this cluster), "session" (the server runs remotely) or "dask"
    offload: str = "none"
    #: kubespawner_override dicts, applied in order (profile, then its options)
    overrides: tuple[Mapping[str, Any], ...] = ()
    cpu_limit: float | None = None
    cpu_guarantee: float | None = None
    mem_limit: int | None = None
    mem_guarantee: int | None = None
    extra_resource_limits: dict[str, str] = field(default_factory=dict)
    #: cpu/memory requests written the way the target's plugin reads them
    #: (replacing KubeSpawner's numbers), or empty
    resource_requests: dict[str, str] = field(default_factory=dict)
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: tuple[dict[str, Any], ...] = ()
    annotations: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    start_timeout: int | None = None
    http_timeout: int | None = None
    hub_api_url: str | None = None
    #: which tokens the server receives and how (the target's, else the default policy)
    tokens: TokenPolicy = field(default_factory=TokenPolicy)
    #: session offload only: how the pod is reshaped for the virtual node (pod_shape.py)
    pod_shape: PodShapeSettings | None = None
    backend: str | None = None
    #: the target's display name, for progress and failure messages
    target_display_name: str | None = None
    #: the user's volumes on this target (None: built without a user, e.g. for the menu)
    storage: StoragePlan | None = None
    #: preferred node affinity terms (the user's group-reserved nodes)
    preferred_node_terms: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class Placement:
    """Where a pod that runs on a target is scheduled, and what it carries for the site."""

    tolerations: tuple[dict[str, Any], ...] = ()
    node_selector: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)


def target_placement(slug: str, target: Target, selection: Selection) -> Placement:
    """The placement of a pod that runs on ``target``: the server of a session
    target or of an in-cluster target, and every Dask pod of the target.

    On a virtual node: interLink's toleration, the node's hostname and the
    backend's annotations (from typed admin settings and ``selection``'s
    validated numbers only); then the target's own tolerations, selectors,
    annotations and labels. The pod plan and the Dask cluster spec both call it.
    """
    node_selector: dict[str, str] = {}
    annotations: dict[str, str] = {TARGET_KEY: slug}
    labels: dict[str, str] = {TARGET_KEY: slug}
    if target.is_virtual:
        node_selector["kubernetes.io/hostname"] = target.node  # type: ignore[assignment]
        annotations.update(adapter_for(target.backend).annotations(target, selection))
    node_selector.update(target.node_selector)
    annotations.update(target.annotations)
    labels.update(target.labels)
    return Placement(target_tolerations(target), node_selector, annotations, labels)


def target_tolerations(target: Target) -> tuple[dict[str, Any], ...]:
    """The tolerations of a pod that runs on ``target``: on a virtual node
    interLink's and the backend's, then the target's own. Availability checks
    the node's taints against the same list."""
    tolerations: list[dict[str, Any]] = []
    if target.is_virtual:
        tolerations.append(dict(INTERLINK_TOLERATION))
        tolerations.extend(adapter_for(target.backend).tolerations(target))
    tolerations.extend(t.model_dump(exclude_none=True) for t in target.tolerations)
    return tuple(tolerations)


def _overrides(profile: Profile | None, selection: Selection) -> tuple[Mapping[str, Any], ...]:
    if profile is None:
        return ()
    out = [copy.deepcopy(profile.kubespawner_override)]
    for key, option in profile.profile_options.items():
        pick = selection.options.get(key)
        if pick is None:
            continue
        if pick.unlisted is not None:
            out.append(fill_value(copy.deepcopy(option.unlisted_choice.kubespawner_override), pick.unlisted))
        elif pick.choice is not None:  # a pick is one or the other
            out.append(copy.deepcopy(option.choices[pick.choice].kubespawner_override))
    return tuple(o for o in out if o)


def build_plan(
    catalog: Catalog, selection: Selection, groups: Iterable[str] = (), username_slug: str | None = None
) -> PodPlan:
    """The plan for a validated selection (see :func:`offload_spawner.pipeline.selection.select`).

    ``groups`` (the user's) decide the group-reserved nodes they tolerate and
    the volumes they get; ``username_slug`` (the user's safe slug, as
    KubeSpawner's ``{username}``) fills the volumes' paths. Without it the plan
    has no storage.
    """
    groups = tuple(groups)
    profile = catalog.profile(selection.profile) if selection.profile else None
    target = catalog.offload_targets.get(selection.target) if selection.target else None
    fraction = target.request_fraction if target else 1.0

    resources: dict[str, str] = {}
    node_selector: dict[str, str] = {}
    if selection.accelerator:
        offer = profile.accelerators[selection.accelerator] if profile else None
        resources[selection.accelerator] = str(selection.accelerator_count)
        if selection.accelerator_model:
            node_selector[accelerator_model_label(selection.accelerator, offer)] = selection.accelerator_model

    tolerations: list[dict[str, Any]] = []
    annotations: dict[str, str] = {}
    labels: dict[str, str] = {}
    env: dict[str, str] = {}
    offload = "none"
    start_timeout = http_timeout = None
    hub_api_url = None
    pod_shape = None
    requests: dict[str, str] = {}
    if target is not None:
        labels[TARGET_KEY] = selection.target  # type: ignore[assignment]
        annotations[TARGET_KEY] = selection.target  # type: ignore[assignment]
        env["OFFLOAD_SPAWNER_TARGET"] = selection.target  # type: ignore[assignment]
        start_timeout, http_timeout = target.start_timeout, target.http_timeout
        if target.runs_session_remotely:
            offload = "session"
            if selection.cores is not None and selection.memory is not None:
                adapter = adapter_for(target.backend)
                requests = adapter.requests(selection.cores * fraction, int(selection.memory * fraction)) or {}
            hub_api_url = target.hub_api_url
            pod_shape = target.effective_pod_shape()
        elif target.is_virtual:
            # Only Dask clusters go to the virtual node; the session stays here.
            offload = "dask"
        if offload != "dask":
            placed = target_placement(selection.target, target, selection)  # type: ignore[arg-type]
            tolerations.extend(placed.tolerations)
            node_selector.update(placed.node_selector)
            annotations.update(placed.annotations)
            labels.update(placed.labels)
    tolerations.extend(reservation_tolerations(catalog.reservations, groups))
    storage = None
    if username_slug is not None and catalog.storage:
        storage = build_storage(catalog, selection.target, groups, username_slug, selection.storage)
        annotations = join_annotations(annotations, storage.annotations)
        env[SUMMARY_ENV] = storage.summary

    return PodPlan(
        target=selection.target,
        offload=offload,
        overrides=_overrides(profile, selection),
        cpu_limit=selection.cores,
        cpu_guarantee=None if selection.cores is None else selection.cores * fraction,
        mem_limit=selection.memory,
        mem_guarantee=None if selection.memory is None else int(selection.memory * fraction),
        extra_resource_limits=resources,
        resource_requests=requests,
        node_selector=node_selector,
        tolerations=tuple(tolerations),
        annotations=annotations,
        labels=labels,
        env=env,
        start_timeout=start_timeout,
        http_timeout=http_timeout,
        hub_api_url=hub_api_url,
        tokens=target.server_tokens if target is not None else TokenPolicy(),
        pod_shape=pod_shape,
        backend=target.backend.value if target is not None else None,
        target_display_name=target.display_name if target is not None else None,
        storage=storage,
        preferred_node_terms=tuple(reservation_affinity(catalog.reservations, groups)),
    )
