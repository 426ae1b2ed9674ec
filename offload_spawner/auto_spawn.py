"""Spawner side of the automatic target choice (the pure ranking and fit is
:mod:`offload_spawner.auto_target`).

:class:`AutoTargetMixin` sits before
:class:`~offload_spawner.remote_session.RemoteSessionMixin` in
:class:`~offload_spawner.spawner.OffloadSpawner`'s bases. It

* resolves ``target: auto`` (the form's "Any available", the REST API's
  ``target: auto``) to the first ranked target of the user's menu that fits
  what is free now: the watcher's memory with the in-flight spawns'
  reservations counted, as admission counts them;
* says on the spawn page (``progress``) which target it chose and why the
  better-ranked ones were passed over.

The choice is made again at each check (``apply_user_options`` and
``load_user_options``); the one ``load_user_options`` makes is the one the
spawn uses, and the one counted in the metrics. ``user_options`` keep
``target: auto``, so the next start chooses afresh.
"""

from __future__ import annotations

import asyncio
import time

from .auto_target import AutoChoice, choose_target
from .availability import menu_availability
from .catalog import Catalog
from .menu import Menu
from .metrics import note_auto_choice
from .selection import SelectionError
from .spawn_errors import refusal

#: how long the spawn page's progress waits for this start's choice before going on
_ANNOUNCE_WAIT = 10.0


class AutoTargetMixin:
    """"Any available": resolve ``target: auto`` and announce the choice (see module doc).

    Uses what :class:`~offload_spawner.spawner.OffloadSpawner` defines: the traits
    ``offload_auto_target``, ``offload_auto_target_label`` and
    ``offload_auto_target_ranking``; and AdmissionMixin's ``cluster_view`` and
    ``_reservations``, KubeSpawner's ``namespace`` and ``pod_name``."""

    #: the choice of the start under way (set by load_user_options, cleared by start)
    _auto_choice: AutoChoice | None = None

    async def _choose_target(self, catalog: Catalog, menu: Menu, user_options: dict) -> AutoChoice:
        """The choice for ``user_options`` (``target: auto``); refuses (HTTP 400) when the
        hub offers no automatic choice or no target the user may use fits now."""
        label = self.offload_auto_target_label
        if not self.offload_auto_target:
            raise refusal(f"This hub does not choose a target for you ({label!r} is not offered); choose one.")
        view = await self.cluster_view(catalog)
        key = f"{self.namespace}/{self.pod_name}"
        # This spawn's own reservation (a check before) does not take room from itself.
        others = [d for k, d in self._reservations().items() if k != key]
        availability = menu_availability(menu, catalog, view, others)
        try:
            choice = choose_target(catalog, menu, user_options, availability, self.offload_auto_target_ranking or None)
        except SelectionError as e:
            raise refusal(e.message) from None
        if choice.chosen is None:
            note_auto_choice(None)
            raise refusal(choice.message(label), "no_target_fits")
        return choice

    def start(self):
        self._auto_choice = None
        return super().start()

    async def progress(self):
        """The choice first (once this start made it), then what the target reports."""
        if (self.user_options or {}).get("target") == "auto":
            deadline = time.monotonic() + _ANNOUNCE_WAIT
            while self._auto_choice is None and self.pending == "spawn" and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            if self._auto_choice is not None:
                yield {"progress": 5, "message": self._auto_choice.message(self.offload_auto_target_label)}
        async for event in super().progress():
            yield event


__all__ = ["AutoTargetMixin"]
