"""A plain KubeSpawner profile_list gives the same pod under OffloadSpawner.

Both spawners are real (constructed with the same config, user and hub); the
pods compared are their own ``get_pod_manifest()`` after their own
``load_user_options()``.
"""

from __future__ import annotations

import copy

import pytest
from jupyterhub.objects import Hub
from kubernetes_asyncio.client import ApiClient
from kubespawner import KubeSpawner
from traitlets.config import Config

from offload_spawner.cli import CliGroup, CliUser
from offload_spawner.spawner import OffloadSpawner


PROFILES = [
    {
        "display_name": "Small",
        "slug": "small",
        "kubespawner_override": {"cpu_limit": 1, "mem_limit": "2G", "environment": {"SIZE": "small"}},
    },
    {
        "display_name": "Images",
        "default": True,
        "kubespawner_override": {"environment": {"FROM_PROFILE": "yes"}},
        "profile_options": {
            "image": {
                "display_name": "Image",
                "choices": {
                    "base": {"display_name": "Base", "kubespawner_override": {"image": "quay.io/jupyter/base-notebook:2025-01-01"}},
                    "scipy": {
                        "display_name": "SciPy",
                        "default": True,
                        "kubespawner_override": {"image": "quay.io/jupyter/scipy-notebook:2025-01-01", "extra_labels": {"flavour": "scipy"}},
                    },
                },
                "unlisted_choice": {
                    "enabled": True,
                    "validation_regex": "^quay\\.io/jupyter/[a-z-]+:[0-9-]+$",
                    "kubespawner_override": {"image": "{value}"},
                },
            },
            "size": {
                "display_name": "Size",
                "choices": {
                    "s": {"display_name": "S", "kubespawner_override": {"cpu_guarantee": 0.5}},
                    "l": {"display_name": "L", "kubespawner_override": {"cpu_guarantee": 2, "node_selector": {"size": "large"}}},
                },
            },
        },
    },
]

OPTIONS = [
    {},
    {"profile": "small"},
    {"profile": "images"},
    {"profile": "images", "image": "base", "size": "l"},
    {"profile": "images", "image--unlisted-choice": "quay.io/jupyter/r-notebook:2025-01-01"},
]


async def _pod(cls, profile_list, user_options) -> dict:
    config = Config()
    config.KubeSpawner.profile_list = copy.deepcopy(profile_list)
    config.KubeSpawner.image = "quay.io/jupyter/minimal-notebook:2025-01-01"
    config.KubeSpawner.tolerations = [{"key": "hub.jupyter.org/dedicated", "operator": "Equal", "value": "user", "effect": "NoSchedule"}]
    spawner = cls(user=CliUser("alice", [CliGroup("anyone")]), hub=Hub(ip="hub", port=8081, base_url="/hub/"), config=config)
    spawner.api_token = "parity-token"
    spawner.user_options = dict(user_options)
    await spawner.load_user_options()
    pod = await spawner.get_pod_manifest()
    async with ApiClient() as client:
        return client.sanitize_for_serialization(pod)


def _token_delivery_apart(pod: dict) -> tuple[dict, dict]:
    """The pod without how the hub token reaches it, and that part on its own.

    KubeSpawner puts the token in the env as a value; OffloadSpawner refers to
    the server's Secret instead (the one intended difference, CONTRACT §3).
    """
    pod = copy.deepcopy(pod)
    container = pod["spec"]["containers"][0]
    token_env = {"JUPYTERHUB_API_TOKEN", "JPY_API_TOKEN", "ACCESS_TOKEN", "BEARER_TOKEN_FILE", "REFRESH_TOKEN"}
    moved = {"env": [e for e in container.get("env", []) if e["name"] in token_env]}
    container["env"] = [e for e in container.get("env", []) if e["name"] not in token_env]
    ours = lambda v: v["name"].startswith("offload-")  # noqa: E731
    moved["volumes"] = [v for v in pod["spec"].get("volumes", []) if ours(v)]
    pod["spec"]["volumes"] = [v for v in pod["spec"].get("volumes", []) if not ours(v)]
    moved["volumeMounts"] = [m for m in container.get("volumeMounts", []) if ours(m)]
    container["volumeMounts"] = [m for m in container.get("volumeMounts", []) if not ours(m)]
    return pod, moved


@pytest.mark.parametrize("user_options", OPTIONS, ids=[str(o) for o in OPTIONS])
async def test_plain_profile_list_gives_the_kubespawner_pod(user_options):
    expected, kubespawner_tokens = _token_delivery_apart(await _pod(KubeSpawner, PROFILES, user_options))
    actual, offload_tokens = _token_delivery_apart(await _pod(OffloadSpawner, PROFILES, user_options))
    assert actual == expected
    # ... except the hub token: a value there, a Secret reference here (the default token policy).
    assert {e["name"]: e["value"] for e in kubespawner_tokens["env"]} == {
        "JUPYTERHUB_API_TOKEN": "parity-token", "JPY_API_TOKEN": "parity-token"}
    assert offload_tokens == {
        "env": [{"name": "JUPYTERHUB_API_TOKEN",
                 "valueFrom": {"secretKeyRef": {"name": "jupyter-alice-offload", "key": "jupyterhub_api_token"}}}],
        "volumes": [],
        "volumeMounts": [],
    }
    assert "parity-token" not in repr(actual)


async def test_parity_check_can_see_a_difference():
    """The comparison above is not vacuous: different choices give different pods."""
    a = await _pod(OffloadSpawner, PROFILES, {"profile": "images", "image": "base"})
    b = await _pod(OffloadSpawner, PROFILES, {"profile": "images", "image": "scipy"})
    assert a != b
    assert a["spec"]["containers"][0]["image"] == "quay.io/jupyter/base-notebook:2025-01-01"


async def test_no_profile_list_gives_the_kubespawner_pod():
    expected, _ = _token_delivery_apart(await _pod(KubeSpawner, [], {}))
    actual, moved = _token_delivery_apart(await _pod(OffloadSpawner, [], {}))
    assert actual == expected
    assert [e["name"] for e in moved["env"]] == ["JUPYTERHUB_API_TOKEN"]


async def test_callable_override_results_are_awaited():
    """KubeSpawner calls kubespawner_override callables but never awaits them."""

    async def pick_image(spawner):
        return f"quay.io/jupyter/base-notebook:{spawner.user.name}"

    profiles = [{"display_name": "Async", "slug": "async", "kubespawner_override": {"image": pick_image}}]
    pod = await _pod(OffloadSpawner, profiles, {"profile": "async"})
    assert pod["spec"]["containers"][0]["image"] == "quay.io/jupyter/base-notebook:alice"
