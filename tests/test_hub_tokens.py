"""Token delivery inside a real JupyterHub (MockHub + configurable-http-proxy).

Users with an encrypted auth_state (real-looking JWTs) spawn through the REST
API; the pod KubeSpawner would create (recorded at the Kubernetes API edge, see
hub_fixtures) must refer to the server's Secret only, and no token may reach a
log line at any level.
"""

from __future__ import annotations

import json
import os

import kubernetes_validate
import pytest
from jupyterhub.crypto import CryptKeeper

from hub_fixtures import RecordingSpawner
from log_capture import all_logs_at_debug, leaked
from test_tokens import ACCESS, REFRESH, jwt

pytestmark = pytest.mark.hub

TARGETS = {
    "cluster": {"display_name": "This cluster"},
    "leonardo": {
        "display_name": "CINECA Leonardo (SLURM)",
        "backend": "slurm",
        "node": "vk-leonardo",
        "tokens": {"refresh_token": True, "hub_token": {"env": True, "file": True}},
    },
}
PROFILES = [{"display_name": "Analysis", "slug": "analysis"}]


@pytest.fixture
def auth_state_enabled():
    """auth_state needs an encryption key (JUPYTERHUB_CRYPT_KEY in a real hub)."""
    keeper = CryptKeeper.instance()
    before = keeper.keys
    keeper.keys = [os.urandom(32)]
    yield
    keeper.keys = before


@pytest.fixture
async def hub(offload_hub, auth_state_enabled):
    client = await offload_hub({"offload_targets": TARGETS, "profile_list": PROFILES}, users=("alice", "bob"))
    client.app.authenticator.enable_auth_state = True
    await client.app.users["alice"].save_auth_state(
        {"access_token": ACCESS, "refresh_token": REFRESH, "id_token": jwt({"sub": "alice"}), "scope": ["openid"]}
    )
    return client


def recorded(user: str) -> dict:
    [pod] = [pod for name, pod in RecordingSpawner.recorded if name == user]
    return pod


def env_of(pod: dict) -> dict[str, dict]:
    return {e["name"]: e for e in pod["spec"]["containers"][0]["env"]}


async def test_the_pod_refers_to_the_secret_and_holds_no_token(hub):
    with all_logs_at_debug() as logs:
        r = await hub.api_spawn("alice", {"profile": "analysis", "target": "cluster"})
        assert r.status_code in (201, 202), r.text
        await hub.wait_ready("alice")
    spawner = hub.app.users["alice"].spawner
    hub_token = spawner.api_token
    assert hub_token

    pod = recorded("alice")
    kubernetes_validate.validate(pod, desired_version="1.34", strict=True)
    text = json.dumps(pod)
    for secret in (ACCESS, REFRESH, hub_token):
        assert secret not in text
    env = env_of(pod)
    assert "JPY_API_TOKEN" not in env
    ref = lambda key: {"secretKeyRef": {"name": f"{spawner.pod_name}-offload", "key": key}}  # noqa: E731
    assert env["JUPYTERHUB_API_TOKEN"] == {"name": "JUPYTERHUB_API_TOKEN", "valueFrom": ref("jupyterhub_api_token")}
    assert env["ACCESS_TOKEN"] == {"name": "ACCESS_TOKEN", "valueFrom": ref("access_token")}
    assert env["BEARER_TOKEN_FILE"]["value"] == "/var/run/secrets/offload-spawner/access_token"
    assert "REFRESH_TOKEN" not in env  # the default policy (target "cluster")
    assert all("value" in e or "valueFrom" in e for e in env.values())
    assert not [e for e in env.values() if "value" in e and e["value"] in (ACCESS, REFRESH, hub_token)]

    # The Secret that goes with the pod holds them.
    secret = spawner._token_delivery.secret
    import base64

    data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert data == {"access_token": ACCESS, "jupyterhub_api_token": hub_token}
    assert leaked(logs, [ACCESS, REFRESH, hub_token]) == []
    # the capture sees the hub's and the spawner's DEBUG lines (so the check above can fail)
    assert any(" DEBUG " in line and "alice" in line for line in logs), logs[:20]


async def test_the_target_policy_applies(hub):
    r = await hub.api_spawn("alice", {"profile": "analysis", "target": "leonardo"})
    assert r.status_code in (201, 202), r.text
    await hub.wait_ready("alice")
    pod = recorded("alice")
    env = env_of(pod)
    assert env["REFRESH_TOKEN"]["valueFrom"]["secretKeyRef"]["key"] == "refresh_token"
    [tokens] = [v for v in pod["spec"]["volumes"] if v["name"] == "offload-tokens"]
    assert [i["key"] for i in tokens["secret"]["items"]] == ["access_token", "jupyterhub_api_token", "refresh_token"]
    assert REFRESH not in json.dumps(pod)


async def test_without_auth_state_only_the_hub_token_is_delivered(hub):
    r = await hub.api_spawn("bob", {"profile": "analysis", "target": "cluster"})
    assert r.status_code in (201, 202), r.text
    await hub.wait_ready("bob")
    pod = recorded("bob")
    assert set(env_of(pod)) & {"ACCESS_TOKEN", "BEARER_TOKEN_FILE", "REFRESH_TOKEN"} == set()
    assert env_of(pod)["JUPYTERHUB_API_TOKEN"]["valueFrom"]["secretKeyRef"]["key"] == "jupyterhub_api_token"
    assert not [v for v in pod["spec"].get("volumes", []) if v["name"] == "offload-tokens"]
