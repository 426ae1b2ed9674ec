"""Logging in with IAMOAuthenticator against a real OpenID Connect provider.

Real parts: the ``oidc-provider`` npm package (testbed/oidc, started once for
this module), a real JupyterHub (MockHub + configurable-http-proxy) whose
authenticator is IAMOAuthenticator configured only with the issuer (endpoints
from discovery), and a browser-less login through the hub and the provider's
login form. The spawner is hub_fixtures' RecordingSpawner (no Kubernetes API
server in these tests; the pods it would create are recorded).
"""

from __future__ import annotations

import asyncio
import logging

import pytest
from jupyterhub.tests.utils import api_request, public_url
from prometheus_client import REGISTRY
from tornado.httpclient import HTTPClientError

from hub_fixtures import HubClient, RecordingSpawner
from offload_spawner.identity.iam import IAMOAuthenticator
from offload_spawner.identity.refresh import access_token_expiry, ensure_fresh, jwt_claims
from testbed.oidc import OidcProvider, OidcProviderError, login_through_hub

pytestmark = pytest.mark.hub

TTL = 600  # the provider's access-token lifetime in this module (seconds)
USERS = {
    "alice": {"password": "alice-pw", "groups": ["cms", "atlas"], "wlcg_groups": ["/cms", "/cms/higgs", "/atlas"]},
    "bob": {"password": "bob-pw", "groups": ["atlas"]},
    "carol": {"password": "carol-pw", "groups": ["cms"]},
    "dave": {"password": "dave-pw", "groups": ["cms"]},
}


# MockHub serves the hub under this prefix; the port varies (loopback, any port is accepted).
CALLBACK = "http://127.0.0.1:8000/@/space%20word/hub/oauth_callback"


@pytest.fixture(scope="module")
def idp():
    with OidcProvider(USERS, redirect_uris=[CALLBACK], access_token_ttl=TTL) as provider:
        yield provider


@pytest.fixture
async def iam_hub(hub_app, idp, crypt_key, requires_chp, stub_server, tmp_path):
    """Factory: a hub logging users in through the provider."""
    RecordingSpawner.recorded = []
    RecordingSpawner.stub_url = stub_server

    async def start(authenticator: dict | None = None, spawner: dict | None = None):
        app = await hub_app(
            config={
                # redirect_to_server=False: a login lands on /hub/home, it does not start a server
                "JupyterHub": {
                    "authenticator_class": IAMOAuthenticator,
                    "spawner_class": RecordingSpawner,
                    "redirect_to_server": False,
                },
                "IAMOAuthenticator": {
                    "issuer": idp.issuer,
                    "client_id": idp.client_id,
                    "client_secret": idp.client_secret,
                    "allow_all": True,
                    # the REST API helpers (jupyterhub.tests.utils.api_request) act as "admin"
                    "admin_users": {"admin"},
                    **(authenticator or {}),
                },
                "RecordingSpawner": spawner or {},
                "ConfigurableHTTPProxy": {"pid_file": str(tmp_path / "proxy.pid")},
            }
        )
        return app

    yield start
    RecordingSpawner.recorded = []


async def login(app, username: str):
    """The browser-less login, in a thread: the hub answers on this event loop."""
    url = public_url(app).rstrip("/")
    return await asyncio.to_thread(login_through_hub, url, username, USERS[username]["password"])


async def test_login_syncs_the_groups_claim_and_allowed_groups_admit_only_members(iam_hub, idp):
    app = await iam_hub({"groups_claim": "groups", "allow_all": False, "allowed_groups": {"cms"}})
    assert app.authenticator.authorize_url == f"{idp.issuer}/authorize"  # from discovery
    assert app.authenticator.userdata_url == f"{idp.issuer}/userinfo"

    await login(app, "alice")
    user = app.users["alice"]
    assert sorted(g.name for g in user.groups) == ["atlas", "cms"]

    state = await user.get_auth_state()
    assert jwt_claims(state["access_token"])["sub"] == "alice"
    assert state["refresh_token"]
    assert state["oauth_user"]["preferred_username"] == "alice"
    assert state["token_response"]["issued_at"] > 0
    assert access_token_expiry(state) == jwt_claims(state["access_token"])["exp"]

    # bob is in IAM but not in an allowed group: the hub refuses him
    with pytest.raises(OidcProviderError, match="did not log bob in"):
        await login(app, "bob")
    r = await api_request(app, "users", "bob")
    assert r.status_code == 404  # never created


async def test_wlcg_groups_with_a_prefix_and_fresh_tokens_against_the_provider(iam_hub, idp, caplog):
    caplog.set_level(logging.DEBUG)  # every hub log line, login included
    app = await iam_hub({"groups_claim": "wlcg.groups", "group_prefix": "cms"})
    await login(app, "alice")
    user = app.users["alice"]
    # "/cms/higgs" -> "cms/higgs"; "/atlas" dropped by the prefix
    assert sorted(g.name for g in user.groups) == ["cms", "cms/higgs"]

    old = await user.get_auth_state()
    refreshes = idp.refresh_count("alice")

    # lives long enough: nothing asked of the provider
    assert await ensure_fresh(app.authenticator, user, 60) == old
    assert idp.refresh_count("alice") == refreshes

    # a server that needs the token for longer than it lives: refreshed, with a
    # longer lifetime from the provider
    idp.set_access_token_ttl(3 * TTL)
    try:
        new = await ensure_fresh(app.authenticator, user, TTL + 60)
    finally:
        idp.set_access_token_ttl(TTL)
    assert idp.refresh_count("alice") == refreshes + 1
    assert new["access_token"] != old["access_token"]
    assert access_token_expiry(new) > access_token_expiry(old) + TTL
    assert (await user.get_auth_state())["access_token"] == new["access_token"]
    assert new["refresh_token"]  # kept (the provider does not rotate it)
    assert "Refreshing the access token of alice" in caplog.text

    # the provider's tokens cannot live as long as asked: the token it just gave
    # is the best there is, and asking again at once (start(), poll()) sends nothing
    assert await ensure_fresh(app.authenticator, user, 4 * TTL) == new
    assert idp.refresh_count("alice") == refreshes + 1
    for token in (old["access_token"], old["refresh_token"], old["id_token"], new["access_token"]):
        assert token not in caplog.text


async def test_concurrent_callers_share_one_refresh(iam_hub, idp):
    app = await iam_hub()
    await login(app, "carol")
    user = app.users["carol"]
    before = idp.refresh_count("carol")
    refreshed = REGISTRY.get_sample_value("offload_spawner_token_refreshes_total", {"outcome": "refreshed"}) or 0
    states = await asyncio.gather(*(ensure_fresh(app.authenticator, user, TTL + 60) for _ in range(8)))
    # counted by the provider: one refresh for the eight callers; and by the hub's metrics
    assert idp.refresh_count("carol") == before + 1
    assert REGISTRY.get_sample_value("offload_spawner_token_refreshes_total", {"outcome": "refreshed"}) == refreshed + 1
    assert len({s["access_token"] for s in states}) == 1

    # IAMOAuthenticator.refresh_user refreshes before expiry (OAuthenticator #790):
    # with a buffer longer than the token's life it refreshes although the
    # token still works at userinfo
    await login(app, "bob")
    bob = app.users["bob"]
    logged_in = await bob.get_auth_state()
    before = idp.refresh_count("bob")
    app.authenticator.refresh_buffer = TTL + 60
    model = await app.authenticator.refresh_user(bob)
    assert idp.refresh_count("bob") == before + 1
    assert model["auth_state"]["access_token"] != logged_in["access_token"]
    assert model["groups"] == ["atlas"]


async def test_a_rotated_refresh_token_is_kept(iam_hub, hub_app):
    """A provider that rotates refresh tokens invalidates the old one: the new one must be stored."""
    with OidcProvider(USERS, redirect_uris=[CALLBACK], access_token_ttl=TTL, rotate_refresh_token=True) as rotating:
        app = await iam_hub(rotating.authenticator_config())
        await login(app, "carol")
        user = app.users["carol"]
        old = await user.get_auth_state()
        new = await ensure_fresh(app.authenticator, user, TTL + 60)
        assert rotating.refresh_count("carol") == 1
        assert new["refresh_token"] and new["refresh_token"] != old["refresh_token"]
        assert (await user.get_auth_state())["refresh_token"] == new["refresh_token"]
        # the stored (new) refresh token works; the old one was consumed
        info = await app.authenticator.get_token_info(
            None, app.authenticator.build_refresh_token_request_params(new["refresh_token"])
        )
        assert info["access_token"]
        with pytest.raises(HTTPClientError) as refused:
            await app.authenticator.get_token_info(
                None, app.authenticator.build_refresh_token_request_params(old["refresh_token"])
            )
        assert refused.value.code == 400


TARGETS = {
    "cluster": {"display_name": "This cluster", "backend": "kubernetes"},
    "naples": {
        "display_name": "INFN Naples (HTCondor)",
        "backend": "htcondor",
        "node": "vk-naples",
        "start_timeout": 900,
        "tokens": {"min_lifetime": TTL + 600},  # longer than the provider's tokens live
    },
}

PROFILES = [{"display_name": "Analysis", "slug": "analysis"}]


def post_spawn_form(session, hub_url: str, user: str, target: str) -> str:
    """What a browser does on the spawn page (in a thread: the hub runs on this loop)."""
    url = f"{hub_url.rstrip('/')}/hub/spawn/{user}"
    session.get(url, timeout=30).raise_for_status()  # sets the _xsrf cookie
    data = {"_xsrf": session.cookies.get("_xsrf"), "profile": "analysis", "profile-option-analysis--target": target}
    return session.post(url, data=data, timeout=30).text


async def test_a_spawn_whose_login_cannot_be_renewed_is_refused_and_creates_nothing(iam_hub, idp, caplog):
    caplog.set_level(logging.DEBUG)
    app = await iam_hub(spawner={"offload_targets": TARGETS, "profile_list": PROFILES})
    browser = await login(app, "dave")
    client = HubClient(app)
    user = app.users["dave"]
    old = await user.get_auth_state()

    idp.revoke("dave")
    try:
        r = await client.api_spawn("dave", {"target": "naples"})
        assert r.status_code == 403, r.text
        message = r.json()["message"]
        assert "log in again" in message and "/hub/logout" in message
        assert old["access_token"] not in r.text and old["refresh_token"] not in r.text
        assert RecordingSpawner.recorded == []
        assert (await client.api_user("dave"))["servers"] == {}
        assert (await user.get_auth_state())["access_token"] == old["access_token"]  # nothing saved

        # the spawn form: the page says so, with a link to log out and in again
        page = await asyncio.to_thread(post_spawn_form, browser, public_url(app), "dave", "naples")
        assert "Your login has expired" in page
        assert 'href="/@/space%20word/hub/logout"' in page
        assert old["access_token"] not in page
        assert RecordingSpawner.recorded == []
    finally:
        idp.restore("dave")

    # once the provider renews the login, the same spawn goes ahead with a fresh token
    before = idp.refresh_count("dave")
    r = await client.api_spawn("dave", {"target": "naples"})
    assert r.status_code in (201, 202), r.text
    await client.wait_ready("dave")
    assert idp.refresh_count("dave") == before + 1
    assert [name for name, _ in RecordingSpawner.recorded] == ["dave"]
    new = await user.get_auth_state()
    assert new["access_token"] != old["access_token"]
    await client.stop("dave")
    assert "Refreshing the access token of dave failed" in caplog.text
    for token in (old["access_token"], old["refresh_token"], new["access_token"]):
        assert token not in caplog.text


async def test_refusal_on_the_cluster_target_uses_the_default_minimum(iam_hub, idp):
    """No start_timeout, no tokens.min_lifetime: 900 s, longer than the tokens live."""
    app = await iam_hub(spawner={"offload_targets": {"cluster": TARGETS["cluster"]}, "profile_list": PROFILES})
    await login(app, "bob")
    idp.revoke("bob")
    try:
        r = await HubClient(app).api_spawn("bob", {"target": "cluster"})
    finally:
        idp.restore("bob")
    assert r.status_code == 403, r.text
    assert "log in again" in r.json()["message"]
    assert RecordingSpawner.recorded == []


def test_the_provider_refuses_a_wrong_password(idp):
    import requests

    s = requests.Session()
    params = {"client_id": idp.client_id, "response_type": "code", "scope": "openid", "redirect_uri": CALLBACK}
    r = s.get(f"{idp.issuer}/authorize", params=params, timeout=10)
    assert "/interaction/" in r.url, r.text
    r = s.post(r.url + "/login", data={"username": "alice", "password": "wrong"}, timeout=10, allow_redirects=False)
    assert r.status_code == 200
    assert "Invalid username or password" in r.text
