"""Facts that used to live in two places: the accelerator model label, the token
delivery of the server and its Dask pods, a target's placement, a JWT's ``exp``.

Each test compares the two places that must agree, so a twin that drifts fails here.
"""

from __future__ import annotations

import base64
import json

import pytest

from offload_spawner.availability.availability import cluster_view, menu_availability
from offload_spawner.dask.dask_config import cluster_spec, dask_pod_size
from offload_spawner.identity.refresh import access_token_expiry
from offload_spawner.identity.server_secret import DASK_HUB_TOKEN_KEY, HUB_TOKEN_KEY
from offload_spawner.identity.tokens import build_delivery, jwt_expiry
from offload_spawner.pipeline.catalog import build_catalog
from offload_spawner.pipeline.limits import target_ceiling, user_ceiling
from offload_spawner.pipeline.menu import build_menu
from offload_spawner.pipeline.plan import build_plan, target_placement
from offload_spawner.pipeline.selection import Selection, select

TPU_PROFILE = {
    "display_name": "TPU",
    "accelerators": {
        "example.com/tpu": {
            "display_name": "Example TPU",
            "models": ["v5", "v6"],
            "max": 2,
            "model_label": "example-tpu-type",
        }
    },
}
TPU_SITE = {
    "display_name": "TPU site",
    "backend": "generic",
    "node": "vk-tpu",
    "limits": {"accelerators": {"example.com/tpu": 4}},
}


def _tpu_node(model: str) -> dict:
    allocatable = {"cpu": "16", "memory": "64Gi", "pods": "100", "example.com/tpu": "4"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": "vk-tpu", "labels": {"example-tpu-type": model}},
        "spec": {"taints": [{"key": "virtual-node.interlink/no-schedule", "value": "true", "effect": "NoSchedule"}]},
        "status": {
            "allocatable": allocatable,
            "capacity": allocatable,
            "conditions": [{"type": "Ready", "status": "True", "reason": "InterlinkPingSuccessful", "message": ""}],
        },
    }


def test_an_accelerator_without_a_default_label_is_selected_counted_and_offered_by_one_label():
    catalog = build_catalog(profile_list=[TPU_PROFILE], offload_targets={"tpu": TPU_SITE})
    menu = build_menu(catalog, [])
    offered = menu.profiles[0].targets[0].accelerator("example.com/tpu")
    plan = build_plan(catalog, select(menu, {"target": "tpu", "accelerator": "example.com/tpu:v5"}))

    # The pod asks for the node that availability counts the TPUs of.
    assert plan.node_selector[offered.model_label] == "v5"
    assert offered.model_label == "example-tpu-type"
    available = menu_availability(menu, catalog, cluster_view([_tpu_node("v5")]))["tpu"]
    assert available.model("example.com/tpu", "v5").total == 4
    assert available.model("example.com/tpu", "v6").total == 0


def test_an_admin_model_label_wins_everywhere():
    profile = {
        **TPU_PROFILE,
        "accelerators": {
            "example.com/tpu": {"display_name": "Example TPU", "models": ["v5"], "model_label": "example.com/tpu-model"}
        },
    }
    catalog = build_catalog(profile_list=[profile], offload_targets={"tpu": TPU_SITE})
    menu = build_menu(catalog, [])
    plan = build_plan(catalog, select(menu, {"target": "tpu", "accelerator": "example.com/tpu:v5"}))
    assert menu.profiles[0].targets[0].accelerator("example.com/tpu").model_label == "example.com/tpu-model"
    assert plan.node_selector["example.com/tpu-model"] == "v5"
    assert "example-tpu-type" not in plan.node_selector


# --- token delivery: the server and its Dask pods ------------------------------------------


def _jwt(claims: dict) -> str:
    def part(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}.c2ln"


AUTH_STATE = {"access_token": _jwt({"sub": "hana", "exp": 2_000_000_000}), "refresh_token": "refresh-me"}
DASK_SITE = {"display_name": "Naples", "backend": "htcondor", "node": "vk-naples", "offload": "dask"}


def _dask_spec(tokens: dict) -> dict:
    catalog = build_catalog(offload_targets={"naples": {**DASK_SITE, "tokens": tokens}})
    target = catalog.offload_targets["naples"]
    return cluster_spec(
        name="c",
        target_slug="naples",
        target=target,
        settings=target.dask_settings,
        ceiling=target_ceiling(user_ceiling(catalog, []), target),
        image="img",
        secret="jupyter-hana-offload",
        user_name="hana",
    )


def _token_names(env: list[dict]) -> set[str]:
    return {e["name"] for e in env if e["name"] not in ("JUPYTERHUB_USER", "JUPYTERHUB_API_URL")}


@pytest.mark.parametrize(
    "tokens",
    [
        {"access_token": {"env": False}},
        {"access_token": {"env": False, "file": False}},
        {"access_token": {"file": False}},
        {"hub_token": {"env": False, "file": True}},
        {"refresh_token": True},
        {},
    ],
)
def test_dask_pods_receive_the_tokens_the_policy_gives_the_server(tokens):
    """Through the same channels as a server on the site would get them (the target's
    ``site_tokens``), for the tokens ``dask_pods`` names (here all it may name: the
    refresh token never goes to Dask pods)."""
    tokens = {**tokens, "dask_pods": ["access_token", "hub_token"]}
    spec = _dask_spec(tokens)
    target = build_catalog(offload_targets={"naples": {**DASK_SITE, "tokens": tokens}}).offload_targets["naples"]
    policy = target.site_tokens
    server = build_delivery(policy, AUTH_STATE, "hub-token", {}, "jupyter-hana")
    for role in ("worker", "scheduler"):
        pod = spec["spec"][role]["spec"]
        container = pod["containers"][0]
        assert _token_names(container["env"]) == _token_names(server.env) - {"REFRESH_TOKEN"}, role
        # the same files; the hub token's is the Dask pods' own scoped token (dask_hub_token.py)
        server_files = [
            [
                item | {"key": DASK_HUB_TOKEN_KEY} if item["key"] == HUB_TOKEN_KEY else item
                for item in v["secret"]["items"]
                if item["key"] != "refresh_token"
            ]
            for v in server.volumes
            if v["name"] == "offload-tokens"
        ]
        server_files = [items for items in server_files if items]  # a volume of the refresh token alone: none
        dask_files = [v["secret"]["items"] for v in pod.get("volumes", [])]
        assert dask_files == server_files, role
        assert container.get("volumeMounts", []) == [
            m for m in server.volume_mounts if m["name"] == "offload-tokens" and server_files
        ]


def test_access_token_env_false_keeps_it_out_of_the_dask_env():
    env = _dask_spec({"access_token": {"env": False}})["spec"]["worker"]["spec"]["containers"][0]["env"]
    assert "ACCESS_TOKEN" not in {e["name"] for e in env}


# --- placement: the server and its Dask pods ----------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        {
            "display_name": "Leonardo",
            "backend": "slurm",
            "node": "vk-leonardo",
            "offload": "session",
            "slurm": {"partition": "boost"},
            "dask": {},
            "tolerations": [{"key": "site", "operator": "Exists", "effect": "NoSchedule"}],
            "node_selector": {"site": "leo"},
            "annotations": {"a.example/x": "y"},
            "labels": {"team": "ai"},
        },
        {
            "display_name": "Here",
            "dask": {},
            "tolerations": [{"key": "pool", "value": "gpu", "effect": "NoSchedule"}],
            "node_selector": {"pool": "gpu"},
        },
        {**DASK_SITE, "htcondor": {"singularity_options": ["--cleanenv"]}, "node_selector": {"site": "na"}},
    ],
)
def test_dask_pods_and_the_plan_share_one_placement(target):
    catalog = build_catalog(profile_list=[{"display_name": "Default"}], offload_targets={"t": target})
    spec = _dask_spec_for(catalog)
    settings = catalog.offload_targets["t"].dask_settings
    ceiling = target_ceiling(user_ceiling(catalog, []), catalog.offload_targets["t"])
    for role, size in (
        ("worker", dask_pod_size(settings, ceiling)),
        ("scheduler", dask_pod_size(settings, ceiling, scheduler=True)),
    ):
        placed = target_placement(
            "t", catalog.offload_targets["t"], Selection(profile=None, target="t", cores=size.cores, memory=size.memory)
        )
        pod = spec["spec"][role]
        assert pod["metadata"] == {"annotations": placed.annotations, "labels": placed.labels}
        assert pod["spec"].get("tolerations", []) == list(placed.tolerations)
        assert pod["spec"].get("nodeSelector", {}) == placed.node_selector
    selection = select(build_menu(catalog, []), {"target": "t"})
    plan = build_plan(catalog, selection)
    if plan.offload != "dask":  # the server runs on the target too: same placement
        placed = target_placement("t", catalog.offload_targets["t"], selection)
        assert plan.tolerations == placed.tolerations
        assert plan.node_selector == placed.node_selector
        assert plan.annotations == placed.annotations and plan.labels == placed.labels


def _dask_spec_for(catalog) -> dict:
    target = catalog.offload_targets["t"]
    return cluster_spec(
        name="c",
        target_slug="t",
        target=target,
        settings=target.dask_settings,
        ceiling=target_ceiling(user_ceiling(catalog, []), target),
        image="img",
        secret="s",
        user_name="hana",
    )


# --- a JWT's exp ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "claims",
    [
        {"exp": 2_000_000_000},
        {"exp": 2_000_000_000.5},
        {"exp": "2000000000"},  # RFC 7519: a NumericDate is a JSON number, not a string
        {"exp": True},
        {"exp": "soon"},
        {"sub": "no-exp"},
    ],
)
def test_the_spawner_and_the_refresher_read_the_same_expiry(claims):
    token = _jwt(claims)
    assert access_token_expiry({"access_token": token}) == jwt_expiry(token)


def test_jwt_expiry_reads_only_numbers_and_jwts():
    assert jwt_expiry(_jwt({"exp": 5})) == 5.0
    assert jwt_expiry(_jwt({"exp": "5"})) is None
    assert jwt_expiry("opaque") is None
    assert jwt_expiry("a.b.c") is None
    assert jwt_expiry(None) is None
