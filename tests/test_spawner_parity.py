"""Swapping ``spawner_class`` from KubeSpawner to OffloadSpawner keeps what an
admin relied on: the same pod for a plain ``profile_list``, the same public
methods (sync stays sync, async stays async) and traits, and each admin hook
with its KubeSpawner meaning.

Both spawners are real (constructed with the same config, user and hub); the
pods compared are their own ``get_pod_manifest()`` after their own
``load_user_options()``. Where a hook runs during a spawn, the spawners go
through the steps JupyterHub and KubeSpawner take before the pod is created
(:func:`_spawn_until_create`), each step being the spawner's own public method.
"""

from __future__ import annotations

import copy
import inspect

import pytest
from jupyterhub.objects import Hub
from jupyterhub.utils import maybe_future
from kubernetes_asyncio.client import ApiClient
from kubespawner import KubeSpawner
from traitlets.config import Config

from offload_spawner.hub.cli import CliGroup, CliUser
from offload_spawner.hub.spawner import OffloadSpawner

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
                    "base": {
                        "display_name": "Base",
                        "kubespawner_override": {"image": "quay.io/jupyter/base-notebook:2025-01-01"},
                    },
                    "scipy": {
                        "display_name": "SciPy",
                        "default": True,
                        "kubespawner_override": {
                            "image": "quay.io/jupyter/scipy-notebook:2025-01-01",
                            "extra_labels": {"flavour": "scipy"},
                        },
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
                    "l": {
                        "display_name": "L",
                        "kubespawner_override": {"cpu_guarantee": 2, "node_selector": {"size": "large"}},
                    },
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


def _spawner(cls, profile_list, api_token: str | None = "parity-token", **settings):
    """A spawner as the hub makes one: the admin's config in the KubeSpawner section."""
    config = Config()
    config.KubeSpawner.profile_list = copy.deepcopy(profile_list) if isinstance(profile_list, list) else profile_list
    config.KubeSpawner.image = "quay.io/jupyter/minimal-notebook:2025-01-01"
    config.KubeSpawner.tolerations = [
        {"key": "hub.jupyter.org/dedicated", "operator": "Equal", "value": "user", "effect": "NoSchedule"}
    ]
    for key, value in settings.items():
        setattr(config.KubeSpawner, key, value)
    hub = Hub(ip="hub", port=8081, base_url="/hub/")
    spawner = cls(user=CliUser("alice", [CliGroup("anyone")]), hub=hub, config=config)
    if api_token is not None:
        spawner.api_token = api_token
    return spawner


async def _as_dict(pod) -> dict:
    async with ApiClient() as client:
        return client.sanitize_for_serialization(pod)


async def _pod(cls, profile_list, user_options, api_token: str | None = "parity-token") -> dict:
    spawner = _spawner(cls, profile_list, api_token)
    spawner.user_options = dict(user_options)
    await spawner.load_user_options()
    return await _as_dict(await spawner.get_pod_manifest())


def _token_delivery_apart(pod: dict) -> tuple[dict, dict]:
    """The pod without how the hub token reaches it, and that part on its own.

    KubeSpawner puts the token in the env as a value; OffloadSpawner refers to
    the server's Secret instead (the one intended difference: no token in a pod spec).
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
        "JUPYTERHUB_API_TOKEN": "parity-token",
        "JPY_API_TOKEN": "parity-token",
    }
    assert offload_tokens == {
        "env": [
            {
                "name": "JUPYTERHUB_API_TOKEN",
                "valueFrom": {"secretKeyRef": {"name": "jupyter-alice-offload", "key": "jupyterhub_api_token"}},
            }
        ],
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


# --- the public API keeps KubeSpawner's shape -------------------------------------------


def _public_methods(cls) -> dict[str, bool]:
    """Public methods -> whether calling one gives an awaitable (async def)."""
    out = {}
    for name in dir(cls):
        if name.startswith("_") or name in cls.class_trait_names():
            continue
        value = inspect.getattr_static(cls, name)
        if isinstance(value, (staticmethod, classmethod)):
            value = value.__func__
        if inspect.isfunction(value):
            out[name] = inspect.iscoroutinefunction(value) or inspect.isasyncgenfunction(value)
    return out


def test_every_public_kubespawner_method_keeps_its_sync_or_async_nature():
    theirs, ours = _public_methods(KubeSpawner), _public_methods(OffloadSpawner)
    changed = {name: (is_async, ours[name]) for name, is_async in theirs.items() if ours.get(name) != is_async}
    # run_options_from_form: JupyterHub awaits it (maybe_future), and the form's selection is checked there.
    assert changed == {"run_options_from_form": (False, True)}


#: KubeSpawner traits whose default OffloadSpawner replaces (an admin's own value still wins)
OWN_DEFAULTS = {"options_form", "options_from_form", "apply_user_options"}


async def test_every_kubespawner_trait_keeps_its_type_and_default():
    theirs = _spawner(KubeSpawner, [])
    ours = _spawner(OffloadSpawner, [])
    for name, trait in KubeSpawner.class_traits(config=True).items():
        mine = OffloadSpawner.class_traits()[name]
        assert type(mine) is type(trait), f"{name}: {type(trait).__name__} became {type(mine).__name__}"
        if name in OWN_DEFAULTS:
            continue
        assert getattr(ours, name) == getattr(theirs, name), f"{name}: default differs"
        assert mine.metadata.get("config") == trait.metadata.get("config"), f"{name}: configurability differs"


FORM = {"profile": ["images"], "profile-option-images--image": ["base"], "profile-option-images--size": ["l"]}


async def test_options_from_form_is_a_plain_function_returning_the_kubespawner_dict():
    """KubeSpawner callers call options_from_form without awaiting: they get a dict."""
    theirs = _spawner(KubeSpawner, PROFILES).options_from_form(copy.deepcopy(FORM))
    ours = _spawner(OffloadSpawner, PROFILES).options_from_form(copy.deepcopy(FORM))
    assert not inspect.isawaitable(ours), "options_from_form returned a coroutine"
    assert isinstance(ours, dict)
    assert ours == theirs == {"profile": "images", "image": "base", "size": "l"}


async def test_the_form_path_jupyterhub_awaits_gives_the_same_pod():
    """SpawnHandler.post: ``await maybe_future(spawner.run_options_from_form(form))``."""
    pods = []
    for cls in (KubeSpawner, OffloadSpawner):
        spawner = _spawner(cls, PROFILES)
        options = await maybe_future(spawner.run_options_from_form(copy.deepcopy(FORM)))
        pods.append(_token_delivery_apart(await _spawn_until_create(spawner, options))[0])
    assert pods[0] == pods[1]
    assert pods[1]["spec"]["nodeSelector"] == {"size": "large"}


# --- get_pod_manifest without an API token ----------------------------------------------


async def test_pod_manifest_builds_without_an_api_token():
    """KubeSpawner builds the pod before the hub set ``api_token``: so does OffloadSpawner,
    with no token and no reference to a token key."""
    expected, _theirs = _token_delivery_apart(await _pod(KubeSpawner, PROFILES, {"profile": "small"}, api_token=None))
    actual, ours = _token_delivery_apart(await _pod(OffloadSpawner, PROFILES, {"profile": "small"}, api_token=None))
    assert actual == expected
    assert ours == {"env": [], "volumes": [], "volumeMounts": []}
    assert "jupyterhub_api_token" not in repr(actual)


async def test_creating_a_server_without_an_api_token_is_refused_before_anything_is_created():
    from offload_spawner.identity.token_delivery import TokenSecretError

    spawner = _spawner(OffloadSpawner, PROFILES, api_token=None)
    spawner.user_options = {"profile": "small"}
    await spawner.load_user_options()
    pod = await spawner.get_pod_manifest()
    # The check comes before any API call: the test's kubeconfig points nowhere.
    with pytest.raises(TokenSecretError, match="no JupyterHub API token"):
        await spawner._make_create_pod_request(pod, 5)


# --- admin hooks, side by side ---------------------------------------------------------


async def _spawn_until_create(spawner, user_options) -> dict:
    """The pod a spawn would create, through the spawner's own methods in the
    order upstream calls them: jupyterhub/user.py (``User.spawn``:
    ``apply_group_overrides``, the ``apply_user_options`` hook,
    ``run_pre_spawn_hook``), then kubespawner/spawner.py (``KubeSpawner._start``:
    ``load_user_options``, ``get_pod_manifest``, ``modify_pod_hook``)."""
    spawner.user_options = dict(user_options)
    await spawner.apply_group_overrides()
    await spawner._run_apply_user_options(spawner.user_options)
    await maybe_future(spawner.run_pre_spawn_hook())
    await spawner.load_user_options()
    pod = await spawner.get_pod_manifest()
    if spawner.modify_pod_hook:
        pod = await maybe_future(spawner.modify_pod_hook(spawner, pod))
    return await _as_dict(pod)


async def _side_by_side(user_options, profile_list=PROFILES, **settings) -> tuple[dict, dict]:
    pods = []
    for cls in (KubeSpawner, OffloadSpawner):
        pod = await _spawn_until_create(_spawner(cls, profile_list, **settings), user_options)
        pods.append(_token_delivery_apart(pod)[0])
    return pods[0], pods[1]


async def test_admin_options_form_string_is_served_as_it_is():
    form = '<label>Which image? <input name="image"></label>'
    for cls in (KubeSpawner, OffloadSpawner):
        assert await _spawner(cls, PROFILES, options_form=form).get_options_form() == form


async def test_admin_options_form_callable_is_served_as_it_is():
    async def form(spawner):
        return f"<p>Hello {spawner.user.name}</p>"

    for cls in (KubeSpawner, OffloadSpawner):
        assert await _spawner(cls, PROFILES, options_form=form).get_options_form() == "<p>Hello alice</p>"


async def test_admin_options_from_form_is_used_as_it_is():
    def pick(formdata):
        return {"profile": "small" if formdata.get("tiny") == ["yes"] else "images"}

    results = []
    for cls in (KubeSpawner, OffloadSpawner):
        spawner = _spawner(cls, PROFILES, options_from_form=pick)
        options = await maybe_future(spawner.run_options_from_form({"tiny": ["yes"]}))
        assert options == {"profile": "small"}
        results.append(_token_delivery_apart(await _spawn_until_create(spawner, options))[0])
    assert results[0] == results[1]
    assert float(results[1]["spec"]["containers"][0]["resources"]["limits"]["cpu"]) == 1


@pytest.mark.parametrize("kind", ["callable", "async"])
async def test_callable_or_async_profile_list(kind):
    def plain(spawner):
        return copy.deepcopy(PROFILES)

    async def coroutine(spawner):
        return copy.deepcopy(PROFILES)

    profile_list = plain if kind == "callable" else coroutine
    for options in ({"profile": "small"}, {"profile": "images", "image": "base"}):
        theirs, ours = await _side_by_side(options, profile_list)
        assert ours == theirs
    assert ours["spec"]["containers"][0]["image"] == "quay.io/jupyter/base-notebook:2025-01-01"
    # Both serve a form built from the callable's profiles.
    for cls in (KubeSpawner, OffloadSpawner):
        assert "Images" in await _spawner(cls, profile_list).get_options_form()


async def test_modify_pod_hook_sees_and_changes_the_final_pod():
    seen = []

    async def hook(spawner, pod):
        seen.append((type(spawner).__name__, pod.spec.containers[0].image, dict(pod.spec.node_selector or {})))
        pod.metadata.labels["modified-by"] = "hook"
        pod.spec.containers[0].env.append({"name": "FROM_HOOK", "value": "1"})
        return pod

    theirs, ours = await _side_by_side({"profile": "images", "size": "l"}, modify_pod_hook=hook)
    assert ours == theirs
    assert ours["metadata"]["labels"]["modified-by"] == "hook"
    assert {"name": "FROM_HOOK", "value": "1"} in ours["spec"]["containers"][0]["env"]
    # The hook got the pod after the profile was applied, under both spawners.
    assert seen[0][1:] == seen[1][1:] == ("quay.io/jupyter/scipy-notebook:2025-01-01", {"size": "large"})


async def test_pre_spawn_hook_runs_before_the_profile_is_applied():
    async def hook(spawner):
        spawner.environment = {**spawner.environment, "FROM_PRE_SPAWN": spawner.user.name}
        spawner.cpu_limit = 3.0  # the profile's own override wins, as in KubeSpawner
        spawner.extra_labels = {**spawner.extra_labels, "pre-spawn": "yes"}

    for options in ({"profile": "small"}, {"profile": "images"}):
        theirs, ours = await _side_by_side(options, pre_spawn_hook=hook)
        assert ours == theirs
        assert {"name": "FROM_PRE_SPAWN", "value": "alice"} in ours["spec"]["containers"][0]["env"]
        assert ours["metadata"]["labels"]["pre-spawn"] == "yes"


async def test_kubespawner_override_merges_dicts_and_calls_callables():
    profiles = [
        {
            "display_name": "Overrides",
            "slug": "overrides",
            "kubespawner_override": {
                "environment": {"ADDED": "1"},
                "extra_labels": {"team": "cms"},
                "image": lambda spawner: f"quay.io/jupyter/base-notebook:{spawner.user.name}",
                "cpu_limit": 2,
            },
        }
    ]
    theirs, ours = await _side_by_side({"profile": "overrides"}, profiles, environment={"KEPT": "yes"})
    assert ours == theirs
    env = {e["name"]: e.get("value") for e in ours["spec"]["containers"][0]["env"]}
    assert env["ADDED"] == "1" and env["KEPT"] == "yes"
    assert ours["spec"]["containers"][0]["image"] == "quay.io/jupyter/base-notebook:alice"


async def test_a_difference_in_a_hook_is_seen():
    """The side-by-side comparison can fail: a hook only one spawner runs shows."""

    def hook(spawner, pod):
        pod.metadata.labels["only"] = "here"
        return pod

    pods = [
        _token_delivery_apart(await _spawn_until_create(_spawner(KubeSpawner, PROFILES), {"profile": "small"}))[0],
        _token_delivery_apart(
            await _spawn_until_create(_spawner(OffloadSpawner, PROFILES, modify_pod_hook=hook), {"profile": "small"})
        )[0],
    ]
    assert pods[0] != pods[1]
