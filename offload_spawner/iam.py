"""Log in with INDIGO IAM: GenericOAuthenticator set up for an IAM issuer.

``c.JupyterHub.authenticator_class = "iam"`` and, at least,
``c.IAMOAuthenticator.issuer``, ``client_id`` and ``client_secret``. The
endpoints come from the issuer's OpenID Connect discovery document (fetched
when the hub starts) unless set explicitly; scopes, the username claim,
``enable_auth_state``, ``manage_groups`` and ``refresh_pre_spawn`` get IAM's
sensible defaults; groups come from ``groups`` or ``wlcg.groups`` with the
leading slash stripped, optionally filtered by a prefix; and ``refresh_user``
refreshes the access token *before* it expires (``refresh_buffer``), not only
after IAM refused it (OAuthenticator #790).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterable
from typing import Any

from oauthenticator.generic import GenericOAuthenticator
from tornado import web
from tornado.httpclient import HTTPClientError
from traitlets import CaselessStrEnum, Integer, Unicode, default

from .refresh import (
    IdentityProviderDown,
    LoginExpired,
    TokenEndpointError,
    ensure_fresh,
    jwt_claims,
    remaining_lifetime,
    request_tokens,
    stamp_issued_at,
)

IAM_SCOPES = ["openid", "profile", "email", "offline_access", "wlcg", "wlcg.groups"]
GROUP_CLAIMS = ("groups", "wlcg.groups", "auto")


class DiscoveryError(RuntimeError):
    """The issuer's OpenID Connect discovery document could not be read."""


def _as_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, Iterable) and not isinstance(value, (bytes, dict)):
        return [v for v in value if isinstance(v, str)]
    return []


def pick_group_claim(claims: dict, groups_claim: str) -> list[str]:
    """The raw group names from one claims dict (``auto``: wlcg.groups if present, else groups).

    Keys are looked up literally: ``wlcg.groups`` is one key, not a path.
    """
    if groups_claim == "auto":
        groups_claim = "wlcg.groups" if "wlcg.groups" in claims else "groups"
    return _as_list(claims.get(groups_claim))


def in_group_prefix(name: str, group_prefix: str) -> bool:
    """Whether group ``name`` is under ``group_prefix``, by whole path segments:
    "cms" keeps "cms" and "cms/higgs" but not "cmsfake"; "cms/" keeps only the
    subgroups of cms. An empty prefix keeps every group."""
    prefix = group_prefix.strip().lstrip("/")
    if not prefix:
        return True
    if prefix.endswith("/"):
        return name.startswith(prefix)
    return name == prefix or name.startswith(prefix + "/")


def normalize_groups(raw: Iterable[str], group_prefix: str = "") -> list[str]:
    """JupyterHub group names from IAM's: leading "/" stripped ("/cms/higgs" ->
    "cms/higgs"), empty names dropped, only groups under ``group_prefix`` kept
    (when set; see :func:`in_group_prefix`), duplicates removed, sorted."""
    out = set()
    for name in raw:
        name = name.strip().lstrip("/")
        if not name:
            continue
        if not in_group_prefix(name, group_prefix):
            continue
        out.add(name)
    return sorted(out)


def groups_from_auth_state(auth_state: dict, groups_claim: str = "auto", group_prefix: str = "", user_key: str = "oauth_user") -> list[str]:
    """The user's groups: from the userinfo answer, else from the ID token's or
    the (JWT) access token's claims — the first of these that has the claim."""
    sources = [auth_state.get(user_key)]
    sources += [jwt_claims(auth_state.get("id_token")), jwt_claims(auth_state.get("access_token"))]
    for claims in sources:
        if not isinstance(claims, dict):
            continue
        names = ("wlcg.groups", "groups") if groups_claim == "auto" else (groups_claim,)
        if any(n in claims for n in names):
            return normalize_groups(pick_group_claim(claims, groups_claim), group_prefix)
    return []


def fetch_discovery(issuer: str, timeout: float = 10.0) -> dict:
    """``{issuer}/.well-known/openid-configuration`` (raises :class:`DiscoveryError`)."""
    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 (admin-configured https URL)
            doc = json.loads(r.read().decode("utf-8"))
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise DiscoveryError(f"IAMOAuthenticator.issuer: cannot read {url}: {e}") from None
    if not isinstance(doc, dict):
        raise DiscoveryError(f"IAMOAuthenticator.issuer: {url} is not a discovery document")
    missing = [k for k in ("authorization_endpoint", "token_endpoint", "userinfo_endpoint") if not doc.get(k)]
    if missing:
        raise DiscoveryError(f"IAMOAuthenticator.issuer: {url} lacks {', '.join(missing)}")
    return doc


class IAMOAuthenticator(GenericOAuthenticator):
    """GenericOAuthenticator for INDIGO IAM (and other WLCG-profile OpenID Connect providers)."""

    issuer = Unicode(
        "",
        config=True,
        help="""
        The IAM issuer URL, e.g. ``https://iam.example.org/``. When set, the
        authorize, token and userinfo URLs not set explicitly are read from
        ``{issuer}/.well-known/openid-configuration`` when the hub starts
        (the hub does not start if that fails).
        """,
    )

    groups_claim = CaselessStrEnum(
        GROUP_CLAIMS,
        default_value="auto",
        config=True,
        help="""
        Which claim holds the user's groups: ``groups`` (IAM's own profile),
        ``wlcg.groups`` (WLCG profile, scope ``wlcg.groups``; names start with
        "/") or ``auto`` (``wlcg.groups`` if present, else ``groups``). Read
        from the userinfo answer (then the ID token, then the access token).
        A leading "/" is stripped: "/cms/higgs" becomes the group "cms/higgs".
        """,
    )

    group_prefix = Unicode(
        "",
        config=True,
        help="""
        If set, only IAM groups under this prefix become JupyterHub groups,
        matched by whole path segments after stripping the leading "/": "cms"
        keeps "cms" and "cms/higgs" and drops "atlas" and "cmsfake"; "cms/"
        (trailing slash) keeps only the subgroups, e.g. "cms/higgs".
        """,
    )

    refresh_buffer = Integer(
        300,
        min=0,
        config=True,
        help="""
        Seconds: ``refresh_user`` refreshes the access token with the refresh
        token when it has less than this left, instead of waiting for IAM to
        refuse it. 0 keeps OAuthenticator's behaviour.
        """,
    )

    discovery_timeout = Integer(
        10, min=1, config=True, help="Seconds to wait for the issuer's discovery document when the hub starts."
    )

    @default("scope")
    def _scope_default(self) -> list[str]:
        return list(IAM_SCOPES)

    @default("login_service")
    def _login_service_default(self) -> str:
        return "INDIGO IAM"

    @default("username_claim")
    def _username_claim_default(self) -> str:
        return "preferred_username"

    @default("enable_auth_state")
    def _enable_auth_state_default(self) -> bool:
        return True

    @default("manage_groups")
    def _manage_groups_default(self) -> bool:
        return True

    @default("refresh_pre_spawn")
    def _refresh_pre_spawn_default(self) -> bool:
        return True

    @default("auth_state_groups_key")
    def _auth_state_groups_key_default(self):
        # A callable: a dotted key cannot address the "wlcg.groups" claim.
        return self._groups_from_auth_state

    def _groups_from_auth_state(self, auth_state: dict) -> list[str]:
        return groups_from_auth_state(auth_state or {}, self.groups_claim.lower(), self.group_prefix, self.user_auth_state_key)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.discovery: dict = {}
        if self.issuer and not (self.authorize_url and self.token_url and (self.userdata_url or self.userdata_from_id_token)):
            self.discovery = fetch_discovery(self.issuer, self.discovery_timeout)
            if not self.authorize_url:
                self.authorize_url = self.discovery["authorization_endpoint"]
            if not self.token_url:
                self.token_url = self.discovery["token_endpoint"]
            if not self.userdata_url and not self.userdata_from_id_token:
                self.userdata_url = self.discovery["userinfo_endpoint"]
            self.log.info("IAM issuer %s: endpoints read from its discovery document", self.issuer)

    async def get_token_info(self, handler, params):
        """OAuthenticator's token request, but no answer reaches a log line or an
        exception (see :func:`offload_spawner.refresh.request_tokens`); a failure
        is an HTTP 403 (an error answer) or 500 whose message holds the status only."""
        try:
            answer = await request_tokens(self, params)
        except TokenEndpointError as e:
            # The exceptions OAuthenticator raises here (oauthenticator/oauth2.py, get_token_info
            # and fetch), with our message: an HTTP error status stays an HTTPClientError with
            # that code, an error in a 200 answer is a 403, any other bad answer a 500.
            if e.status and e.status != 200:
                raise HTTPClientError(e.status, str(e)) from None
            raise web.HTTPError(403 if e.error_answer else 500, str(e)) from None
        # Keep when the answer came, so that "expires_in" gives an expiry.
        return stamp_issued_at(answer)

    async def refresh_user(self, user, handler=None, **kwargs):
        """OAuthenticator's refresh, but the access token is refreshed first
        when it has less than ``refresh_buffer`` seconds left (shared per user
        with the spawner's pre-spawn refresh)."""
        if self.enable_auth_state and self.refresh_buffer and self.refresh_user_hook is None:
            auth_state = await user.get_auth_state()
            left = remaining_lifetime(auth_state)
            if auth_state and left is not None and left < self.refresh_buffer:
                try:
                    await ensure_fresh(self, user, self.refresh_buffer)
                except IdentityProviderDown:
                    # A new login would fail too: keep the hub session (servers can still be
                    # reached and stopped); a spawn that needs a fresh token is refused with
                    # a clear message by the spawner's own check.
                    return True
                except LoginExpired:
                    return False
        return await super().refresh_user(user, handler, **kwargs)


def configure_iam(
    c: Any,
    *,
    issuer: str,
    client_id: str,
    client_secret: str,
    groups_claim: str = "auto",
    group_prefix: str = "",
    allowed_groups: Iterable[str] | None = None,
    admin_groups: Iterable[str] | None = None,
    **traits: Any,
) -> None:
    """In a jupyterhub_config.py: log in with IAM (``configure_iam(c, issuer=..., client_id=..., client_secret=...)``).

    Remember ``JUPYTERHUB_CRYPT_KEY`` (auth_state is encrypted with it).
    """
    c.JupyterHub.authenticator_class = IAMOAuthenticator
    settings = {
        "issuer": issuer,
        "client_id": client_id,
        "client_secret": client_secret,
        "groups_claim": groups_claim,
        "group_prefix": group_prefix,
        **traits,
    }
    if allowed_groups is not None:
        settings["allowed_groups"] = set(allowed_groups)
    if admin_groups is not None:
        settings["admin_groups"] = set(admin_groups)
    for key, value in settings.items():
        setattr(c.IAMOAuthenticator, key, value)


__all__ = [
    "IAMOAuthenticator",
    "configure_iam",
    "fetch_discovery",
    "groups_from_auth_state",
    "normalize_groups",
    "pick_group_claim",
]
