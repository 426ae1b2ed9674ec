"""Spawner side of the automatic target choice (the pure ranking and fit is
:mod:`offload_spawner.availability.auto_target`).

:class:`AutoTargetMixin` sits before
:class:`~offload_spawner.remote.remote_session.RemoteSessionMixin` in
:class:`~offload_spawner.hub.spawner.OffloadSpawner`'s bases. It

* resolves ``target: auto`` (the form's "Any available", the REST API's
  ``target: auto``) to the first ranked target of the user's menu that fits
  what is free now: the watcher's memory with the in-flight spawns'
  reservations counted, as admission counts them;
* says on the spawn page (``progress``) which target it chose and why the
  better-ranked ones were passed over;
* fails over once: when the session on the chosen target fails fast (the
  site refused or failed the job: ``remote_failure`` from
  :class:`~offload_spawner.remote.remote_session.RemoteSessionMixin`), it removes
  that attempt completely (``stop(now=True)``: the pod, hence the remote
  job, and the token Secret; the reservation) and starts again on the next
  fitting target, with a message. Timeouts are not failed over: JupyterHub's
  ``start_timeout`` for the whole spawn has run out by then.

The choice is made again at each check (``apply_user_options`` and
``load_user_options``); the one ``load_user_options`` makes is the one the
spawn uses, and the one counted in the metrics. ``user_options`` keep
``target: auto``, so the next start chooses afresh.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

from jupyterhub.spawner import SpawnException

from ..availability.auto_target import AutoChoice, choose_target, is_auto
from ..availability.availability import menu_availability
from ..metrics import note_auto_choice, note_failover
from ..pipeline.catalog import Catalog
from ..pipeline.menu import Menu
from ..pipeline.plan import PodPlan
from ..pipeline.selection import SelectionError
from ..spawn_errors import refusal
from ..spawner_base import SpawnerBase

#: how long the spawn page's progress waits for this start's choice before going on
_ANNOUNCE_WAIT = 10.0


class AutoTargetMixin(SpawnerBase):
    """ "Any available": resolve ``target: auto`` and announce the choice (see module doc).

    Uses what :class:`~offload_spawner.hub.spawner.OffloadSpawner` defines: the traits
    ``offload_auto_target``, ``offload_auto_target_label`` and
    ``offload_auto_target_ranking``; and AdmissionMixin's ``cluster_view`` and
    ``_reservations``, KubeSpawner's ``namespace`` and ``pod_name``."""

    #: the choice of the start under way (set by load_user_options, cleared by start)
    _auto_choice: AutoChoice | None = None
    #: targets this start no longer tries (the one that failed before a failover)
    _auto_excluded: frozenset[str] = frozenset()
    #: the failover's message for the spawn page, once it happened
    _failover_message: str | None = None
    # OffloadSpawner's traits and attributes (declared there)
    offload_auto_target: bool
    offload_auto_target_label: str
    offload_auto_target_ranking: list[str] | dict[str, float] | None
    if TYPE_CHECKING:  # OffloadSpawner's read-only view of its PreparedSpawn

        @property
        def _plan(self) -> PodPlan | None: ...

    async def _choose_target(
        self, catalog: Catalog, menu: Menu, user_options: Mapping[str, Any], refuse: bool = True
    ) -> AutoChoice:
        """The choice for ``user_options`` (``target: auto``); refuses (HTTP 400) when the
        hub offers no automatic choice or no target the user may use fits now (with
        ``refuse`` False, returns the choice with nothing chosen instead)."""
        label = self.offload_auto_target_label
        if not self.offload_auto_target:
            raise refusal(f"This hub does not choose a target for you ({label!r} is not offered); choose one.")
        view = await self.cluster_view(catalog)
        key = f"{self.namespace}/{self.pod_name}"
        # This spawn's own reservation (a check before) does not take room from itself.
        others = [d for k, d in self._reservations().items() if k != key]
        availability = menu_availability(menu, catalog, view, others)
        try:
            choice = choose_target(
                catalog,
                menu,
                user_options,
                availability,
                self.offload_auto_target_ranking or None,
                exclude=self._auto_excluded,
                username_slug=self.username_slug(),
            )
        except SelectionError as e:
            raise refusal(e.message) from None
        if choice.chosen is None and refuse:
            note_auto_choice(None)
            raise refusal(choice.message(label), "no_target_fits")
        return choice

    def start(self) -> asyncio.Future[Any]:
        self._auto_choice = None
        self._auto_excluded = frozenset()
        future: asyncio.Future[Any] = super().start()
        return future

    async def _start(self) -> str:
        """KubeSpawner's start (raced against the remote-failure watcher), once more
        on the next fitting target when the first one failed fast (see module doc)."""
        self._auto_excluded = frozenset()
        self._failover_message = None
        try:
            url: str = await super()._start()
            return url
        except SpawnException as e:
            failed = self._auto_choice.chosen if self._auto_choice is not None else None
            plan = self._plan
            if (
                not is_auto(self.user_options)
                or failed is None
                or getattr(e, "reason", None) != "remote_failure"
                or plan is None
                or plan.offload != "session"
            ):
                raise
            failure = e
        self._auto_excluded = frozenset({failed.slug})
        catalog = await self.get_catalog()
        following = (await self._choose_target(catalog, await self.get_menu(), self.user_options, refuse=False)).chosen
        if following is None:
            raise failure  # nowhere else to go: the site's own message
        self.log.warning("Spawn of %s on %s failed; failing over to %s", self._log_name, failed.slug, following.slug)
        self._note_attempt_failed(failure)
        # The first attempt goes completely: its pod (and so its remote job), its token Secret,
        # its reservation. The next pod has the same name: it must be gone first.
        try:
            await self.stop(now=True)
        except Exception as e:  # noqa: BLE001 - the first attempt did not go: no second one on top of it
            self.log.warning("Removing the failed attempt of %s before a failover failed: %s", self._log_name, e)
            raise failure from None
        note_failover(failed.slug, following.slug)
        # The site's own words ("Site Alpha could not run your server: ..."), then where next.
        self._failover_message = (
            f"{_message(failure).rstrip('.')}. {self.offload_auto_target_label}: trying {following.display_name}."
        )
        url = await super()._start()
        return url

    async def progress(self) -> AsyncIterator[dict[str, Any]]:
        """The choice first (once this start made it), then what the target reports,
        and the failover's message when it happens."""
        auto = (self.user_options or {}).get("target") == "auto"
        if auto:
            deadline = time.monotonic() + _ANNOUNCE_WAIT
            # Polled: the choice is an attribute load_user_options sets, not an event anyone signals.
            while self._auto_choice is None and self.pending == "spawn" and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.2)
            if self._auto_choice is not None:
                yield {"progress": 5, "message": self._auto_choice.message(self.offload_auto_target_label)}
        announced = False
        async for event in super().progress():
            if auto and not announced and self._failover_message:
                announced = True
                yield {"progress": event.get("progress", 5), "message": self._failover_message}
            yield event


def _message(exc: Exception) -> str:
    return getattr(exc, "jupyterhub_message", None) or str(exc)


__all__ = ["AutoTargetMixin"]
