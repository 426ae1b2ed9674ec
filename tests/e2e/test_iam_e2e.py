"""IAM login end to end: a user logs in through a real OpenID Connect provider
(testbed/oidc), gets their groups from it, and starts a real JupyterLab on an
interLink virtual node of the test bed's real control plane — with an access
token refreshed first because the target needs it to live longer than it
would. While the provider does not renew the login, the spawn is refused
before anything is created in Kubernetes. And while a server in the hub's own
cluster runs, its token is renewed at the provider before it expires and the
server's token file follows (a kubelet re-syncs Secret volumes; interLink does
not, see test_tokens_e2e.py).
"""

from __future__ import annotations

import asyncio
import time

import pytest
from jupyterhub.tests.utils import public_url

from offload_spawner.identity.iam import IAMOAuthenticator
from offload_spawner.identity.refresh import access_token_expiry
from testbed.oidc import OidcProvider, login_through_hub

from .conftest import SINGLEUSER
from .test_tokens_e2e import PROBE, read_file

TTL = 600
USERS = {"erin": {"password": "erin-pw", "wlcg_groups": ["/ai-infn", "/ai-infn/gpu"]}}
CALLBACK = "http://127.0.0.1:8000/@/space%20word/hub/oauth_callback"  # MockHub's prefix; any loopback port
TARGETS = {
    "leonardo": {
        "display_name": "CINECA Leonardo (SLURM)",
        "backend": "slurm",
        "node": "vk-leonardo",
        "offload": "session",
        "allowed_groups": ["ai-infn"],
        "slurm": {"partition": "boost_usr_prod", "account": "icsc_ai", "time_limit": "04:00:00"},
        "limits": {"cores": 4, "memory": "8G"},
        "start_timeout": 60,
        "tokens": {"min_lifetime": TTL + 300},  # longer than the provider's tokens live
    },
}
PROFILES = [
    {
        "display_name": "Analysis",
        "slug": "analysis",
        "cores": {"choices": [1], "default": 1},
        "memory": {"choices": ["1G"], "default": "1G"},
    }
]


@pytest.fixture(scope="module")
def idp():
    with OidcProvider(USERS, redirect_uris=[CALLBACK], access_token_ttl=TTL) as provider:
        yield provider


async def test_iam_login_then_spawn_on_a_virtual_node_with_a_refreshed_token(spawn_hub, idp, crypt_key, admin):
    hub = await spawn_hub(
        {"offload_targets": TARGETS, "profile_list": PROFILES},
        {},
        (),
        hub_config={
            "JupyterHub": {"authenticator_class": IAMOAuthenticator, "redirect_to_server": False},
            "IAMOAuthenticator": {
                "issuer": idp.issuer,
                "client_id": idp.client_id,
                "client_secret": idp.client_secret,
                "allowed_groups": {"ai-infn"},
                "admin_users": {"admin"},
            },
        },
    )
    url = public_url(hub.app).rstrip("/")
    await asyncio.to_thread(login_through_hub, url, "erin", USERS["erin"]["password"])
    user = hub.app.users["erin"]
    assert sorted(g.name for g in user.groups) == ["ai-infn", "ai-infn/gpu"]  # from wlcg.groups
    login_state = await user.get_auth_state()

    # the provider does not renew the login: the spawn is refused, no pod
    idp.revoke("erin")
    try:
        r = await hub.api_spawn("erin", {"profile": "analysis", "target": "leonardo"})
    finally:
        idp.restore("erin")
    assert r.status_code == 403, r.text
    assert "log in again" in r.json()["message"]
    assert await admin.pods() == []
    assert (await hub.api_user("erin"))["servers"] == {}
    assert (await user.get_auth_state())["access_token"] == login_state["access_token"]

    # renewed again: the same spawn starts, with a refreshed token
    refreshes = idp.refresh_count("erin")
    r = await hub.api_spawn("erin", {"profile": "analysis", "target": "leonardo"})
    assert r.status_code in (201, 202), r.text
    await hub.wait_ready("erin", timeout=90)
    pod = await admin.pod(hub.pod_name("erin"))
    assert pod["spec"]["nodeName"] == "vk-leonardo"
    # the token was refreshed before the pod was created
    assert idp.refresh_count("erin") == refreshes + 1
    fresh = await user.get_auth_state()
    assert fresh["access_token"] != login_state["access_token"]
    assert access_token_expiry(fresh) >= access_token_expiry(login_state)
    token = await hub.token("erin")
    r = await hub.via_proxy("erin", "api/status", token)
    assert r.status_code == 200, r.text[:300]
    await hub.stop("erin")
    await hub.wait_stopped("erin")
    await admin.wait_pod(pod["metadata"]["name"], lambda p: p is None, "deleted", timeout=30)


async def test_a_running_servers_token_is_renewed_at_the_provider_and_rotated(spawn_hub, idp, crypt_key, admin):
    """While a server runs, its access token is renewed with the real provider
    before it expires and the running server's BEARER_TOKEN_FILE follows. The server
    runs in the hub's own cluster, where a kubelet re-syncs Secret volumes; on a
    virtual node interLink never re-sends a Secret to a running job
    (test_tokens_e2e.py shows that on the real interLink stack)."""
    short = 40
    renew_before = 35  # so the login's token is due for renewal ~5 s after it was issued
    targets = {
        "cluster": {
            "display_name": "This cluster",
            "backend": "kubernetes",
            "tokens": {"min_lifetime": 5, "renew_before": renew_before},
        }
    }
    hub = await spawn_hub(
        {"offload_targets": targets, "profile_list": PROFILES, "cmd": ["/bin/sh", "-c", PROBE, "probe", SINGLEUSER]},
        {},
        (),
        hub_config={
            "JupyterHub": {"authenticator_class": IAMOAuthenticator, "redirect_to_server": False},
            "IAMOAuthenticator": {
                "issuer": idp.issuer,
                "client_id": idp.client_id,
                "client_secret": idp.client_secret,
                "allowed_groups": {"ai-infn"},
                "admin_users": {"admin"},
                # Only the server's own renewal refreshes here (not the hub's pre-spawn refresh_user).
                "refresh_buffer": 1,
            },
        },
    )
    idp.set_access_token_ttl(short)
    try:
        url = public_url(hub.app).rstrip("/")
        await asyncio.to_thread(login_through_hub, url, "erin", USERS["erin"]["password"])
        user = hub.app.users["erin"]
        login_token = (await user.get_auth_state())["access_token"]
        r = await hub.api_spawn("erin", {"profile": "analysis", "target": "cluster"})
        assert r.status_code in (201, 202), r.text
        await hub.wait_ready("erin", timeout=90)
        assert (await admin.pod(user.spawner.pod_name))["spec"]["nodeName"] == "node-local"
        api = await hub.token("erin")
        assert await read_file(hub, "erin", api, "probe-bearer") == login_token

        # Once the delivered token has less than renew_before left, a poll renews it
        # at the provider and replaces the Secret; the running server sees the new one.
        left = access_token_expiry({"access_token": login_token}) - time.time()
        await asyncio.sleep(max(0.0, left - renew_before + 1))
        refreshes = idp.refresh_count("erin")
        spawner = user.spawner
        assert await spawner.poll() is None
        assert await asyncio.wait_for(spawner._rotation_task, 30) is True
        assert idp.refresh_count("erin") == refreshes + 1
        renewed = (await user.get_auth_state())["access_token"]
        assert renewed != login_token
        for _ in range(100):
            if await read_file(hub, "erin", api, "probe-bearer") == renewed:
                break
            await asyncio.sleep(0.2)
        else:
            raise AssertionError("the renewed token did not reach the running server's BEARER_TOKEN_FILE")
        pod_name = spawner.pod_name
        await hub.stop("erin")
        await hub.wait_stopped("erin")
        await admin.wait_pod(pod_name, lambda p: p is None, "deleted", timeout=30)
    finally:
        idp.set_access_token_ttl(TTL)
