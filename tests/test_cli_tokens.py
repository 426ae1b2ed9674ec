"""``offload-spawner render --auth-state FILE``: tokens only as a redacted Secret."""

from __future__ import annotations

import base64
import json

import kubernetes_validate
import pytest
import yaml

from test_cli import run
from test_tokens import ACCESS, REFRESH, jwt

ID_TOKEN = jwt({"sub": "carol", "aud": "hub"})
RENDER = ("--user", "carol", "--groups", "cms,ai-infn,gpu-users", "-o", "profile=analysis", "-o", "target=leonardo")


@pytest.fixture
def auth_state_file(tmp_path):
    path = tmp_path / "auth_state.json"
    path.write_text(
        json.dumps(
            {
                "access_token": ACCESS,
                "refresh_token": REFRESH,
                "id_token": ID_TOKEN,
                "scope": ["openid", "wlcg.groups"],
                "oauth_user": {"sub": "carol"},
            }
        )
    )
    return path


def no_token_in(text: str) -> None:
    for token in (ACCESS, REFRESH, ID_TOKEN):
        assert token not in text
        assert base64.b64encode(token.encode()).decode() not in text


@pytest.mark.parametrize("output", ["json", "yaml"])
def test_render_shows_tokens_only_as_a_redacted_secret(contract_file, auth_state_file, output):
    # the admin opts in to the refresh token for leonardo
    contract_file.write_text(
        contract_file.read_text()
        + '\nc.OffloadSpawner.offload_targets["leonardo"]["tokens"] = {"refresh_token": True}\n'
    )
    r = run("render", "-f", str(contract_file), *RENDER, "--auth-state", str(auth_state_file), "--output", output)
    assert r.returncode == 0, r.stderr
    no_token_in(r.stdout + r.stderr)
    out = json.loads(r.stdout) if output == "json" else yaml.safe_load(r.stdout)

    [secret] = out["secrets"]
    name = f"{out['pod']['metadata']['name']}-offload"
    assert secret["metadata"]["name"] == name
    assert secret["data"] == {
        "access_token": f"<redacted: {len(ACCESS)} bytes>",
        "jupyterhub_api_token": secret["data"]["jupyterhub_api_token"],
        "refresh_token": f"<redacted: {len(REFRESH)} bytes>",
    }
    assert secret["data"]["jupyterhub_api_token"].startswith("<redacted: ")

    pod = out["pod"]
    kubernetes_validate.validate(pod, desired_version="1.34", strict=True)
    env = {e["name"]: e for e in pod["spec"]["containers"][0]["env"]}
    for var, key in (
        ("ACCESS_TOKEN", "access_token"),
        ("JUPYTERHUB_API_TOKEN", "jupyterhub_api_token"),
        ("REFRESH_TOKEN", "refresh_token"),
    ):
        assert env[var] == {"name": var, "valueFrom": {"secretKeyRef": {"name": name, "key": key}}}
    assert "JPY_API_TOKEN" not in env
    assert env["BEARER_TOKEN_FILE"]["value"] == "/var/run/secrets/offload-spawner/access_token"
    [volume] = [v for v in pod["spec"]["volumes"] if v["name"] == "offload-tokens"]
    assert volume["secret"]["secretName"] == name
    assert out["files"] == {}


def test_render_without_auth_state_delivers_the_hub_token_only(contract_file):
    r = run("render", "-f", str(contract_file), *RENDER)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert list(out["secrets"][0]["data"]) == ["jupyterhub_api_token"]
    names = [e["name"] for e in out["pod"]["spec"]["containers"][0]["env"]]
    assert "JUPYTERHUB_API_TOKEN" in names and "ACCESS_TOKEN" not in names


def test_render_refuses_an_auth_state_that_is_not_an_object(contract_file, tmp_path):
    bad = tmp_path / "auth_state.json"
    bad.write_text('["access_token"]')
    r = run("render", "-f", str(contract_file), *RENDER, "--auth-state", str(bad))
    assert r.returncode == 1
    assert "not a JSON object" in r.stderr
    assert r.stdout == ""
