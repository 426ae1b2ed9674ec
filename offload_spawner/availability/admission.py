"""Spawner side of availability and admission (the pure logic is
:mod:`offload_spawner.availability.availability`, the node watcher :mod:`offload_spawner.availability.watcher`).

:class:`AdmissionMixin` sits before :class:`~offload_spawner.identity.token_delivery.TokenDeliveryMixin`
and KubeSpawner in :class:`~offload_spawner.hub.spawner.OffloadSpawner`'s bases. It

* keeps the hub's one node watcher with KubeSpawner's own reflectors and reads
  the cluster from its memory (or from a fixed ``_static_view``: the CLI's
  ``--cluster FILE``);
* answers the form's and the availability endpoint's question: per target of
  the user's menu, up/down and what is free;
* admits a spawn only if it fits what is free now and, from the check in
  ``load_user_options`` on, holds what it takes (a reservation) until its pod
  is bound; ``start``/``stop``/``poll`` give the reservation back when the
  spawn fails or the server ends, each after calling ``super()``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from kubespawner import KubeSpawner

from ..pipeline.catalog import Catalog, CatalogError
from ..pipeline.menu import Menu, build_menu
from ..pipeline.plan import PodPlan
from ..pipeline.selection import Selection
from ..spawn_errors import refusal
from ..spawner_base import SpawnerBase
from .availability import (
    AcceleratorOffered,
    ClusterView,
    Demand,
    TargetAvailability,
    menu_availability,
    plan_refusal,
    target_availability,
)
from .handlers import install_handlers_on_running_hub
from .watcher import AvailabilityWatcher

#: stop() tasks of replaced watchers, referenced until done (the event loop keeps only weak references)
_stopping: set[asyncio.Task[None]] = set()


class AdmissionMixin(SpawnerBase):
    """Availability for the form and the endpoint, admission and reservations
    for spawns (see module doc).

    Uses what :class:`~offload_spawner.hub.spawner.OffloadSpawner` defines: the
    traits ``offload_availability`` and ``offload_availability_wait`` (they stay
    on OffloadSpawner so that ``c.OffloadSpawner.<name>`` and the generated
    reference keep them: traitlets sets up only traits declared on a HasTraits
    class), ``get_catalog``, ``user_groups`` and ``_uses_catalog``; and
    KubeSpawner's ``namespace``, ``pod_name``, ``log``."""

    #: a fixed cluster state (the CLI's --cluster FILE) instead of the watcher
    _static_view: ClusterView | None = None
    _reservation_key: str | None = None
    # OffloadSpawner's traits (declared there)
    offload_availability: bool
    offload_availability_wait: float

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self._uses_catalog() and self.offload_availability:
            install_handlers_on_running_hub()

    def _watcher(self, catalog: Catalog) -> AvailabilityWatcher | None:
        """The hub's node watcher for the targets' virtual nodes (created, not awaited)."""
        nodes = sorted({t.node for t in catalog.offload_targets.values() if t.is_virtual and t.node})
        if not nodes:
            return None
        # Kept with KubeSpawner's own reflectors: one per hub process and namespace,
        # stopped by KubeSpawner._stop_all_reflectors like them.
        key = ("offload-availability", self.namespace)
        watcher: AvailabilityWatcher | None = KubeSpawner.reflectors.get(key)
        stale = watcher is not None and (
            set(watcher.node_names) != set(nodes) or watcher.loop is not asyncio.get_event_loop()
        )
        if watcher is None or stale:
            if stale and watcher is not None and watcher.loop is asyncio.get_event_loop():
                task = asyncio.ensure_future(watcher.stop())
                _stopping.add(task)
                task.add_done_callback(_stopping.discard)
            watcher = AvailabilityWatcher(nodes, self.namespace, self.log)
            KubeSpawner.reflectors[key] = watcher
        watcher.catalog = catalog  # what the capacity metrics read it with (metrics.py)
        return watcher

    async def cluster_view(self, catalog: Catalog | None = None) -> ClusterView:
        """What is known of the targets' nodes: from memory once the watcher runs."""
        if self._static_view is not None:
            return self._static_view
        if not self.offload_availability:
            return ClusterView(known=False, note="this hub does not show free capacity")
        watcher = self._watcher(catalog or await self.get_catalog())
        if watcher is None:
            return ClusterView(known=False, note="this hub does not show free capacity")
        await watcher.ready(self.offload_availability_wait)
        return watcher.view()

    def _reservations(self) -> dict[str, Demand]:
        watcher: AvailabilityWatcher | None = KubeSpawner.reflectors.get(("offload-availability", self.namespace))
        return watcher.reservations if watcher is not None else {}

    async def get_availability(self, menu: Menu | None = None) -> dict[str, TargetAvailability]:
        """Per target in the user's menu: up/down, free resources, accelerators by model."""
        catalog = await self.get_catalog()
        menu = menu or build_menu(catalog, self.user_groups())
        view = await self.cluster_view(catalog)
        return menu_availability(menu, catalog, view, self._reservations().values())

    async def availability_json(self) -> dict[str, Any]:
        """What the availability endpoint returns: only this user's targets and models."""
        if not self._uses_catalog():
            return {"targets": {}}
        try:
            availability = await self.get_availability()
        except CatalogError:
            return {"targets": {}}  # a broken callable profile_list: logged by get_catalog
        return {"targets": {slug: a.to_json() for slug, a in availability.items()}}

    async def _admit(self, selection: Selection, plan: PodPlan, reserve: bool) -> None:
        """Refuse (HTTP 400) a session that does not fit what is free on its node now;
        with ``reserve``, hold what it takes until its pod is bound or the spawn ends."""
        if plan.offload not in ("session", "dask") or not selection.target:
            return
        catalog = await self.get_catalog()
        target = catalog.offload_targets[selection.target]
        view = await self.cluster_view(catalog)
        if not view.known:
            return  # unknown availability never blocks a spawn
        offers = []
        menu = build_menu(catalog, self.user_groups(), only_profile=selection.profile)
        menu_profile = menu.profile(selection.profile)
        menu_target = menu_profile.target(selection.target) if menu_profile is not None else None
        if menu_target is None:  # select() took both from this user's menu
            raise refusal("This target is not offered to you.", "selection", selection.target)
        accelerator = menu_target.accelerator(selection.accelerator) if selection.accelerator else None
        if accelerator is not None:
            offers.append(
                AcceleratorOffered(
                    accelerator.resource, accelerator.display_name, accelerator.model_label, accelerator.models
                )
            )
        key = f"{self.namespace}/{self.pod_name}"
        # From here to the reservation there is no await: the check and the
        # reservation are one step for the hub's single event loop, so two
        # concurrent spawns cannot both take the last GPU.
        reservations = self._reservations()
        others = [d for k, d in reservations.items() if k != key]
        available = target_availability(
            selection.target, target, offers, view, others, catalog.reservations, self.user_groups()
        )
        # A Dask-only target: the session runs here; only its clusters need the site up.
        message = plan_refusal(available, plan, selection)
        if message:
            raise refusal(message, "target_down" if available.status == "down" else "capacity", selection.target)
        if reserve and self._static_view is None and plan.offload == "session":
            reservations[key] = Demand(
                node=target.node or "",
                cores=plan.cpu_guarantee or 0.0,
                memory=plan.mem_guarantee or 0,
                extended={k: float(v) for k, v in plan.extra_resource_limits.items()},
                pod=key,
            )
            self._reservation_key = key

    def _release_reservation(self) -> None:
        if self._reservation_key is not None:
            self._reservations().pop(self._reservation_key, None)
            self._reservation_key = None

    def start(self) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = super().start()

        # A failed spawn gives its reservation back; a started one keeps it until
        # stop (it no longer counts once the node's pods include the pod).
        def release_if_failed(done: asyncio.Future[Any]) -> None:
            if done.cancelled() or done.exception():
                self._release_reservation()

        future.add_done_callback(release_if_failed)
        return future

    async def stop(self, now: bool = False) -> None:
        try:
            await super().stop(now=now)
        finally:
            self._release_reservation()

    async def poll(self) -> int | None:
        status: int | None = await super().poll()
        if status is not None:
            self._release_reservation()
        return status


__all__ = ["AdmissionMixin"]
