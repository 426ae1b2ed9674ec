"""Spawner side of an offloaded session's lifecycle (the pure reading of the pod
is :mod:`offload_spawner.remote.lifecycle`).

:class:`RemoteSessionMixin` sits before
:class:`~offload_spawner.identity.token_delivery.TokenDeliveryMixin` and KubeSpawner in
:class:`~offload_spawner.hub.spawner.OffloadSpawner`'s bases. For a server that runs
on a virtual node (``offload: session``) it

* reports in ``progress()`` what the remote site is doing (submitted, queued
  with the job id and time waited, held with the reason, starting, running);
  servers on the hub's own cluster get the same kind of words
  (:func:`~offload_spawner.remote.lifecycle.describe_in_cluster`), not Kubernetes'
  raw events; without a catalog, KubeSpawner's event messages;
* races KubeSpawner's ``_start`` against a watcher that ends the spawn as soon
  as the site reports a failure, or just before ``start_timeout`` with what
  the site last reported;
* notes (in ``_make_create_pod_request``, after ``super()``) that this start's
  pod was created, so the watcher never reads an earlier server's pod.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from jupyterhub.spawner import SpawnException

from ..pipeline.plan import PodPlan
from ..spawn_errors import spawn_error
from ..spawner_base import SpawnerBase
from .lifecycle import bound_seconds_ago, describe, describe_in_cluster, remote_failure

if TYPE_CHECKING:
    from kubernetes_asyncio.client.models import V1Pod


class RemoteSessionMixin(SpawnerBase):
    """Progress and fast failure for sessions on virtual nodes (see module doc).

    Uses what :class:`~offload_spawner.hub.spawner.OffloadSpawner` defines:
    ``_plan`` (set by its ``load_user_options``), ``plan_for`` and
    ``_uses_catalog``; and KubeSpawner's reflectors, ``events``,
    ``start_timeout``, ``namespace``, ``pod_name``, ``log``."""

    #: set once this start's pod create request succeeded (see _watch_remote_failure)
    _offload_pod_created = False
    #: when this start's pod was first seen bound to its node (monotonic clock),
    #: kept across page reloads so the time waited in the queue is the real one
    _offload_submitted_at: float | None = None
    # OffloadSpawner's attributes (declared there)
    _prepared: object | None  # a PreparedSpawn (hub edge), only reset here
    if TYPE_CHECKING:  # OffloadSpawner's read-only view of its PreparedSpawn

        @property
        def _plan(self) -> PodPlan | None: ...

    async def _current_plan(self) -> PodPlan | None:
        """The plan of the spawn under way (None without a catalog)."""
        plan = self._plan
        if plan is None and self._uses_catalog():
            try:
                _, plan = await self.plan_for(self.user_options)
            except SpawnException:
                return None
        return plan

    async def progress(self) -> AsyncIterator[dict[str, Any]]:
        """For a session on a virtual node: what the remote site is doing (submitted,
        queued with the job id and time waited, held with the reason, starting,
        running). Servers on the hub's own cluster: the same kind of words.
        Without a catalog: KubeSpawner's event messages."""
        plan = await self._current_plan()
        if plan is None:
            async for event in super().progress():
                yield event
            return
        await self._start_watching_pods()
        if self.events_enabled:
            await self._start_watching_events()
        start_future = self._start_future
        last_phase = last_message = None
        last_yield = 0.0
        while True:
            if start_future is None:
                start_future = self._start_future
            finished = start_future is not None and start_future.done()
            pod = self.pod_reflector.pods.get(f"{self.namespace}/{self.pod_name}")
            now = time.monotonic()
            self._note_submitted(pod, now)
            # This start's current plan: another target's after a failover (auto_spawn.py).
            current = self._plan or plan
            target = current.target_display_name or current.target or "the remote site"
            if current.offload == "session":
                status = describe(target, pod, self.events, now, self._offload_submitted_at)
            else:
                status = describe_in_cluster(pod, self.events)
            # A new phase at once; the same phase (a growing wait time) every few seconds.
            if status.phase != last_phase or (status.message != last_message and now - last_yield >= 5):
                last_phase, last_message, last_yield = status.phase, status.message, now
                yield {"progress": status.progress, "message": status.message}
            if finished:
                break
            await asyncio.sleep(0.5)

    def _note_submitted(self, pod: dict[str, Any] | None, now: float) -> None:
        if self._offload_submitted_at is None and pod and (pod.get("spec") or {}).get("nodeName"):
            self._offload_submitted_at = now

    def _note_submitted_after_start(self) -> None:
        """A start can complete before the watch above saw its pod bound (a loaded
        hub, a site that starts at once): then the binding time is the pod's own
        (its PodScheduled condition), so the queue time is still measured."""
        if self._offload_submitted_at is not None or self.pod_reflector is None:
            return
        pod = self.pod_reflector.pods.get(f"{self.namespace}/{self.pod_name}")
        ago = bound_seconds_ago(pod, time.time())
        if ago is not None:
            self._offload_submitted_at = time.monotonic() - ago

    async def _make_create_pod_request(self, pod: V1Pod, request_timeout: float) -> bool:
        created: bool = await super()._make_create_pod_request(pod, request_timeout)
        if created:
            self._offload_pod_created = True
        return created

    async def _start(self) -> str:
        """KubeSpawner's start, raced against a watcher that ends it as soon as the
        remote site reports a failure (instead of waiting for start_timeout)."""
        self._offload_pod_created = False
        self._offload_submitted_at = None
        self._prepared = None  # load_user_options prepares this start; never watch with the last one
        starting = asyncio.ensure_future(super()._start())
        watching = asyncio.ensure_future(self._watch_remote_failure())
        try:
            await asyncio.wait({starting, watching}, return_when=asyncio.FIRST_COMPLETED)
            # When the start is not done, the watcher is (FIRST_COMPLETED).
            failure = None if starting.done() else watching.result()
            if failure is not None:
                starting.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await starting
                raise failure
            url: str = await starting
            self._note_submitted_after_start()
            return url
        finally:
            for task in (starting, watching):
                if not task.done():
                    task.cancel()

    async def _watch_remote_failure(self) -> SpawnException | None:
        """Return the spawn's failure once this start's pod failed on its virtual
        node, or (just before JupyterHub's own start_timeout fires) a timeout that
        says what the site last reported ("Held: ..."); None at once if the
        server does not run on a virtual node."""
        began = time.monotonic()
        # Polled: load_user_options, which sets the plan, has not run yet.
        while self._plan is None and self._uses_catalog():  # noqa: ASYNC110
            await asyncio.sleep(0.1)
        plan = self._plan
        if plan is None or plan.offload != "session":
            return None
        target = plan.target_display_name or plan.target or "the remote site"
        # JupyterHub started its start_timeout clock just before start(): end a little earlier.
        deadline = began + self.start_timeout - min(1.0, self.start_timeout * 0.1)
        while True:
            await asyncio.sleep(0.2)
            if (not self._offload_pod_created or self.pod_reflector is None) and time.monotonic() < deadline:
                continue
            pod = self.pod_reflector.pods.get(f"{self.namespace}/{self.pod_name}") if self.pod_reflector else None
            if self._offload_pod_created:
                self._note_submitted(pod, time.monotonic())
            failure = remote_failure(pod)
            if failure is not None:
                self.log.warning("Spawn of %s on %s failed remotely: %s", self._log_name, plan.target, failure)
                return spawn_error(f"{target} could not run your server: {failure}", "remote_failure", 503)
            if time.monotonic() >= deadline:
                last = describe(target, pod, self.events, time.monotonic(), self._offload_submitted_at).message
                message = (
                    f"{target} did not start your server within {self.start_timeout:g} seconds. Last status: {last}"
                )
                self.log.warning("Spawn of %s on %s timed out: %s", self._log_name, plan.target, last)
                return spawn_error(message, "timeout", 500)


__all__ = ["RemoteSessionMixin"]
