"""Live availability of targets and accelerators, and admission at spawn time.

Pure logic, plain data in and out: the cluster state is the Node and Pod
objects as the Kubernetes API returns them (JSON dicts, camelCase) — the same
shape ``offload-spawner render|form --cluster FILE`` reads and the watcher
(:mod:`offload_spawner.availability.watcher`) keeps in memory. No I/O here.

* :func:`node_state` — one node: Ready and the interLink ping condition,
  cordon, taints, allocatable, and what the pods bound to it request.
* :func:`target_availability` — one target as one user sees it: up / down /
  unknown with a reason, free cores and memory, and per accelerator model
  total / used / available, minus in-flight reservations.
* :func:`admission_refusal` — does a pod plan fit what is free now? A message
  a user understands when it does not.

Targets of backend ``kubernetes`` run on the cluster's ordinary nodes, which
the scheduler picks among; their availability is "unknown" (not tracked) and
they are never refused here. Virtual-node targets name one node.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from ..pipeline.catalog import Catalog, Reservation, Target
from ..pipeline.menu import Menu
from ..pipeline.plan import target_tolerations
from ..pipeline.reservations import reservation_tolerations, reserved_for
from ..pipeline.units import format_cores, format_memory

PING_OK = "InterlinkPingSuccessful"
PING_FAILED = "InterlinkPingFailed"
#: The node condition in which interLink's virtual kubelet reports its ping.
INTERLINK_CONDITION = "InterlinkConnectivity"
#: Node conditions carry site text; keep what reaches a page short.
MAX_REASON = 200
_FINISHED_PHASES = frozenset({"Succeeded", "Failed"})
_SUFFIXES: dict[str, int | Decimal] = {
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
}
_QUANTITY = re.compile(
    r"^\s*([+-]?\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|[+-]?\.\d+)\s*(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?\s*$"
)


def parse_quantity(value: Any) -> float:
    """A Kubernetes resource quantity ("32", "500m", "480Gi", 4) as a number; 0 if unreadable."""
    if isinstance(value, bool):
        return 0.0
    if isinstance(value, (int, float)):
        return float(value)
    return _parse_quantity_text(str(value))


@functools.lru_cache(maxsize=4096)
def _parse_quantity_text(value: str) -> float:
    # Pods repeat the same few quantities ("500m", "4Gi"): parse each once.
    match = _QUANTITY.match(value)
    if not match:
        return 0.0
    try:
        return float(Decimal(match.group(1)) * Decimal(_SUFFIXES[match.group(2) or ""]))
    except InvalidOperation:
        return 0.0


def _short(text: Any) -> str:
    flat = " ".join(str(text or "").split())
    return flat if len(flat) <= MAX_REASON else flat[: MAX_REASON - 1] + "…"


def pod_requests(pod: Mapping[str, Any]) -> dict[str, float]:
    """What the scheduler counts for a pod: the larger of the containers' sum and
    any init container, plus overhead (requests, else limits as the API defaults them)."""
    spec = pod.get("spec") or {}

    def of(container: Mapping[str, Any]) -> dict[str, float]:
        resources = container.get("resources") or {}
        merged = {**(resources.get("limits") or {}), **(resources.get("requests") or {})}
        return {k: parse_quantity(v) for k, v in merged.items()}

    total: dict[str, float] = {}
    for container in spec.get("containers") or []:
        for k, v in of(container).items():
            total[k] = total.get(k, 0.0) + v
    for container in spec.get("initContainers") or []:
        for k, v in of(container).items():
            total[k] = max(total.get(k, 0.0), v)
    for k, v in (spec.get("overhead") or {}).items():
        total[k] = total.get(k, 0.0) + parse_quantity(v)
    return total


def pod_key(pod: Mapping[str, Any]) -> str:
    meta = pod.get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


@dataclass(frozen=True)
class NodeState:
    """One node as the availability logic needs it."""

    name: str
    registered: bool
    ready: bool = False
    reason: str = ""
    message: str = ""
    unschedulable: bool = False
    taints: tuple[Mapping[str, Any], ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    allocatable: Mapping[str, float] = field(default_factory=dict)
    used: Mapping[str, float] = field(default_factory=dict)
    #: "namespace/name" of the pods counted in ``used``
    pods: frozenset[str] = frozenset()


def node_state(name: str, node: Mapping[str, Any] | None, pods: Iterable[Mapping[str, Any]]) -> NodeState:
    """The state of node ``name`` (``node`` None: not registered) and the pods bound to it."""
    if node is None:
        return NodeState(name=name, registered=False)
    meta, spec, status = node.get("metadata") or {}, node.get("spec") or {}, node.get("status") or {}
    conditions = {c.get("type"): c for c in status.get("conditions") or [] if isinstance(c, Mapping)}
    ready = conditions.get("Ready")
    is_ready = ready is not None and ready.get("status") == "True"
    # interLink's virtual kubelet reports its ping in a condition of its own and leaves
    # Ready's reason at "KubeletPending" (interLink pkg/virtualkubelet/virtualkubelet.go,
    # nodeUpdate / NodeConditionWithInterlink): its words say why, when they agree with Ready.
    link = conditions.get(INTERLINK_CONDITION)
    about = link if link is not None and link.get("reason") == (PING_OK if is_ready else PING_FAILED) else ready
    used: dict[str, float] = {}
    counted = set()
    for pod in pods:
        if (pod.get("spec") or {}).get("nodeName") != name:
            continue
        if (pod.get("status") or {}).get("phase") in _FINISHED_PHASES:
            continue
        counted.add(pod_key(pod))
        for k, v in pod_requests(pod).items():
            used[k] = used.get(k, 0.0) + v
    return NodeState(
        name=name,
        registered=True,
        ready=is_ready,
        reason=_short((about or {}).get("reason", "")),
        message=_short((about or {}).get("message", "")),
        unschedulable=bool(spec.get("unschedulable")),
        taints=tuple(spec.get("taints") or ()),
        labels=dict(meta.get("labels") or {}),
        allocatable={k: parse_quantity(v) for k, v in (status.get("allocatable") or {}).items()},
        used=used,
        pods=frozenset(counted),
    )


@dataclass(frozen=True)
class ClusterView:
    """What is known of the cluster. ``known`` False: availability is unknown
    (e.g. the hub may not read nodes); ``note`` says why."""

    known: bool
    nodes: Mapping[str, NodeState] = field(default_factory=dict)
    note: str = ""

    def node(self, name: str) -> NodeState:
        return self.nodes.get(name) or NodeState(name=name, registered=False)


#: What the form says when nothing more precise is known (notes below are worded for users too).
UNKNOWN_REASON = "free capacity is not shown here"
UNKNOWN = ClusterView(known=False, note=UNKNOWN_REASON)
#: A target on the cluster's own nodes: the scheduler picks a node, no one node's capacity tells.
IN_CLUSTER_REASON = "free capacity is not shown for this cluster; its scheduler finds room for your server"


def _flatten(objects: Iterable[Any]) -> Iterable[Mapping[str, Any]]:
    for obj in objects:
        if not isinstance(obj, Mapping):
            continue
        if isinstance(obj.get("items"), list):  # a NodeList / PodList / List
            yield from _flatten(obj["items"])
        else:
            yield obj


def cluster_view(objects: Iterable[Any], node_names: Iterable[str] | None = None) -> ClusterView:
    """A view from Node and Pod objects (a ``--cluster`` file, or a watcher's cache).

    ``node_names`` limits the view to the nodes targets name (default: every node given).
    """
    nodes: dict[str, Mapping[str, Any]] = {}
    pods: dict[str, list[Mapping[str, Any]]] = {}
    for obj in _flatten(objects):
        kind, name = obj.get("kind"), (obj.get("metadata") or {}).get("name")
        if kind == "Node" and name:
            nodes[name] = obj
        elif kind == "Pod":
            pods.setdefault((obj.get("spec") or {}).get("nodeName") or "", []).append(obj)
    names = set(nodes) if node_names is None else set(node_names)
    return ClusterView(
        known=True,
        nodes={n: node_state(n, nodes.get(n), pods.get(n, [])) for n in sorted(names)},
    )


# --- reservations ---------------------------------------------------------------


@dataclass(frozen=True)
class Demand:
    """What one spawning pod will take from its node (its requests)."""

    node: str
    cores: float = 0.0
    memory: float = 0.0
    #: extended resources, e.g. {"nvidia.com/gpu": 1}
    extended: Mapping[str, float] = field(default_factory=dict)
    #: "namespace/name" of the pod; once the node's pods include it, it counts as used
    pod: str = ""

    def amount(self, resource: str) -> float:
        if resource == "cpu":
            return self.cores
        if resource == "memory":
            return self.memory
        return float(self.extended.get(resource, 0))


def reserved_on(node: NodeState, reservations: Iterable[Demand]) -> dict[str, float]:
    """What in-flight spawns hold on ``node``, not counting pods already bound there."""
    out: dict[str, float] = {}
    for demand in reservations:
        if demand.node != node.name or (demand.pod and demand.pod in node.pods):
            continue
        for resource in ("cpu", "memory", *demand.extended):
            out[resource] = out.get(resource, 0.0) + demand.amount(resource)
    return out


# --- per target -------------------------------------------------------------------


@dataclass(frozen=True)
class AcceleratorOffered:
    """An accelerator a target offers the user (from their menu)."""

    resource: str
    display_name: str
    model_label: str
    models: tuple[str, ...]


@dataclass(frozen=True)
class ModelAvailability:
    resource: str
    model: str
    display_name: str
    total: int
    used: int
    available: int

    @property
    def key(self) -> str:
        return f"{self.resource}:{self.model}"


@dataclass(frozen=True)
class TargetAvailability:
    slug: str
    display_name: str
    #: "up", "down" or "unknown"
    status: str
    reason: str = ""
    cores_total: float | None = None
    cores_free: float | None = None
    memory_total: float | None = None
    memory_free: float | None = None
    models: tuple[ModelAvailability, ...] = ()
    #: requests = limits × this fraction (the target's request_fraction)
    request_fraction: float = 1.0

    def model(self, resource: str, model: str) -> ModelAvailability | None:
        return next((m for m in self.models if m.resource == resource and m.model == model), None)

    @property
    def summary(self) -> str:
        """One line for the form."""
        if self.status == "unknown":
            # The reason is already a user's sentence ("this site does not publish its free capacity").
            reason = self.reason or UNKNOWN_REASON
            return reason[:1].upper() + reason[1:]
        if self.status == "down":
            return f"Down: {self.reason}"
        parts = ["Up"]
        if self.cores_free is not None and self.cores_total is not None:
            parts.append(f"{self.cores_free:g} of {format_cores(self.cores_total)} free")
        if self.memory_free is not None and self.memory_total is not None:
            parts.append(f"{_memory(self.memory_free)} of {_memory(self.memory_total)} memory free")
        for m in self.models:
            parts.append(f"{m.display_name} {m.model}: {m.total} total, {m.used} used, {m.available} available")
        return " · ".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "reason": self.reason,
            "summary": self.summary,
            "cores_total": self.cores_total,
            "cores_free": self.cores_free,
            "memory_total": self.memory_total,
            "memory_free": self.memory_free,
            "request_fraction": self.request_fraction,
            "accelerators": {m.key: {"total": m.total, "used": m.used, "available": m.available} for m in self.models},
        }


def _memory(size: float) -> str:
    return format_memory(int(size)) if size >= 1 else "0"


def _tolerated(taint: Mapping[str, Any], tolerations: Iterable[Mapping[str, Any]]) -> bool:
    for tol in tolerations:
        if tol.get("effect") and tol.get("effect") != taint.get("effect"):
            continue
        if tol.get("operator") == "Exists":
            if not tol.get("key") or tol.get("key") == taint.get("key"):
                return True
        elif tol.get("key") == taint.get("key") and (tol.get("value") or "") == (taint.get("value") or ""):
            return True
    return False


def _down_reason(
    node: NodeState, tolerations: Sequence[Mapping[str, Any]], node_reservations: Iterable[Reservation] = ()
) -> str | None:
    if not node.registered:
        return "the site's virtual node is not registered in the cluster"
    if not node.ready:
        if node.reason == PING_FAILED:
            return f"interLink ping failed{f': {node.message}' if node.message else ''}"
        detail = node.message or node.reason or "not ready"
        return f"the site's virtual node is not ready ({detail})"
    if node.unschedulable:
        return "the site is closed to new sessions by the admins (node cordoned)"
    for taint in node.taints:
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not _tolerated(taint, tolerations):
            groups = reserved_for(node_reservations, taint)
            if groups is not None:
                return f"the site is reserved for the group{'s' if len(groups) > 1 else ''} {', '.join(groups)}"
            return f"the site is closed to new sessions (taint {_short(taint.get('key'))})"
    return None


def target_availability(
    slug: str,
    target: Target,
    offered: Iterable[AcceleratorOffered],
    view: ClusterView,
    reservations: Iterable[Demand] = (),
    node_reservations: Iterable[Reservation] = (),
    groups: Iterable[str] = (),
) -> TargetAvailability:
    """Availability of one target as one user sees it (only the accelerators offered to them).

    ``node_reservations`` are the catalog's group-reserved nodes: such a node
    counts for members of ``groups`` that may use it, and is closed to others.
    """
    common: dict[str, Any] = {
        "slug": slug,
        "display_name": target.display_name,
        "request_fraction": target.request_fraction,
    }
    if not target.is_virtual or not target.node:
        return TargetAvailability(status="unknown", reason=IN_CLUSTER_REASON, **common)
    if not view.known:
        return TargetAvailability(status="unknown", reason=view.note, **common)
    node = view.node(target.node)
    node_reservations = list(node_reservations)
    tolerations = [*target_tolerations(target), *reservation_tolerations(node_reservations, groups)]
    down = _down_reason(node, tolerations, node_reservations)
    held = reserved_on(node, reservations)

    def free(resource: str) -> float:
        return max(0.0, node.allocatable.get(resource, 0.0) - node.used.get(resource, 0.0) - held.get(resource, 0.0))

    models = []
    for offer in offered:
        node_model = node.labels.get(offer.model_label)
        for model in offer.models:
            total = int(node.allocatable.get(offer.resource, 0)) if node_model == model else 0
            used = int(node.used.get(offer.resource, 0) + held.get(offer.resource, 0)) if total else 0
            available = 0 if down else max(0, total - used)
            models.append(
                ModelAvailability(offer.resource, model, offer.display_name, total, min(used, total), available)
            )
    return TargetAvailability(
        status="down" if down else "up",
        reason=down or ("interLink ping OK" if node.reason == PING_OK else ""),
        cores_total=node.allocatable.get("cpu", 0.0) if node.registered else None,
        cores_free=round(free("cpu"), 3) if node.registered else None,
        memory_total=node.allocatable.get("memory", 0.0) if node.registered else None,
        memory_free=free("memory") if node.registered else None,
        models=tuple(models),
        **common,
    )


# --- admission ----------------------------------------------------------------------


def admission_refusal(
    availability: TargetAvailability,
    cores: float | None,
    memory: float | None,
    accelerator: str | None = None,
    model: str | None = None,
    count: int = 0,
) -> str | None:
    """Why a pod requesting this cannot start on the target now (None: it fits, or unknown).

    ``cores`` and ``memory`` are the pod's *requests*; ``count`` accelerators of ``model``.
    """
    a = availability
    later = "; try again later or pick another target."
    if a.status == "unknown":
        return None
    if a.status == "down":
        return f"{a.display_name} is down ({a.reason.rstrip('.')}){later}"
    if accelerator and count:
        m = a.model(accelerator, model or "")
        if m is not None and m.available < count:
            name = f"{m.display_name} {m.model}"
            if m.total == 0:
                return f"{a.display_name} has no {name}{later}"
            if m.available == 0:
                return f"All {m.total} {name} on {a.display_name} are in use{later}"
            return (
                f"Only {m.available} of {m.total} {name} on {a.display_name} are free and you asked for {count}{later}"
            )
    if cores and a.cores_free is not None and cores > a.cores_free + 1e-9:
        return f"Only {format_cores(a.cores_free)} are free on {a.display_name} and you asked for {cores:g}{later}"
    if memory and a.memory_free is not None and memory > a.memory_free:
        return (
            f"Only {_memory(a.memory_free)} of memory is free on {a.display_name} and you asked for "
            f"{_memory(memory)}{later}"
        )
    return None


def plan_refusal(availability: TargetAvailability, plan: Any, selection: Any) -> str | None:
    """Why a planned spawn cannot start on its target now (None: it fits, or unknown).

    ``plan`` is a :class:`~offload_spawner.pipeline.plan.PodPlan`, ``selection`` its
    :class:`~offload_spawner.pipeline.selection.Selection`. A session needs its requests
    free; a server whose Dask clusters go there needs only the site up."""
    if plan.offload == "dask":
        return admission_refusal(availability, None, None) if availability.status == "down" else None
    return admission_refusal(
        availability,
        plan.cpu_guarantee,
        plan.mem_guarantee,
        selection.accelerator,
        selection.accelerator_model,
        selection.accelerator_count,
    )


# --- a user's menu -------------------------------------------------------------------


def offered_accelerators(menu: Menu) -> dict[str, list[AcceleratorOffered]]:
    """Per target slug, the accelerator models any of the user's profiles offers there."""
    merged: dict[str, dict[tuple[str, str], list[str]]] = {}
    names: dict[str, str] = {}
    for profile in menu.profiles:
        for target in profile.targets:
            if target.slug is None:
                continue
            per_target = merged.setdefault(target.slug, {})
            for acc in target.accelerators:
                models = per_target.setdefault((acc.resource, acc.model_label), [])
                models += [m for m in acc.models if m not in models]
                names.setdefault(acc.resource, acc.display_name)
    return {
        slug: [AcceleratorOffered(r, names[r], label, tuple(models)) for (r, label), models in per.items()]
        for slug, per in merged.items()
    }


def menu_availability(
    menu: Menu, catalog: Catalog, view: ClusterView, reservations: Iterable[Demand] = ()
) -> dict[str, TargetAvailability]:
    """Availability of every target in the user's menu: only what they may see."""
    reservations = list(reservations)
    return {
        slug: target_availability(
            slug, catalog.offload_targets[slug], offers, view, reservations, catalog.reservations, menu.groups
        )
        for slug, offers in offered_accelerators(menu).items()
        if slug in catalog.offload_targets
    }
