"""Fresh tokens: make sure a user's access token still lives long enough.

A server on a batch target may wait an hour in a queue before it reads its
token; OAuthenticator only refreshes a token after the identity provider has
refused it (upstream #790). :func:`ensure_fresh` refreshes *before* that, when
the token has less than a given lifetime left, using OAuthenticator's own
request builders, and shares one refresh among concurrent callers for a user.

Used before a spawn (the target's ``tokens.min_lifetime``), by the running
server's token rotation (``tokens.renew_before``) and by
:class:`offload_spawner.identity.iam.IAMOAuthenticator`'s ``refresh_user``.
No token value is ever logged or put into an exception message.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import time
import weakref
from typing import Any, cast
from urllib.parse import urlencode

import jwt
from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.simple_httpclient import SimpleAsyncHTTPClient

from ..metrics import note_token_refresh

log = logging.getLogger("offload_spawner.identity.refresh")

#: stored in ``auth_state["token_response"]``: epoch seconds when the token response arrived
ISSUED_AT_KEY = "issued_at"

LOGIN_EXPIRED_MESSAGE = "Your login has expired. Please log in again to start a server."


class LoginExpired(Exception):
    """The user must log in again (the message is user-facing and holds no token)."""

    def __init__(self, message: str = LOGIN_EXPIRED_MESSAGE) -> None:
        super().__init__(message)
        self.message = message


IDP_DOWN_MESSAGE = (
    "The identity provider could not be reached to renew your login, so no server was started. "
    "Please try again in a few minutes."
)


class IdentityProviderDown(LoginExpired):
    """The token could not be renewed because the identity provider did not answer
    (unreachable, or an HTTP 5xx): logging in again would not help now."""

    def __init__(self, message: str = IDP_DOWN_MESSAGE) -> None:
        super().__init__(message)


def jwt_claims(token: Any) -> dict[str, Any] | None:
    """The claims of a JWT, decoded by PyJWT WITHOUT verifying its signature.

    Only used to read ``exp``: the hub got the token from the provider itself.
    None when ``token`` is not a JWT (e.g. an opaque access token).
    """
    if not isinstance(token, str):
        return None
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.InvalidTokenError:
        return None
    return claims if isinstance(claims, dict) else None


def jwt_expiry(token: Any) -> float | None:
    """The ``exp`` claim of a JWT (epoch seconds, unverified: only to plan
    renewal), else None. ``exp`` is a JSON number (RFC 7519 NumericDate):
    anything else counts as no expiry."""
    claims = jwt_claims(token)
    exp = claims.get("exp") if claims else None
    return float(exp) if isinstance(exp, (int, float)) and not isinstance(exp, bool) else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def access_token_expiry(auth_state: dict[str, Any] | None) -> float | None:
    """Epoch seconds when the access token in ``auth_state`` expires.

    From the JWT ``exp`` claim, else from ``token_response["expires_in"]``
    plus the issue time stored with it (:data:`ISSUED_AT_KEY`); None if unknown.
    """
    if not auth_state:
        return None
    exp = jwt_expiry(auth_state.get("access_token"))
    if exp is not None:
        return exp
    response = auth_state.get("token_response")
    if isinstance(response, dict):
        expires_in = _number(response.get("expires_in"))
        issued_at = _number(response.get(ISSUED_AT_KEY))
        if expires_in is not None and issued_at is not None:
            return issued_at + expires_in
    return None


def remaining_lifetime(auth_state: dict[str, Any] | None, now: float | None = None) -> float | None:
    """Seconds the access token still lives (negative: expired); None if unknown."""
    expiry = access_token_expiry(auth_state)
    if expiry is None:
        return None
    return expiry - (time.time() if now is None else now)


def lives_long_enough(auth_state: dict[str, Any] | None, min_lifetime: float, now: float | None = None) -> bool:
    """True when the token lives at least ``min_lifetime`` more seconds, or
    when its expiry is unknown (nothing to go by: it is not refreshed blindly)."""
    remaining = remaining_lifetime(auth_state, now)
    return remaining is None or remaining >= min_lifetime


def stamp_issued_at(token_info: dict[str, Any], now: float | None = None) -> dict[str, Any]:
    """Record when a token response arrived, so ``expires_in`` can be turned into an expiry."""
    if isinstance(token_info, dict) and ISSUED_AT_KEY not in token_info:
        token_info[ISSUED_AT_KEY] = int(time.time() if now is None else now)
    return token_info


#: min_lifetime when a server's target has no start_timeout
DEFAULT_MIN_LIFETIME = 900
#: added to a target's start_timeout for the default min_lifetime (the server must still use the token once up)
START_TIMEOUT_MARGIN = 300


def min_lifetime_for(plan: Any) -> int:
    """Seconds an access token must still live when a server with this plan starts:
    the target's ``tokens.min_lifetime``, else its start_timeout + 300 s, else 900 s."""
    tokens = getattr(plan, "tokens", None)
    explicit = getattr(tokens, "min_lifetime", None)
    if explicit is not None:
        return int(explicit)
    start_timeout = getattr(plan, "start_timeout", None)
    if start_timeout:
        return int(start_timeout) + START_TIMEOUT_MARGIN
    return DEFAULT_MIN_LIFETIME


#: a token this hub got by refreshing less than this many seconds ago is not
#: refreshed again, even when it lives shorter than asked: the provider gave
#: its longest, and asking again (start(), every poll()) would only add load.
MIN_REFRESH_INTERVAL = 60

# (authenticator, user) -> (access token our last refresh got, time.monotonic() then)
_RECENT: weakref.WeakKeyDictionary[Any, dict[str, tuple[str, float]]] = weakref.WeakKeyDictionary()


def _refreshed_recently(authenticator: Any, username: str, access_token: Any) -> bool:
    token, at = _RECENT.get(authenticator, {}).get(username, (None, 0.0))
    return token is not None and token == access_token and time.monotonic() - at < MIN_REFRESH_INTERVAL


# One lock per (authenticator, user): concurrent spawns, the rotation in poll()
# and refresh_user of the same user share one refresh instead of each sending
# the refresh token (a rotating provider would invalidate all but one).
_LOCKS: weakref.WeakKeyDictionary[Any, dict[str, asyncio.Lock]] = weakref.WeakKeyDictionary()


def _user_lock(authenticator: Any, username: str) -> asyncio.Lock:
    locks = _LOCKS.setdefault(authenticator, {})
    lock = locks.get(username)
    if lock is None:
        lock = locks[username] = asyncio.Lock()
    return lock


def keeps_auth_state(authenticator: Any) -> bool:
    return bool(getattr(authenticator, "enable_auth_state", False))


async def ensure_fresh(
    authenticator: Any, user: Any, min_lifetime: float, *, now: float | None = None
) -> dict[str, Any] | None:
    """The user's auth_state, with an access token living at least
    ``min_lifetime`` more seconds — refreshed (and saved) if needed.

    Returns None when the authenticator keeps no auth_state. Raises
    :class:`LoginExpired` when the token must be refreshed but there is no
    refresh token or the identity provider refuses the refresh. A token whose
    expiry cannot be known is returned as it is.
    """
    auth_state: dict[str, Any] | None = await user.get_auth_state()
    if not keeps_auth_state(authenticator):
        return auth_state
    if not auth_state:
        _log(authenticator).info("No auth_state for %s: a new login is needed", user.name)
        raise LoginExpired()
    if lives_long_enough(auth_state, min_lifetime, now):
        return auth_state
    seen_token = auth_state.get("access_token")
    async with _user_lock(authenticator, user.name):
        auth_state = await user.get_auth_state()
        if not auth_state:
            raise LoginExpired()
        if auth_state.get("access_token") != seen_token or lives_long_enough(auth_state, min_lifetime, now):
            # Another caller refreshed while this one waited for the lock: that
            # token is the freshest the provider gives (no second request).
            return auth_state
        left = remaining_lifetime(auth_state, now)
        if left is not None and left > 0 and _refreshed_recently(authenticator, user.name, seen_token):
            # The provider's tokens live shorter than asked (warned when it was issued).
            return auth_state
        return await _refresh(authenticator, user, auth_state, min_lifetime, now)


def _log(authenticator: Any) -> logging.Logger:
    """The hub's log when the authenticator has one (so these lines are in the hub log)."""
    return getattr(authenticator, "log", None) or log


async def _refresh(
    authenticator: Any, user: Any, auth_state: dict[str, Any], min_lifetime: float, now: float | None
) -> dict[str, Any]:
    log = _log(authenticator)
    refresh_token = auth_state.get("refresh_token")
    if not refresh_token:
        log.info(
            "The access token of %s is about to expire and there is no refresh token: a new login is needed", user.name
        )
        note_token_refresh("no_refresh_token")
        raise LoginExpired()
    params = authenticator.build_refresh_token_request_params(refresh_token)
    log.info("Refreshing the access token of %s (it must live %d more seconds)", user.name, min_lifetime)
    try:
        token_info = await request_tokens(authenticator, params)
    except Exception as e:  # noqa: BLE001 - any failure means: log in again
        # The exception's type and the HTTP status only: the text of an
        # exception from this path may repeat the provider's answer, tokens included.
        status = getattr(e, "status", None)
        if isinstance(e, TokenEndpointError) and (status is None or status >= 500):
            log.warning(
                "Refreshing the access token of %s failed (%s): the identity provider is down", user.name, _reason(e)
            )
            note_token_refresh("failed")
            raise IdentityProviderDown() from None
        log.warning("Refreshing the access token of %s failed (%s): a new login is needed", user.name, _reason(e))
        note_token_refresh("failed")
        raise LoginExpired() from None
    note_token_refresh("refreshed")
    stamp_issued_at(token_info, now)
    if not token_info.get("refresh_token"):
        # The provider keeps the refresh token unchanged (no rotation).
        token_info["refresh_token"] = refresh_token
    user_info = auth_state.get(getattr(authenticator, "user_auth_state_key", "oauth_user"))
    new_state = authenticator.build_auth_state_dict(token_info, user_info)
    if inspect.isawaitable(new_state):
        new_state = await new_state
    hook = getattr(authenticator, "modify_auth_state_hook", None)
    if hook is not None:
        new_state = hook(authenticator, new_state)
        if inspect.isawaitable(new_state):
            new_state = await new_state
    await user.save_auth_state(new_state)
    _RECENT.setdefault(authenticator, {})[user.name] = (new_state.get("access_token"), time.monotonic())
    left = remaining_lifetime(new_state, now)
    if left is not None and left < min_lifetime:
        log.warning(
            "The identity provider issued %s an access token living %d s, less than the %d s asked for: "
            "lower the target's tokens.min_lifetime or raise the provider's token lifetime",
            user.name,
            left,
            min_lifetime,
        )
    # OAuthenticator's build_auth_state_dict (and an admin's hook) give the auth_state dict.
    return cast("dict[str, Any]", new_state)


def _reason(exc: BaseException) -> str:
    """Why a token request failed, without a word of the provider's answer:
    the exception's type and the HTTP status when there is one."""
    status = getattr(exc, "status", None) or getattr(exc, "code", None) or getattr(exc, "status_code", None)
    name = type(exc).__name__
    return f"{name}, HTTP {status}" if isinstance(status, int) else name


class TokenEndpointError(Exception):
    """The token endpoint did not answer with tokens. Its message holds the HTTP
    status only (never the answer, which may repeat the tokens sent)."""

    def __init__(self, status: int | None, what: str, error_answer: bool = False) -> None:
        self.status = status
        #: the endpoint answered with an OAuth error (``error``/``error_description``)
        self.error_answer = error_answer
        super().__init__(
            f"the token endpoint answered HTTP {status} {what}" if status else f"the token endpoint {what}"
        )


#: HTTPRequest options only tornado's curl client supports (OAuthenticator's proxy settings).
_CURL_ONLY = frozenset(
    {"proxy_host", "proxy_port", "proxy_username", "proxy_password", "proxy_auth_mode", "prepare_curl_callback"}
)


def quiet_http_client(request_kwargs: Any) -> Any:
    """An HTTP client that logs no request: tornado's own, unless the requests
    need proxy settings, which only tornado's curl client supports.

    JupyterHub makes tornado use its curl client when pycurl is installed, and
    that client logs every request's headers and body at DEBUG
    (tornado/curl_httpclient.py, ``_curl_debug``): for a token request the
    refresh token and the client secret, for a userinfo request the access token."""
    if _CURL_ONLY.intersection(request_kwargs or {}):
        return AsyncHTTPClient()
    return SimpleAsyncHTTPClient()


async def request_tokens(authenticator: Any, params: dict[str, Any]) -> dict[str, Any]:
    """POST ``params`` to the authenticator's token endpoint; the answer, which must hold an access token.

    The same request as OAuthenticator's ``get_token_info``
    (oauthenticator/oauth2.py: ``token_url``, ``build_token_info_request_headers``,
    ``http_request_kwargs``, ``validate_server_cert``), but no answer is ever
    logged or put into an exception: OAuthenticator logs an error answer's body
    and raises "Bad response: {answer}" for an answer without ``access_token``,
    and either may hold the refresh and ID tokens.

    The request goes through :func:`quiet_http_client`: its body holds the
    refresh token and the client secret.
    """
    kwargs = dict(getattr(authenticator, "http_request_kwargs", None) or {})
    client = quiet_http_client(kwargs)
    kwargs.update(
        method="POST",
        headers=authenticator.build_token_info_request_headers(),
        body=urlencode(params).encode("utf-8"),
        validate_cert=getattr(authenticator, "validate_server_cert", True),
    )
    try:
        response = await client.fetch(HTTPRequest(authenticator.token_url, **kwargs), raise_error=False)
    except Exception as e:  # noqa: BLE001 - connection refused, TLS, timeout: reported by type only
        raise TokenEndpointError(None, f"could not be reached ({type(e).__name__})") from None
    status = response.code
    try:
        answer = json.loads(response.body.decode("utf-8", "replace")) if response.body else None
    except ValueError:
        answer = None
    if status != 200:
        raise TokenEndpointError(status, "instead of tokens")
    if not isinstance(answer, dict):
        raise TokenEndpointError(status, "with something that is not a JSON object")
    if "error_description" in answer or "error" in answer:
        raise TokenEndpointError(status, "with an error", error_answer=True)
    if not isinstance(answer.get("access_token"), str) or not answer["access_token"]:
        raise TokenEndpointError(status, "without an access token")
    return answer


__all__ = [
    "DEFAULT_MIN_LIFETIME",
    "IDP_DOWN_MESSAGE",
    "ISSUED_AT_KEY",
    "MIN_REFRESH_INTERVAL",
    "IdentityProviderDown",
    "LoginExpired",
    "TokenEndpointError",
    "access_token_expiry",
    "ensure_fresh",
    "jwt_claims",
    "jwt_expiry",
    "lives_long_enough",
    "min_lifetime_for",
    "remaining_lifetime",
    "request_tokens",
    "stamp_issued_at",
]
