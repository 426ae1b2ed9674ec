"""Prometheus metrics of offload_spawner, on JupyterHub's own registry.

JupyterHub serves ``prometheus_client``'s default ``REGISTRY`` at
``/hub/metrics`` (``jupyterhub/handlers/metrics.py``: ``generate_latest(REGISTRY)``)
and defines its own metrics on it the same way (``jupyterhub/metrics.py``), so
the metrics below appear next to JupyterHub's with no extra endpoint.

Every label value is bounded: ``target`` is an admin-configured target slug
(else ``other``), ``backend`` one of the catalog's backends, ``outcome``,
``reason`` and ``state`` come from the fixed tuples below, accelerator
``resource`` and ``model`` from the admin's catalog. No user name or free text
ever becomes a label.

All definitions are here; the events call the small ``note_*`` functions.
Capacity and allocation are not pushed: :class:`CapacityCollector` reads the
availability watcher's memory (:mod:`offload_spawner.availability.watcher`) when Prometheus
scrapes, so the figures are never stale.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily

from .availability.availability import AcceleratorOffered, target_availability
from .pipeline.catalog import Backend, accelerator_model_label
from .spawner_base import SpawnerBase

PREFIX = "offload_spawner"
OTHER = "other"
#: the ``target`` label when no target applies (a hub without offload targets, nothing fitted)
NO_TARGET = "none"

#: why a spawn was refused before anything was created
REFUSAL_REASONS = ("selection", "capacity", "target_down", "no_target_fits", "login_expired", "config", OTHER)
#: how a spawn ended
SPAWN_OUTCOMES = ("succeeded", "remote_failure", "timeout", "refused", "cancelled", "failed")
#: what a token refresh did
TOKEN_OUTCOMES = ("refreshed", "failed", "no_refresh_token")
#: KubeSpawner/JupyterHub SpawnException reasons -> outcome (remote_session.py, spawn_errors.py)
_OUTCOME_OF_REASON = {
    "remote_failure": "remote_failure",
    "timeout": "timeout",
    "invalid_user_options": "refused",
    "login_expired": "refused",
}
_BACKENDS = tuple(b.value for b in Backend)
#: what a target slug may be (the catalog's Slug)
_SLUG = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")

# Time to running: a local pod takes seconds, a batch queue can take hours.
_SPAWN_BUCKETS = (1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, float("inf"))

SPAWNS_STARTED = Counter(
    f"{PREFIX}_spawns_started",
    "Spawns that began creating their server (after the selection was accepted), per target.",
    ["target", "backend"],
)
SPAWNS_FINISHED = Counter(
    f"{PREFIX}_spawns_finished",
    "Spawns that ended, per target and outcome (" + ", ".join(SPAWN_OUTCOMES) + ").",
    ["target", "backend", "outcome"],
)
SPAWN_DURATION = Histogram(
    f"{PREFIX}_spawn_duration_seconds",
    "Time from a spawn's start until its server's pod ran, per target (succeeded spawns).",
    ["target", "backend"],
    buckets=_SPAWN_BUCKETS,
)
QUEUE_DURATION = Histogram(
    f"{PREFIX}_queue_duration_seconds",
    "Time a session on a virtual node waited at its site: from its pod's submission "
    "(bound to the node) until it ran (succeeded spawns).",
    ["target", "backend"],
    buckets=_SPAWN_BUCKETS,
)
REFUSALS = Counter(
    f"{PREFIX}_refusals",
    "Spawns refused before anything was created, per reason (" + ", ".join(REFUSAL_REASONS) + ") "
    "and target (none when the refusal concerns no single target).",
    ["target", "reason"],
)
AUTO_CHOICES = Counter(
    f"{PREFIX}_auto_choices",
    'Targets chosen for "Any available" spawns (none: no target fitted).',
    ["target"],
)
FAILOVERS = Counter(
    f"{PREFIX}_failovers",
    'Spawns of "Any available" moved to the next fitting target after the first one failed fast.',
    ["from_target", "to_target"],
)
TOKEN_REFRESHES = Counter(
    f"{PREFIX}_token_refreshes",
    "Access token refreshes with the identity provider, per outcome (" + ", ".join(TOKEN_OUTCOMES) + ").",
    ["outcome"],
)

#: the target slugs of the catalogs this process has used (admin configuration: bounded)
_known_targets: set[str] = set()


def observe_targets(slugs: Iterable[str]) -> None:
    """Allow these configured target slugs as label values."""
    _known_targets.update(s for s in slugs if isinstance(s, str) and _SLUG.fullmatch(s))


def target_label(slug: Any) -> str:
    if slug in (None, ""):
        return NO_TARGET
    return slug if slug in _known_targets else OTHER


def backend_label(backend: Any) -> str:
    value = getattr(backend, "value", backend)
    if value in (None, ""):
        return "kubernetes"
    return value if value in _BACKENDS else OTHER


def _one_of(value: Any, allowed: tuple[str, ...]) -> str:
    return value if value in allowed else OTHER


# --- events ---------------------------------------------------------------------------


def note_refusal(reason: str, target: str | None = None) -> None:
    REFUSALS.labels(target=target_label(target), reason=_one_of(reason, REFUSAL_REASONS)).inc()


def note_spawn_started(plan: Any) -> None:
    SPAWNS_STARTED.labels(target=target_label(plan.target), backend=backend_label(plan.backend)).inc()


def spawn_outcome(exc: BaseException | None) -> str:
    """The outcome label for a spawn that ended with ``exc`` (None: it succeeded)."""
    if exc is None:
        return "succeeded"
    if isinstance(exc, asyncio.CancelledError):
        return "cancelled"
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return "timeout"
    return _OUTCOME_OF_REASON.get(getattr(exc, "reason", ""), "failed")


def note_spawn_finished(
    plan: Any, exc: BaseException | None, seconds: float | None, queued_seconds: float | None
) -> None:
    labels = {"target": target_label(plan.target), "backend": backend_label(plan.backend)}
    SPAWNS_FINISHED.labels(outcome=spawn_outcome(exc), **labels).inc()
    if exc is None and seconds is not None:
        SPAWN_DURATION.labels(**labels).observe(max(0.0, seconds))
    if exc is None and queued_seconds is not None:
        QUEUE_DURATION.labels(**labels).observe(max(0.0, queued_seconds))


def note_auto_choice(target: str | None) -> None:
    AUTO_CHOICES.labels(target=target_label(target)).inc()


def note_failover(from_target: str | None, to_target: str | None) -> None:
    FAILOVERS.labels(from_target=target_label(from_target), to_target=target_label(to_target)).inc()


def note_token_refresh(outcome: str) -> None:
    TOKEN_REFRESHES.labels(outcome=_one_of(outcome, TOKEN_OUTCOMES)).inc()


class SpawnMetricsMixin(SpawnerBase):
    """Counts each start whose plan was accepted (``note_spawn_started``, called by
    :meth:`~offload_spawner.hub.spawner.OffloadSpawner.load_user_options`), and how it
    ended, with the time to running and the time queued at the site.

    First in :class:`~offload_spawner.hub.spawner.OffloadSpawner`'s bases, so its
    ``start`` wraps all the others. Reads ``_offload_submitted_at`` (when the pod
    was first seen bound to its virtual node, kept by
    :class:`~offload_spawner.remote.remote_session.RemoteSessionMixin`)."""

    #: the plan this start was counted with (None: not counted, e.g. refused)
    _metered_plan: Any = None

    def _note_spawn_started(self, plan: Any) -> None:
        self._metered_plan = plan
        note_spawn_started(plan)

    def _note_attempt_failed(self, exc: BaseException) -> None:
        """This start's attempt failed but the start goes on (a failover)."""
        plan, self._metered_plan = self._metered_plan, None
        if plan is not None:
            note_spawn_finished(plan, exc, None, None)

    def start(self) -> asyncio.Future[Any]:
        self._metered_plan = None
        began = time.monotonic()
        future: asyncio.Future[Any] = super().start()

        def finished(f: asyncio.Future[Any]) -> None:
            plan, self._metered_plan = self._metered_plan, None
            if plan is None:
                return
            exc = asyncio.CancelledError() if f.cancelled() else f.exception()
            now = time.monotonic()
            submitted = getattr(self, "_offload_submitted_at", None)
            queued = now - submitted if plan.offload == "session" and submitted is not None else None
            note_spawn_finished(plan, exc, now - began, queued)

        future.add_done_callback(finished)
        return future


# --- capacity and allocation, read from the watcher at scrape time --------------------------


def catalog_offers(catalog: Any) -> dict[str, list[AcceleratorOffered]]:
    """Per target slug, every accelerator model any profile offers there (the admin's catalog)."""
    merged: dict[str, dict[tuple[str, str], tuple[str, list[str]]]] = {}
    for profile in catalog.profile_list:
        for slug in catalog.profile_targets(profile):
            per = merged.setdefault(slug, {})
            for resource, offer in profile.accelerators.items():
                label = accelerator_model_label(resource, offer)
                _, models = per.setdefault((resource, label), (offer.display_name, []))
                models += [m for m in offer.models if m not in models]
    return {
        slug: [AcceleratorOffered(r, name, label, tuple(models)) for (r, label), (name, models) in per.items()]
        for slug, per in merged.items()
    }


def capacity_families(watchers: Iterable[Any]) -> list[GaugeMetricFamily]:
    """Gauges of capacity and allocation per target and accelerator model, from the
    watchers' memory (each watcher carries the catalog it watches for)."""

    keys = ["target", "backend"]
    up = GaugeMetricFamily(
        f"{PREFIX}_target_up",
        "1 when the target's virtual node is up, 0 when down (absent while availability is unknown).",
        labels=keys,
    )
    cores = GaugeMetricFamily(
        f"{PREFIX}_target_cores",
        "Cores of the target's virtual node: allocatable, allocated (pods and in-flight spawns) and free.",
        labels=[*keys, "state"],
    )
    memory = GaugeMetricFamily(
        f"{PREFIX}_target_memory_bytes",
        "Memory of the target's virtual node: allocatable, allocated and free.",
        labels=[*keys, "state"],
    )
    accelerators = GaugeMetricFamily(
        f"{PREFIX}_target_accelerators",
        "Accelerators per model on the target: capacity, allocated and available.",
        labels=[*keys, "resource", "model", "state"],
    )
    watching = GaugeMetricFamily(
        f"{PREFIX}_availability_known",
        "1 while the hub watches the targets' virtual nodes (availability known), else 0.",
        labels=[],
    )
    known = 0
    for watcher in watchers:
        catalog = getattr(watcher, "catalog", None)
        if catalog is None:
            continue
        view = watcher.view()
        if not view.known:
            continue
        known = 1
        offers = catalog_offers(catalog)
        reserved_groups = {group for r in catalog.reservations for group in r.groups}
        reservations = list(watcher.reservations.values())
        for slug, target in catalog.offload_targets.items():
            if not target.is_virtual or not target.node:
                continue
            observe_targets([slug])
            # The site as a whole, not one user: a node reserved to groups counts as theirs.
            a = target_availability(
                slug, target, offers.get(slug, []), view, reservations, catalog.reservations, reserved_groups
            )
            if a.status == "unknown":
                continue
            labels = [target_label(slug), backend_label(target.backend)]
            up.add_metric(labels, 1 if a.status == "up" else 0)
            for family, total, free in ((cores, a.cores_total, a.cores_free), (memory, a.memory_total, a.memory_free)):
                if total is None or free is None:
                    continue
                family.add_metric([*labels, "allocatable"], total)
                family.add_metric([*labels, "allocated"], max(0.0, total - free))
                family.add_metric([*labels, "free"], free)
            for m in a.models:
                for state, value in (("capacity", m.total), ("allocated", m.used), ("available", m.available)):
                    accelerators.add_metric([*labels, m.resource, m.model, state], value)
    watching.add_metric([], known)
    return [watching, up, cores, memory, accelerators]


class CapacityCollector:
    """Collects :func:`capacity_families` from the hub's availability watchers."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from kubespawner import KubeSpawner

        watchers = [
            w
            for key, w in list(KubeSpawner.reflectors.items())
            if isinstance(key, tuple) and key and key[0] == "offload-availability"
        ]
        try:
            yield from capacity_families(watchers)
        except Exception:  # noqa: BLE001 - a scrape must never fail because of an odd cluster state
            return

    def describe(self) -> list[GaugeMetricFamily]:
        # No describe-time collection: the watchers need not exist yet.
        return []


CAPACITY_COLLECTOR = CapacityCollector()
REGISTRY.register(CAPACITY_COLLECTOR)


def metric_label_values(registry: Any = REGISTRY) -> Mapping[str, set[tuple[tuple[str, str], ...]]]:
    """Per offload_spawner metric family, the label sets it currently exposes (for tests and checks)."""
    out: dict[str, set[tuple[tuple[str, str], ...]]] = {}
    for family in registry.collect():
        if not family.name.startswith(PREFIX):
            continue
        for sample in family.samples:
            out.setdefault(family.name, set()).add(tuple(sorted(sample.labels.items())))
    return out


__all__ = [
    "AUTO_CHOICES",
    "CAPACITY_COLLECTOR",
    "FAILOVERS",
    "QUEUE_DURATION",
    "REFUSALS",
    "REFUSAL_REASONS",
    "SPAWNS_FINISHED",
    "SPAWNS_STARTED",
    "SPAWN_DURATION",
    "SPAWN_OUTCOMES",
    "TOKEN_OUTCOMES",
    "TOKEN_REFRESHES",
    "SpawnMetricsMixin",
    "backend_label",
    "capacity_families",
    "catalog_offers",
    "note_auto_choice",
    "note_failover",
    "note_refusal",
    "note_spawn_finished",
    "note_spawn_started",
    "note_token_refresh",
    "observe_targets",
    "spawn_outcome",
    "target_label",
]
