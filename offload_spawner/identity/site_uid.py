"""The user's POSIX UID at a site, from their login (for ``pod_shape.run_as_user_claim``).

The SLURM plugin runs a job as the pod's ``securityContext.runAsUser``
(``sbatch --uid``, interlink-slurm-plugin/pkg/slurm/prepare.go), so a
per-user UID must come from the user: a claim of their identity provider
(INDIGO IAM can expose a POSIX uid), read from OAuthenticator's auth_state:
the userinfo (``oauth_user``) first, then the ID token. Pure: plain data in,
an int or a :class:`SiteUidError` whose message names no token value.
"""

from __future__ import annotations

from typing import Any

from .refresh import jwt_claims


class SiteUidError(ValueError):
    """No usable UID for this user (the message is safe to show them)."""


def site_uid(auth_state: dict[str, Any] | None, claim: str) -> int:
    """The non-negative integer in ``claim``, or :class:`SiteUidError`."""
    if not auth_state:
        raise SiteUidError(
            f"this site runs your server under your own account, taken from your login's {claim!r} claim, "
            "but the hub has no login data for you (log out and in again)"
        )
    for source in (auth_state.get("oauth_user"), jwt_claims(auth_state.get("id_token"))):
        if isinstance(source, dict) and claim in source:
            value = source[claim]
            if isinstance(value, bool):
                break
            if isinstance(value, int) and value >= 0:
                return value
            if isinstance(value, str) and value.isascii() and value.isdigit():
                return int(value)
            raise SiteUidError(f"your login's {claim!r} claim is not a user id (a non-negative integer)")
    raise SiteUidError(
        f"this site runs your server under your own account, but your login has no {claim!r} claim "
        "(ask the hub's admins to have your account's UID added)"
    )


__all__ = ["SiteUidError", "site_uid"]
