"""Spawner side of fresh tokens (the refresh itself is :mod:`offload_spawner.identity.refresh`).

Before a spawn the user's access token must outlive the target's start (a
job may wait in a batch queue); the running server's token rotation
(:class:`~offload_spawner.identity.token_delivery.TokenDeliveryMixin`) calls
``fresh_auth_state`` too.
"""

from __future__ import annotations

from html import escape as html_escape
from typing import TYPE_CHECKING, Any

from jupyterhub.spawner import SpawnException
from jupyterhub.utils import url_path_join
from oauthenticator.oauth2 import OAuthenticator

from ..metrics import note_refusal
from ..pipeline.plan import PodPlan
from ..spawn_errors import spawn_error
from ..spawner_base import SpawnerBase
from .refresh import IdentityProviderDown, LoginExpired, ensure_fresh, min_lifetime_for


def login_expired_refusal(logout_url: str, exc: LoginExpired) -> SpawnException:
    """A spawn refused because the user must log in again: HTTP 403 on the REST
    API, the message with a log-out/log-in link on the spawn page (counted in
    the refusal metrics: every caller raises it)."""
    note_refusal("login_expired")
    refused = SpawnException(
        f"{exc.message} Log out and log in again: {logout_url}",
        reason="login_expired",
        status_code=403,
        message_html=f'{html_escape(exc.message)} <a href="{html_escape(logout_url)}">Log out and log in again</a>.',
    )
    refused.jupyterhub_message = refused.message_html
    return refused


class FreshLoginMixin(SpawnerBase):
    """A refresh-aware ``fresh_auth_state`` and the spawn's login check.

    :class:`~offload_spawner.hub.spawner.OffloadSpawner` names this mixin's
    ``fresh_auth_state`` as its answer to TokenDeliveryMixin's hook (whose
    default only reads the stored auth_state), so it does not call ``super()``.
    Uses :class:`~offload_spawner.hub.spawner.OffloadSpawner`'s ``_plan`` and the
    spawner's ``authenticator``, ``user`` and ``hub``."""

    # OffloadSpawner's attribute (declared there)
    if TYPE_CHECKING:  # OffloadSpawner's read-only view of its PreparedSpawn

        @property
        def _plan(self) -> PodPlan | None: ...

    async def fresh_auth_state(self, min_lifetime: float | None = None) -> dict[str, Any] | None:
        """The user's auth_state, its access token refreshed when it would live
        less than ``min_lifetime`` seconds (default: this server's target's
        minimum, see refresh.min_lifetime_for). Raises LoginExpired when it
        cannot be refreshed; None when the authenticator keeps no auth_state."""
        if min_lifetime is None:
            min_lifetime = min_lifetime_for(self._plan)
        authenticator = getattr(self, "authenticator", None)
        if isinstance(authenticator, OAuthenticator) and authenticator.enable_auth_state:
            return await ensure_fresh(authenticator, self.user, min_lifetime)
        get_auth_state = getattr(self.user, "get_auth_state", None)  # the CLI's user stand-in has none
        return await get_auth_state() if get_auth_state is not None else None

    async def _require_fresh_login(self, plan: PodPlan | None) -> None:
        """Refuse the spawn (before anything is created) when the login cannot be renewed."""
        try:
            await self.fresh_auth_state(min_lifetime_for(plan))
        except IdentityProviderDown as e:
            # Not the user's login: a new login would fail the same way now.
            raise spawn_error(e.message, "idp_unavailable", 503) from None
        except LoginExpired as e:
            raise login_expired_refusal(url_path_join(self.hub.base_url, "logout"), e) from None


__all__ = ["FreshLoginMixin", "login_expired_refusal"]
