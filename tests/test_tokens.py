"""Token delivery as plain data: the policy, the Secret, the pod's references (pure)."""

from __future__ import annotations

import base64
import json
import time

import kubernetes_validate
import pytest

from offload_spawner.identity.server_secret import TOKEN_DIR, file_key
from offload_spawner.identity.tokens import (
    build_delivery,
    fresh_secret_for_create,
    jwt_expiry,
    redacted,
    token_digest,
    with_tokens,
)
from offload_spawner.pipeline.catalog import CatalogError, TokenPolicy, build_catalog


def _part(obj: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")


def jwt(claims: dict) -> str:
    """A real-looking (unsigned) JWT, built here: no real token is in the repository."""
    return f"{_part({'alg': 'RS256', 'kid': 'rsa1'})}.{_part(claims)}.c2lnbmF0dXJlLW5vdC1jaGVja2Vk"


EXP = int(time.time()) + 3600
ACCESS = jwt({"sub": "u-123", "iss": "https://iam.example.org/", "exp": EXP, "wlcg.groups": ["/cms"]})
REFRESH = f"{_part({'alg': 'none'})}.{_part({'jti': 'refresh-123'})}."  # an unsigned JWT
HUB = "b5a1e0c2d3f4a5b6c7d8e9f0a1b2c3d4"
AUTH_STATE = {"access_token": ACCESS, "refresh_token": REFRESH, "id_token": "id", "scope": ["openid"]}
FILES = {"/etc/dask/offload.yaml": "kubernetes:\n  namespace: jhub\n"}


def decoded(secret: dict) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}


def env_by_name(delivery) -> dict:
    return {e["name"]: e for e in delivery.env}


def test_default_policy_delivers_access_token_as_env_and_file_and_hub_token_as_env():
    d = build_delivery(TokenPolicy(), AUTH_STATE, HUB, FILES, "jupyter-alice", labels={"app": "jupyterhub"})
    assert d.secret["metadata"]["name"] == "jupyter-alice-offload"
    assert d.secret["metadata"]["labels"]["app"] == "jupyterhub"
    assert "ownerReferences" not in d.secret["metadata"]  # the pod's uid is not known yet
    assert decoded(d.secret) == {
        "access_token": ACCESS,
        "jupyterhub_api_token": HUB,
        file_key("/etc/dask/offload.yaml"): FILES["/etc/dask/offload.yaml"],
    }
    env = env_by_name(d)
    assert env["ACCESS_TOKEN"] == {
        "name": "ACCESS_TOKEN",
        "valueFrom": {"secretKeyRef": {"name": "jupyter-alice-offload", "key": "access_token"}},
    }
    assert env["JUPYTERHUB_API_TOKEN"]["valueFrom"]["secretKeyRef"]["key"] == "jupyterhub_api_token"
    assert env["BEARER_TOKEN_FILE"] == {"name": "BEARER_TOKEN_FILE", "value": f"{TOKEN_DIR}/access_token"}
    assert "REFRESH_TOKEN" not in env
    token_volume = d.volumes[0]
    assert token_volume["secret"]["items"] == [{"key": "access_token", "path": "access_token"}]
    assert d.volume_mounts[0] == {"name": "offload-tokens", "mountPath": TOKEN_DIR, "readOnly": True}
    # the files volume
    assert d.volumes[1]["secret"]["items"] == [{"key": file_key("/etc/dask/offload.yaml"), "path": "offload.yaml"}]
    assert d.volume_mounts[1]["mountPath"] == "/etc/dask"


def test_no_value_appears_outside_the_secret_data():
    d = build_delivery(TokenPolicy(refresh_token=True), AUTH_STATE, HUB, {}, "jupyter-alice")
    pod_side = json.dumps([d.env, d.volumes, d.volume_mounts, d.secret["metadata"]])
    for token in (ACCESS, REFRESH, HUB):
        assert token not in pod_side
        assert base64.b64encode(token.encode()).decode() not in pod_side
    assert token_digest(ACCESS) not in pod_side


def test_no_auth_state_delivers_only_the_hub_token():
    d = build_delivery(TokenPolicy(), None, HUB, {}, "jupyter-bob")
    assert decoded(d.secret) == {"jupyterhub_api_token": HUB}
    assert [e["name"] for e in d.env] == ["JUPYTERHUB_API_TOKEN"]
    assert d.volumes == [] and d.volume_mounts == []


def test_refresh_token_only_when_the_admin_opts_in():
    assert "refresh_token" not in decoded(build_delivery(TokenPolicy(), AUTH_STATE, HUB, {}, "p").secret)
    d = build_delivery(TokenPolicy(refresh_token=True), AUTH_STATE, HUB, {}, "p")
    assert decoded(d.secret)["refresh_token"] == REFRESH
    assert env_by_name(d)["REFRESH_TOKEN"]["valueFrom"]["secretKeyRef"]["key"] == "refresh_token"
    assert {"key": "refresh_token", "path": "refresh_token"} in d.volumes[0]["secret"]["items"]


def test_channels_follow_the_policy():
    policy = TokenPolicy.model_validate(
        {"access_token": {"env": False, "file": True}, "hub_token": {"env": True, "file": True}}
    )
    d = build_delivery(policy, AUTH_STATE, HUB, {}, "p")
    env = env_by_name(d)
    assert "ACCESS_TOKEN" not in env and "BEARER_TOKEN_FILE" in env
    assert [i["key"] for i in d.volumes[0]["secret"]["items"]] == ["access_token", "jupyterhub_api_token"]

    policy = TokenPolicy.model_validate({"access_token": {"env": True, "file": False}})
    d = build_delivery(policy, AUTH_STATE, HUB, {}, "p")
    assert "BEARER_TOKEN_FILE" not in env_by_name(d) and "ACCESS_TOKEN" in env_by_name(d)
    assert d.volumes == []

    policy = TokenPolicy.model_validate({"access_token": {"env": False, "file": False}})
    d = build_delivery(policy, AUTH_STATE, HUB, {}, "p")
    assert "access_token" not in decoded(d.secret)


def test_hub_token_must_reach_the_server():
    with pytest.raises(CatalogError) as e:
        build_catalog(
            None,
            {
                "naples": {
                    "display_name": "N",
                    "backend": "htcondor",
                    "node": "vk-naples",
                    "tokens": {"hub_token": {"env": False, "file": False}},
                }
            },
        )
    assert "offload_targets.naples.tokens.hub_token" in str(e.value)
    assert "jupyterhub-singleuser" in str(e.value)


@pytest.mark.parametrize(
    "bad,path",
    [
        ({"acces_token": {"env": True}}, "offload_targets.t.tokens.acces_token"),
        ({"renew_before": 0}, "offload_targets.t.tokens.renew_before"),
        ({"min_lifetime": -1}, "offload_targets.t.tokens.min_lifetime"),
        ({"refresh_token": "yes please"}, "offload_targets.t.tokens.refresh_token"),
    ],
)
def test_bad_token_policy_names_the_path(bad, path):
    with pytest.raises(CatalogError) as e:
        build_catalog(None, {"t": {"display_name": "T", "tokens": bad}})
    assert path in str(e.value)


def test_target_policy_reaches_the_plan():
    from offload_spawner.pipeline.menu import build_menu
    from offload_spawner.pipeline.plan import build_plan
    from offload_spawner.pipeline.selection import select

    catalog = build_catalog(
        [{"display_name": "Analysis", "slug": "analysis"}],
        {
            "leonardo": {
                "display_name": "L",
                "backend": "slurm",
                "node": "vk-leonardo",
                "tokens": {"refresh_token": True, "renew_before": 900},
            }
        },
    )
    plan = build_plan(catalog, select(build_menu(catalog, ["cms"]), {"profile": "analysis", "target": "leonardo"}))
    assert plan.tokens.refresh_token is True and plan.tokens.renew_before == 900
    plain = build_catalog([{"display_name": "Plain"}])
    plan = build_plan(plain, select(build_menu(plain, []), {}))
    assert plan.tokens == TokenPolicy()


@pytest.mark.parametrize("hub_token", ["", None])
def test_without_a_hub_token_there_is_no_hub_token_key(hub_token):
    """KubeSpawner builds a pod before the hub gave the spawner a token: so does this."""
    d = build_delivery(TokenPolicy(), AUTH_STATE, hub_token, {}, "p")
    assert "jupyterhub_api_token" not in decoded(d.secret)
    assert "JUPYTERHUB_API_TOKEN" not in {e["name"] for e in d.env}
    referenced = {e["valueFrom"]["secretKeyRef"]["key"] for e in d.env if "valueFrom" in e}
    assert "jupyterhub_api_token" not in referenced
    assert "access_token" in referenced  # the other tokens are still delivered


def test_redacted_secret_shows_sizes_only():
    d = build_delivery(TokenPolicy(), AUTH_STATE, HUB, FILES, "p")
    shown = redacted(d.secret)
    assert shown["data"]["access_token"] == f"<redacted: {len(ACCESS)} bytes>"
    assert shown["data"]["jupyterhub_api_token"] == f"<redacted: {len(HUB)} bytes>"
    text = json.dumps(shown)
    for token in (ACCESS, HUB, base64.b64encode(ACCESS.encode()).decode()):
        assert token not in text
    assert decoded(d.secret)["access_token"] == ACCESS  # the original is untouched


def test_secret_and_volumes_are_valid_kubernetes():
    d = build_delivery(TokenPolicy(refresh_token=True), AUTH_STATE, HUB, FILES, "jupyter-alice", pod_uid="0b3c-uid")
    kubernetes_validate.validate(d.secret, desired_version="1.34", strict=True)
    assert d.secret["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "name": "jupyter-alice",
            "uid": "0b3c-uid",
            "blockOwnerDeletion": True,
            "controller": False,
        }
    ]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "jupyter-alice"},
        "spec": {
            "containers": [{"name": "notebook", "image": "x", "env": d.env, "volumeMounts": d.volume_mounts}],
            "volumes": d.volumes,
        },
    }
    kubernetes_validate.validate(pod, desired_version="1.34", strict=True)


def test_rotation_replaces_only_the_iam_tokens():
    d = build_delivery(TokenPolicy(refresh_token=True), AUTH_STATE, HUB, FILES, "p", pod_uid="u1")
    existing = {
        **d.secret,
        "metadata": {
            **d.secret["metadata"],
            "resourceVersion": "12",
            "uid": "s1",
            "creationTimestamp": "2026-01-01T00:00:00Z",
        },
    }
    new_access = jwt({"sub": "u-123", "exp": EXP + 3600})
    rotated = fresh_secret_for_create(
        with_tokens(existing, {"access_token": new_access, "refresh_token": "r2"}, TokenPolicy(refresh_token=True))
    )
    assert decoded(rotated) == {**decoded(d.secret), "access_token": new_access, "refresh_token": "r2"}
    assert set(rotated["metadata"]) == {"name", "labels", "ownerReferences"}
    assert decoded(existing)["access_token"] == ACCESS  # not mutated


def test_rotation_does_not_add_a_token_the_pod_does_not_reference():
    d = build_delivery(TokenPolicy(), None, HUB, {}, "p")
    rotated = with_tokens(d.secret, AUTH_STATE, TokenPolicy())
    assert decoded(rotated) == {"jupyterhub_api_token": HUB}


# The ids are fixed words: an id made from EXP (the clock at import) differs between two
# pytest-xdist workers that import this module in different seconds, and xdist then refuses
# the whole run because its workers collected different tests.
@pytest.mark.parametrize(
    "token,expected",
    [
        (ACCESS, float(EXP)),
        ("opaque-token", None),
        ("a.b.c", None),
        (jwt({"sub": "x"}), None),
        (jwt({"exp": "soon"}), None),
        (None, None),
    ],
    ids=["jwt-with-exp", "opaque", "three-dots-not-base64", "jwt-without-exp", "jwt-exp-not-a-number", "none"],
)
def test_jwt_expiry(token, expected):
    assert jwt_expiry(token) == expected
