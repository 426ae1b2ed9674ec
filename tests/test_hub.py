"""OffloadSpawner inside a real JupyterHub (MockHub + configurable-http-proxy).

Users of different groups log in through the hub's login page, load the spawn
form, post it, and call the REST API; the pods checked are the manifests
KubeSpawner builds (recorded at the Kubernetes API edge, see hub_fixtures).
"""

from __future__ import annotations

import html
import json

import kubernetes_validate
import pytest

from hub_fixtures import RecordingSpawner

pytestmark = pytest.mark.hub

GROUPS = {
    "cms": ["bob", "carol"],
    "highrate": ["hana"],
    "ai-infn": ["carol"],
    "gpu-users": ["carol"],
}
USERS = ("bob", "carol", "hana", "nobody")


def validate_pod(pod: dict) -> None:
    kubernetes_validate.validate(pod, desired_version="1.34", strict=True)


def pods_of(user: str) -> list[dict]:
    return [pod for name, pod in RecordingSpawner.recorded if name == user]


@pytest.fixture
async def hub(offload_hub, contract_config):
    return await offload_hub(contract_config, groups=GROUPS, users=USERS)


async def test_form_shows_each_user_only_what_their_groups_allow(hub):
    forms = {}
    for user in USERS:
        r = await hub.get_form(user)
        assert r.status_code == 200, r.text
        forms[user] = r.text

    assert "AlmaLinux 9" in forms["bob"]
    assert "Dask offload" not in forms["bob"]
    assert "INFN Naples" not in forms["bob"]
    assert "CINECA Leonardo" not in forms["bob"]

    assert "Dask offload" in forms["hana"]
    assert "INFN Naples" in forms["hana"]
    assert "CINECA Leonardo" not in forms["hana"]

    assert "CINECA Leonardo" in forms["carol"]
    assert "NVIDIA GPU" in forms["carol"]

    assert "no server configuration you are allowed to start" in forms["nobody"]
    assert 'type="radio" name="profile"' not in forms["nobody"]
    assert 'type="radio" name="profile"' in forms["bob"]

    for text in forms.values():
        # admin overrides never reach the browser
        assert "ghcr.io/org/offload:1.0" not in text
        assert "ghcr.io/org/alma9:1.0" not in text
        assert "kubespawner_override" not in text
        assert "vk-naples" not in text and "vk-leonardo" not in text


async def test_form_post_spawns_the_planned_pod(hub):
    r = await hub.post_form(
        "hana",
        {
            "profile": "analysis",
            "profile-option-analysis--image": "offload",
            "profile-option-analysis--cores": "4",
            "profile-option-analysis--memory": "8G",
            "profile-option-analysis--target": "naples",
        },
    )
    assert r.status_code == 302, r.text
    model = await hub.wait_ready("hana")
    assert model["servers"][""]["user_options"]["target"] == "naples"

    [pod] = pods_of("hana")
    validate_pod(pod)
    container = pod["spec"]["containers"][0]
    assert container["image"] == "ghcr.io/org/offload:1.0"
    assert float(container["resources"]["limits"]["cpu"]) == 4
    assert int(container["resources"]["limits"]["memory"]) == 8 * 2**30
    assert pod["metadata"]["labels"]["offload-spawner.io/target"] == "naples"
    # naples offloads only Dask: the session pod stays on a normal node
    assert not pod["spec"].get("tolerations")
    assert "kubernetes.io/hostname" not in (pod["spec"].get("nodeSelector") or {})


async def test_form_refusal_shows_the_message_by_the_field_and_creates_nothing(hub):
    r = await hub.post_form(
        "bob",
        {
            "profile": "analysis",
            "profile-option-analysis--image": "alma9",
            "profile-option-analysis--memory": "64G",
        },
    )
    assert r.status_code == 400
    page = html.unescape(r.text)
    assert "64G is above your limit of 32G on This cluster" in page
    assert 'data-offload-field-error="memory"' in r.text
    # the user's other choices are kept
    assert '<option value="alma9" selected>' in r.text
    assert pods_of("bob") == []
    model = await hub.api_user("bob")
    assert model["servers"] == {}


REFUSED = [
    ({"profile": "secret"}, "There is no profile 'secret' you can start"),
    ({"profile": "analysis", "image": "offload"}, "'offload' is not a choice for Image"),
    ({"profile": "analysis", "target": "naples"}, "You cannot run 'Analysis' on 'naples'"),
    ({"profile": "analysis", "cores": "16"}, "16 cores is above"),
    ({"profile": "analysis", "memory": "64G"}, "64G is above your limit of 32G"),
    ({"profile": "analysis", "accelerator": "nvidia.com/gpu:a100"}, "is not available to you"),
    ({"profile": "analysis", "shell": "rm -rf /"}, "Unknown option 'shell'"),
    ({"profile": "analysis", "image--unlisted-choice": "docker.io/evil/miner:1"}, "is not an allowed Image"),
    ({"profile": "analysis", "image--unlisted-choice": "ghcr.io/org/x:{0.__class__}"}, "may not contain braces"),
    ({"profile": "analysis", "image": "alma9x"}, "'alma9x' is not a choice for Image"),
    ({"profile": "analysis", "cores": "many"}, "Cores must be a number"),
]


@pytest.mark.parametrize("options,message", REFUSED, ids=[m for _, m in REFUSED])
async def test_rest_api_refuses_with_400_and_creates_nothing(hub, options, message):
    r = await hub.api_spawn("bob", options)
    assert r.status_code == 400, r.text
    assert message in r.json()["message"]
    assert pods_of("bob") == []
    assert (await hub.api_user("bob"))["servers"] == {}


async def test_rest_api_spawn_on_a_slurm_target(hub):
    r = await hub.api_spawn(
        "carol",
        {
            "profile": "analysis",
            "cores": "8",
            "memory": "16G",
            "accelerator": "nvidia.com/gpu:a100",
            "accelerator_count": "2",
            "target": "leonardo",
        },
    )
    assert r.status_code in (201, 202), r.text
    await hub.wait_ready("carol")
    [pod] = pods_of("carol")
    validate_pod(pod)
    spec = pod["spec"]
    assert {"key": "virtual-node.interlink/no-schedule", "operator": "Exists", "effect": "NoSchedule"} in spec[
        "tolerations"
    ]
    assert spec["nodeSelector"]["kubernetes.io/hostname"] == "vk-leonardo"
    assert spec["nodeSelector"]["nvidia-gpu-type"] == "a100"
    limits = spec["containers"][0]["resources"]["limits"]
    assert limits["nvidia.com/gpu"] == "2"
    annotations = pod["metadata"]["annotations"]
    assert annotations["slurm-job.vk.io/flags"].startswith("--partition=boost_usr_prod --account=icsc_ai")
    assert annotations["offload-spawner.io/target"] == "leonardo"


async def test_rest_api_gpu_count_above_group_limit_is_refused(hub):
    r = await hub.api_spawn(
        "carol",
        {"profile": "analysis", "accelerator": "nvidia.com/gpu:a100", "accelerator_count": 3, "target": "leonardo"},
    )
    assert r.status_code == 400
    assert "above your limit of 2 on CINECA Leonardo" in r.json()["message"]
    assert pods_of("carol") == []


PLAIN_PROFILES = [
    {
        "display_name": "Demo",
        "slug": "demo",
        "profile_options": {
            "image": {
                "display_name": "Image",
                "choices": {
                    "minimal": {
                        "display_name": "Minimal",
                        "kubespawner_override": {"image": "quay.io/jupyter/minimal-notebook:2025-01-01"},
                    },
                    "scipy": {
                        "display_name": "SciPy",
                        "kubespawner_override": {"image": "quay.io/jupyter/scipy-notebook:2025-01-01"},
                    },
                },
            }
        },
    }
]


async def test_tampered_kubespawner_form_gets_a_clear_error_not_a_keyerror(offload_hub):
    hub = await offload_hub({"profile_list": PLAIN_PROFILES}, users=["dave"])
    r = await hub.post_form("dave", {"profile": "demo", "profile-option-demo--image": "../../etc"})
    assert r.status_code == 400
    assert "is not a choice for Image" in html.unescape(r.text)
    assert "KeyError" not in r.text
    assert pods_of("dave") == []

    r = await hub.post_form("dave", {"profile": "demo", "profile-option-demo--image": "scipy"})
    assert r.status_code == 302
    await hub.wait_ready("dave")
    [pod] = pods_of("dave")
    assert pod["spec"]["containers"][0]["image"] == "quay.io/jupyter/scipy-notebook:2025-01-01"
    validate_pod(pod)


async def test_saved_options_preselect_the_form(hub):
    r = await hub.api_spawn("hana", {"profile": "analysis", "image": "offload", "cores": 8, "target": "naples"})
    assert r.status_code in (201, 202), r.text
    await hub.wait_ready("hana")
    await hub.stop("hana")
    r = await hub.get_form("hana")
    assert '<option value="offload" selected>' in r.text
    assert '<option value="8" selected>' in r.text
    assert '<option value="naples" selected>' in r.text
    assert json.dumps(GROUPS) not in r.text


@pytest.mark.parametrize("options,message", REFUSED, ids=[m for _, m in REFUSED])
async def test_form_refuses_the_same_selections(hub, options, message):
    """The form path refuses what the REST API refuses (same validator)."""
    profile = options.get("profile", "analysis")
    data = {"profile": profile}
    for key, value in options.items():
        if key != "profile":
            data[f"profile-option-{profile}--{key}"] = value
    r = await hub.post_form("bob", data)
    assert r.status_code == 400, r.text[:500]
    assert message in html.unescape(r.text)
    assert pods_of("bob") == []
