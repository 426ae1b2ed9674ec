"""No token in any log line of the refresh path, whatever the token endpoint answers.

A real HTTP token endpoint (tornado, on a local port) answers each refresh the
way a broken or hostile identity provider might: without ``access_token``
(OAuthenticator's "Bad response: {...}" repeats the whole answer), with an
error that echoes the refresh token, with a body that is not JSON. Every log
record of every logger is captured at DEBUG and searched for every token value.
"""

from __future__ import annotations

import json

import pytest
from tornado import web
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from log_capture import all_logs_at_debug, leaked
from offload_spawner.identity.iam import IAMOAuthenticator
from offload_spawner.identity.refresh import IdentityProviderDown, LoginExpired, ensure_fresh
from test_refresh import StoredUser
from test_tokens import jwt

OLD_ACCESS = jwt({"sub": "alice", "exp": 1000, "jti": "old-access-0001"})
REFRESH = "refresh-secret-" + "r" * 40
NEW_REFRESH = "rotated-refresh-secret-" + "n" * 40
ID_TOKEN = jwt({"sub": "alice", "jti": "id-token-0001"})
SECRETS = (OLD_ACCESS, REFRESH, NEW_REFRESH, ID_TOKEN, "old-access-0001", "id-token-0001")

ANSWERS = {
    # no access_token: OAuthenticator raises "Bad response: {the whole answer}"
    "no-access-token": (200, json.dumps({"refresh_token": NEW_REFRESH, "id_token": ID_TOKEN, "token_type": "Bearer"})),
    # an error that repeats what it was sent
    "echo-error": (
        400,
        json.dumps({"error": "invalid_grant", "error_description": f"refresh token {REFRESH} expired"}),
    ),
    "error-description-200": (200, json.dumps({"error_description": f"bad {REFRESH}", "id_token": ID_TOKEN})),
    "not-json": (200, f"<html>{REFRESH} {ID_TOKEN}</html>"),
    "server-error": (500, f"Traceback: refresh_token={REFRESH}"),
    "json-list": (200, json.dumps([REFRESH])),
}


class _TokenEndpoint(web.RequestHandler):
    def post(self):
        status, body = ANSWERS[self.application.settings["answer"]]
        self.set_status(status)
        self.write(body)


class _UserInfo(web.RequestHandler):
    def get(self):
        self.set_status(401)  # the access token is refused: OAuthenticator then refreshes
        self.write({"error": "invalid_token"})


@pytest.fixture
async def provider():
    app = web.Application([(r"/token", _TokenEndpoint), (r"/userinfo", _UserInfo)], answer="no-access-token")
    sockets = bind_sockets(0, "127.0.0.1")
    server = HTTPServer(app)
    server.add_sockets(sockets)
    yield app, f"http://127.0.0.1:{sockets[0].getsockname()[1]}"
    server.stop()


def authenticator(url: str, **kwargs) -> IAMOAuthenticator:
    return IAMOAuthenticator(
        authorize_url=f"{url}/authorize",
        token_url=f"{url}/token",
        userdata_url=f"{url}/userinfo",
        client_id="hub",
        client_secret="client-secret-not-logged-either",
        **kwargs,
    )


def assert_no_secret(lines: list[str]) -> None:
    assert lines, "the refresh path logged nothing: the capture is broken"
    assert leaked(lines, [*SECRETS, "client-secret-not-logged-either"]) == []


@pytest.mark.parametrize("answer", sorted(ANSWERS))
async def test_ensure_fresh_logs_no_token_whatever_the_endpoint_answers(provider, answer):
    app, url = provider
    app.settings["answer"] = answer
    auth = authenticator(url)
    user = StoredUser("alice", {"access_token": OLD_ACCESS, "refresh_token": REFRESH, "id_token": ID_TOKEN})
    with all_logs_at_debug() as lines, pytest.raises(LoginExpired) as info:
        await ensure_fresh(auth, user, 600, now=900)
    assert_no_secret(lines)
    assert user.saved == 0
    status = ANSWERS[answer][0]
    assert any("a new login is needed" in line or "the identity provider is down" in line for line in lines)
    assert any(f"HTTP {status}" in line for line in lines), lines
    for secret in SECRETS:
        assert secret not in str(info.value)


@pytest.mark.parametrize("answer", sorted(ANSWERS))
async def test_oauthenticators_own_refresh_logs_no_token(provider, answer):
    # refresh_buffer=0: OAuthenticator's refresh_user path (userinfo refuses, then a refresh)
    app, url = provider
    app.settings["answer"] = answer
    auth = authenticator(url, refresh_buffer=0)
    response = {"access_token": OLD_ACCESS, "token_type": "Bearer", "refresh_token": REFRESH, "id_token": ID_TOKEN}
    user = StoredUser(
        "alice",
        {"access_token": OLD_ACCESS, "refresh_token": REFRESH, "id_token": ID_TOKEN, "token_response": response},
    )
    with all_logs_at_debug() as lines:
        assert await auth.refresh_user(user) is False
    assert_no_secret(lines)
    assert user.saved == 0


# --- the identity provider down -----------------------------------------------------------


def _closed_port() -> int:
    sockets = bind_sockets(0, "127.0.0.1")
    port = sockets[0].getsockname()[1]
    for sock in sockets:
        sock.close()
    return port


@pytest.mark.parametrize("answer", ["unreachable", "server-error"])
async def test_an_identity_provider_that_is_down_gives_a_clear_message_not_log_in_again(provider, answer):
    app, url = provider
    if answer == "unreachable":
        url = f"http://127.0.0.1:{_closed_port()}"
    else:
        app.settings["answer"] = answer
    auth = authenticator(url, refresh_buffer=600)
    user = StoredUser("alice", {"access_token": OLD_ACCESS, "refresh_token": REFRESH, "id_token": ID_TOKEN})
    with all_logs_at_debug() as lines, pytest.raises(IdentityProviderDown) as info:
        await ensure_fresh(auth, user, 600, now=900)
    assert "could not be reached" in info.value.message and "log in again" not in info.value.message
    assert_no_secret(lines)
    assert user.saved == 0
    # the hub session is kept (a new login would fail the same way)
    assert await auth.refresh_user(user) is True


async def test_a_refused_refresh_still_means_log_in_again(provider):
    app, url = provider
    app.settings["answer"] = "echo-error"  # HTTP 400: the provider answered and refused
    auth = authenticator(url, refresh_buffer=600)
    user = StoredUser("alice", {"access_token": OLD_ACCESS, "refresh_token": REFRESH, "id_token": ID_TOKEN})
    with pytest.raises(LoginExpired) as info:
        await ensure_fresh(auth, user, 600, now=900)
    assert not isinstance(info.value, IdentityProviderDown)


async def test_a_spawn_needing_a_fresh_token_while_the_provider_is_down_is_refused_with_503():
    from jupyterhub.spawner import SpawnException

    from offload_spawner.identity.fresh_login import FreshLoginMixin

    class Spawner(FreshLoginMixin):
        _plan = None
        hub = type("Hub", (), {"base_url": "/hub/"})()
        user = StoredUser("alice", {"access_token": OLD_ACCESS, "refresh_token": REFRESH})
        authenticator = authenticator(f"http://127.0.0.1:{_closed_port()}")

    with pytest.raises(SpawnException) as info:
        await Spawner()._require_fresh_login(None)
    assert info.value.status_code == 503
    assert "identity provider could not be reached" in info.value.jupyterhub_message
