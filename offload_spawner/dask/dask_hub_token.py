"""Spawner side of the Dask pods' hub token: a token with fewer scopes.

When a target's ``tokens.dask_pods`` names ``hub_token``, the server's Dask
scheduler and workers (on the target's site) get ``JUPYTERHUB_API_TOKEN``.
They do not get the server's own token (the hub's API as the user: start and
stop servers, make tokens, ...): :class:`DaskHubTokenMixin` issues, per server
start, a token with only the target's ``tokens.dask_hub_scopes``
(JupyterHub's ``User.new_api_token``, jupyterhub/orm.py ``APIToken.new``,
which refuses scopes the user does not hold), which the Secret stores under
its own key (:data:`offload_spawner.identity.server_secret.DASK_HUB_TOKEN_KEY`) and the
Dask pod spec refers to (:func:`offload_spawner.identity.tokens.dask_token_references`).
The token is revoked (deleted from the hub's database) when the server stops
(also when it ended by itself: JupyterHub then skips ``stop()`` but calls
``clear_state()``); its id is kept in the spawner's state so a restarted hub
still revokes it.

Must come before :class:`~offload_spawner.identity.token_delivery.TokenDeliveryMixin`
in the bases: its ``dask_hub_token`` replaces that mixin's default hook.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from jupyterhub import orm

if TYPE_CHECKING:
    from ..pipeline.plan import PodPlan
    from .dask_config import DaskServerConfig

_STATE_KEY = "offload_dask_hub_token_id"
#: The token's note in the hub's database (its token list shows it).
TOKEN_NOTE = "offload-spawner: Dask pods of a server"  # noqa: S105 - a note, not a token


class DaskHubTokenMixin:
    """Issue and revoke the Dask pods' scoped hub token (see module doc)."""

    _dask_hub_token_id: int | None = None

    if TYPE_CHECKING:
        # What OffloadSpawner, DaskFilesMixin and JupyterHub's Spawner provide.
        @property
        def _plan(self) -> PodPlan | None: ...
        @property
        def _dask(self) -> DaskServerConfig | None: ...

        user: Any
        log: logging.Logger

    def dask_hub_scopes(self) -> list[str] | None:
        """The scopes of the Dask pods' hub token, or None when they get none."""
        plan, dask = self._plan, self._dask
        if plan is None or dask is None or dask.cluster is None or "hub_token" not in plan.tokens.dask_pods:
            return None
        return list(plan.tokens.dask_hub_scopes)

    async def dask_hub_token(self) -> str | None:
        """A new token for this start's Dask pods (the previous one revoked), or None."""
        scopes = self.dask_hub_scopes()
        self.revoke_dask_hub_token()
        if scopes is None:
            return None
        token: str = self.user.new_api_token(scopes=scopes, note=TOKEN_NOTE)
        found = orm.APIToken.find(self.user.db, token)
        self._dask_hub_token_id = found.id if found is not None else None
        return token

    def revoke_dask_hub_token(self) -> None:
        """Delete the Dask pods' token from the hub's database, if there is one."""
        token_id, self._dask_hub_token_id = self._dask_hub_token_id, None
        if token_id is None:
            return
        db = self.user.db
        found = db.get(orm.APIToken, token_id)
        # only a token of this user with this note: an id from old state could be reused
        if found is not None and found.user_id == self.user.id and found.note == TOKEN_NOTE:
            db.delete(found)
            db.commit()
            self.log.info("Revoked the Dask pods' hub token of %s", self.user.name)

    async def stop(self, now: bool = False) -> Any:
        try:
            return await super().stop(now)  # type: ignore[misc]
        finally:
            self.revoke_dask_hub_token()

    def clear_state(self) -> None:
        # JupyterHub calls stop() only for a server that still runs, and
        # clear_state() after every stop: a server that ended by itself is revoked here.
        self.revoke_dask_hub_token()
        super().clear_state()  # type: ignore[misc]

    def get_state(self) -> dict[str, Any]:
        state: dict[str, Any] = super().get_state()  # type: ignore[misc]
        if self._dask_hub_token_id is not None:
            state[_STATE_KEY] = self._dask_hub_token_id
        return state

    def load_state(self, state: dict[str, Any] | None) -> None:
        super().load_state(state)  # type: ignore[misc]
        saved = (state or {}).get(_STATE_KEY)
        self._dask_hub_token_id = saved if isinstance(saved, int) else None


__all__ = ["TOKEN_NOTE", "DaskHubTokenMixin"]
