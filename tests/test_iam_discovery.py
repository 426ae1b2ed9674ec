"""OpenID Connect discovery while the identity provider comes and goes.

Real parts: the ``oidc-provider`` npm package (testbed/oidc), a real JupyterHub
(MockHub + configurable-http-proxy) with IAMOAuthenticator configured only
with the issuer, and the browser-less login of testbed/oidc.py.
"""

from __future__ import annotations

import asyncio

import pytest
import requests
from jupyterhub.tests.utils import public_url

from hub_fixtures import RecordingSpawner
from offload_spawner.identity.iam import IAMOAuthenticator
from testbed.oidc import OidcProvider, free_port, login_through_hub

pytestmark = pytest.mark.hub

USERS = {"alice": {"password": "alice-pw", "groups": ["cms"]}}
CALLBACK = "http://127.0.0.1:8000/@/space%20word/hub/oauth_callback"
#: generous bound for the background discovery to notice the provider (not a timing assertion)
PATIENCE = 60


def _get(url: str) -> requests.Response:
    return requests.get(url, timeout=30, allow_redirects=False)


async def test_a_hub_started_while_the_provider_is_down_comes_up_and_recovers(
    hub_app, crypt_key, requires_chp, stub_server, tmp_path
):
    RecordingSpawner.stub_url = stub_server
    port = free_port()
    idp = OidcProvider(USERS, redirect_uris=[CALLBACK], port=port)
    app = await hub_app(
        config={
            "JupyterHub": {
                "authenticator_class": IAMOAuthenticator,
                "spawner_class": RecordingSpawner,
                "redirect_to_server": False,
            },
            "IAMOAuthenticator": {
                # nothing listens there yet
                "issuer": f"http://127.0.0.1:{port}",
                "client_id": idp.client_id,
                "client_secret": idp.client_secret,
                "allow_all": True,
                "discovery_timeout": 1,
                "discovery_retry_max": 1,
            },
            "ConfigurableHTTPProxy": {"pid_file": str(tmp_path / "proxy.pid")},
        }
    )
    authenticator = app.authenticator
    hub_url = public_url(app).rstrip("/")
    assert authenticator.authorize_url == ""

    # The hub is up; a login meanwhile is told to come back, not sent nowhere.
    r = await asyncio.to_thread(_get, hub_url + "/hub/oauth_login")
    assert r.status_code == 503
    assert "cannot be reached right now" in r.text
    assert "Location" not in r.headers

    await asyncio.to_thread(idp.start)
    try:
        assert await authenticator.wait_for_endpoints(timeout=PATIENCE)
        assert authenticator.authorize_url == f"{idp.issuer}/authorize"
        assert authenticator.token_url == f"{idp.issuer}/token"
        assert authenticator.userdata_url == f"{idp.issuer}/userinfo"
        await asyncio.to_thread(login_through_hub, hub_url, "alice", "alice-pw")
        assert "alice" in app.users
    finally:
        await asyncio.to_thread(idp.stop)

    # The provider is down again: the endpoints read before stay, and a login
    # is sent to the provider (which answers again once it is back).
    r = await asyncio.to_thread(_get, hub_url + "/hub/oauth_login")
    assert r.status_code == 302
    assert r.headers["Location"].startswith(f"http://127.0.0.1:{port}/authorize?")
    authenticator.stop_discovery()


async def test_discovery_reads_the_document_again_and_follows_moved_endpoints(crypt_key):
    with OidcProvider(USERS, redirect_uris=[CALLBACK]) as idp:
        authenticator = IAMOAuthenticator(
            issuer=idp.issuer,
            client_id=idp.client_id,
            client_secret=idp.client_secret,
            userdata_url="https://userinfo.example.org/explicit",
            discovery_refresh_interval=1,
        )
        try:
            assert await authenticator.wait_for_endpoints(timeout=PATIENCE)
            assert authenticator.token_url == f"{idp.issuer}/token"
            assert authenticator.userdata_url == "https://userinfo.example.org/explicit"  # set by the admin: kept
            # An endpoint that differs from the document (as after a move at the
            # provider) is replaced by the next periodic read, without a restart.
            authenticator.token_url = "https://old.example.org/token"
            for _ in range(PATIENCE * 10):
                if authenticator.token_url != "https://old.example.org/token":
                    break
                await asyncio.sleep(0.1)
            assert authenticator.token_url == f"{idp.issuer}/token"
            assert authenticator.userdata_url == "https://userinfo.example.org/explicit"
        finally:
            authenticator.stop_discovery()
