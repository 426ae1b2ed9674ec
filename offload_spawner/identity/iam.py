"""Log in with INDIGO IAM: GenericOAuthenticator set up for an IAM issuer.

``c.JupyterHub.authenticator_class = "iam"`` and, at least,
``c.IAMOAuthenticator.issuer``, ``client_id`` and ``client_secret``. The
endpoints come from the issuer's OpenID Connect discovery document unless set
explicitly: fetched in the background from the hub's start, retried while
the issuer cannot be reached (the hub starts anyway; a login meanwhile gets
"try again" instead of a broken redirect) and fetched again periodically; scopes, the username claim,
``enable_auth_state``, ``manage_groups`` and ``refresh_pre_spawn`` get IAM's
sensible defaults; groups come from ``groups`` or ``wlcg.groups`` with the
leading slash stripped, optionally filtered by a prefix; and ``refresh_user``
refreshes the access token *before* it expires (``refresh_buffer``), not only
after IAM refused it (OAuthenticator #790).
"""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Callable, Iterable
from typing import Any

from oauthenticator.generic import GenericOAuthenticator
from oauthenticator.oauth2 import OAuthLoginHandler
from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPClientError
from traitlets import CaselessStrEnum, Integer, Unicode, default

from .refresh import (
    IdentityProviderDown,
    LoginExpired,
    TokenEndpointError,
    ensure_fresh,
    jwt_claims,
    quiet_http_client,
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


def pick_group_claim(claims: dict[str, Any], groups_claim: str) -> list[str]:
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


def groups_from_auth_state(
    auth_state: dict[str, Any], groups_claim: str = "auto", group_prefix: str = "", user_key: str = "oauth_user"
) -> list[str]:
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


DISCOVERY_ENDPOINTS = {
    # trait -> discovery document key
    "authorize_url": "authorization_endpoint",
    "token_url": "token_endpoint",
    "userdata_url": "userinfo_endpoint",
}


async def fetch_discovery(issuer: str, timeout: float = 10.0) -> dict[str, Any]:
    """``{issuer}/.well-known/openid-configuration`` (raises :class:`DiscoveryError`)."""
    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    try:
        response = await AsyncHTTPClient().fetch(url, connect_timeout=timeout, request_timeout=timeout)
        doc = json.loads(response.body.decode("utf-8"))
    except (HTTPClientError, OSError, ValueError) as e:
        raise DiscoveryError(f"IAMOAuthenticator.issuer: cannot read {url}: {e}") from None
    if not isinstance(doc, dict):
        raise DiscoveryError(f"IAMOAuthenticator.issuer: {url} is not a discovery document")
    missing = [key for key in DISCOVERY_ENDPOINTS.values() if not doc.get(key)]
    if missing:
        raise DiscoveryError(f"IAMOAuthenticator.issuer: {url} lacks {', '.join(missing)}")
    return doc


class IAMLoginHandler(OAuthLoginHandler):
    """OAuthenticator's login redirect, once the issuer's endpoints are known."""

    async def get(self) -> None:
        if not await self.authenticator.wait_for_endpoints():
            raise web.HTTPError(
                503,
                "The login service (%s) cannot be reached right now. Please try again in a minute.",
                self.authenticator.login_service,
            )
        redirect = super().get()
        if inspect.isawaitable(redirect):  # OAuthenticator's get() is plain today
            await redirect


class IAMOAuthenticator(GenericOAuthenticator):
    """GenericOAuthenticator for INDIGO IAM (and other WLCG-profile OpenID Connect providers)."""

    issuer = Unicode(
        "",
        config=True,
        help="""
        The IAM issuer URL, e.g. ``https://iam.example.org/``. When set, the
        authorize, token and userinfo URLs not set explicitly are read from
        ``{issuer}/.well-known/openid-configuration``: from the hub's start,
        retried while the issuer cannot be reached (logins wait until then) and
        read again every ``discovery_refresh_interval`` seconds.
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
        10,
        min=1,
        config=True,
        help="""
        Seconds to wait for the issuer's discovery document, per request; a
        login that arrives before the endpoints are known waits this long too.
        """,
    )

    discovery_retry_max = Integer(
        60,
        min=1,
        config=True,
        help="""
        Seconds: while the issuer's discovery document cannot be read, it is
        fetched again after 1 s, then after twice as long each time, at most
        this long apart.
        """,
    )

    discovery_refresh_interval = Integer(
        3600,
        min=0,
        config=True,
        help="""
        Seconds between two reads of the issuer's discovery document once it
        was read, so that moved endpoints are followed without a hub restart
        (a failed read keeps the endpoints known so far). 0: read it once.
        """,
    )

    login_handler = IAMLoginHandler

    @default("http_client")
    def _default_http_client(self) -> Any:
        # OAuthenticator's default is the client JupyterHub configures (curl when
        # pycurl is installed), which logs the token and userinfo requests,
        # tokens and client secret included, at DEBUG.
        return quiet_http_client(self.http_request_kwargs)

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
    def _auth_state_groups_key_default(self) -> Callable[[dict[str, Any]], list[str]]:
        # A callable: a dotted key cannot address the "wlcg.groups" claim.
        return self._groups_from_auth_state

    def _groups_from_auth_state(self, auth_state: dict[str, Any]) -> list[str]:
        return groups_from_auth_state(
            auth_state or {}, self.groups_claim.lower(), self.group_prefix, self.user_auth_state_key
        )

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.discovery: dict[str, Any] = {}
        #: the endpoint traits discovery fills (those the admin did not set)
        self._discovered_traits = [trait for trait in DISCOVERY_ENDPOINTS if not getattr(self, trait)]
        if self.userdata_from_id_token and "userdata_url" in self._discovered_traits:
            self._discovered_traits.remove("userdata_url")
        if not self.issuer:
            self._discovered_traits = []
        self._endpoints_known = asyncio.Event()
        self._discovery_task: asyncio.Task[None] | None = None
        if not self._discovered_traits:
            self._endpoints_known.set()
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return  # no event loop yet: the first login starts discovery
        self.start_discovery()

    async def discover(self) -> dict[str, Any]:
        """Read the issuer's discovery document once and take its endpoints
        (raises :class:`DiscoveryError`)."""
        doc = await fetch_discovery(self.issuer, self.discovery_timeout)
        changed = [t for t in self._discovered_traits if getattr(self, t) != doc[DISCOVERY_ENDPOINTS[t]]]
        for trait in changed:
            setattr(self, trait, doc[DISCOVERY_ENDPOINTS[trait]])
        self.discovery = doc
        if changed:
            self.log.info("IAM issuer %s: %s read from its discovery document", self.issuer, ", ".join(changed))
        self._endpoints_known.set()
        return doc

    def start_discovery(self) -> None:
        """Run discovery in the background (retries, then periodic reads) if it is not running."""
        if self._discovered_traits and (self._discovery_task is None or self._discovery_task.done()):
            self._discovery_task = asyncio.ensure_future(self._keep_discovering())

    def stop_discovery(self) -> None:
        if self._discovery_task is not None:
            self._discovery_task.cancel()
            self._discovery_task = None

    async def _keep_discovering(self) -> None:
        delay = 1.0
        while True:
            try:
                await self.discover()
            except DiscoveryError as e:
                known = "keeping the endpoints read before" if self._endpoints_known.is_set() else "logins wait"
                self.log.warning("%s; %s; next try in %.0f s", e, known, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.discovery_retry_max)
                continue
            delay = 1.0
            if not self.discovery_refresh_interval:
                return
            await asyncio.sleep(self.discovery_refresh_interval)

    async def wait_for_endpoints(self, timeout: float | None = None) -> bool:
        """True once the endpoints are known, waiting at most ``timeout``
        seconds (default ``discovery_timeout``) for them."""
        if self._endpoints_known.is_set():
            return True
        self.start_discovery()
        try:
            await asyncio.wait_for(self._endpoints_known.wait(), timeout or self.discovery_timeout)
        except TimeoutError:
            return False
        return True

    async def get_token_info(self, handler: Any, params: dict[str, Any]) -> dict[str, Any]:
        """OAuthenticator's token request, but no answer reaches a log line or an
        exception (see :func:`offload_spawner.identity.refresh.request_tokens`); a failure
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

    async def refresh_user(self, user: Any, handler: Any = None, **kwargs: Any) -> bool | dict[str, Any]:
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
        refreshed: bool | dict[str, Any] = await super().refresh_user(user, handler, **kwargs)
        return refreshed


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
    "DiscoveryError",
    "IAMLoginHandler",
    "IAMOAuthenticator",
    "configure_iam",
    "fetch_discovery",
    "groups_from_auth_state",
    "normalize_groups",
    "pick_group_claim",
]
