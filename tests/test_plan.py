"""offload_spawner.pipeline.plan: a validated selection -> what the pod must carry (placement, annotations, resources)."""

import pytest
from kubespawner.utils import recursive_format

from offload_spawner.pipeline.catalog import build_catalog
from offload_spawner.pipeline.menu import build_menu
from offload_spawner.pipeline.plan import TARGET_KEY, build_plan, fill_value
from offload_spawner.pipeline.selection import select

GI = 2**30
INTERLINK = {"key": "virtual-node.interlink/no-schedule", "operator": "Exists", "effect": "NoSchedule"}
GPU_USER = ["cms", "ai-infn", "gpu-users"]


def plan_for(catalog, groups, user_options):
    return build_plan(catalog, select(build_menu(catalog, groups), user_options))


# --- session target: leonardo ------------------------------------------------------------


@pytest.fixture
def leonardo_plan(contract_catalog):
    return plan_for(
        contract_catalog,
        GPU_USER,
        {
            "target": "leonardo",
            "cores": "4",
            "memory": "8G",
            "accelerator": "nvidia.com/gpu:a100",
            "accelerator_count": "2",
        },
    )


def test_session_target_gets_the_interlink_toleration(leonardo_plan):
    assert leonardo_plan.offload == "session"
    assert list(leonardo_plan.tolerations) == [INTERLINK]


def test_session_target_is_bound_to_its_virtual_node(leonardo_plan):
    assert leonardo_plan.node_selector["kubernetes.io/hostname"] == "vk-leonardo"


def test_accelerator_limit_and_model_selector(leonardo_plan):
    assert leonardo_plan.extra_resource_limits == {"nvidia.com/gpu": "2"}
    assert leonardo_plan.node_selector["nvidia-gpu-type"] == "a100"
    assert leonardo_plan.node_selector == {"kubernetes.io/hostname": "vk-leonardo", "nvidia-gpu-type": "a100"}


def test_target_label_and_annotation(leonardo_plan):
    assert leonardo_plan.labels[TARGET_KEY] == "leonardo"
    assert leonardo_plan.annotations[TARGET_KEY] == "leonardo"
    assert TARGET_KEY == "offload-spawner.io/target"
    assert leonardo_plan.env["OFFLOAD_SPAWNER_TARGET"] == "leonardo"


def test_slurm_flags_built_from_typed_settings(leonardo_plan):
    # partition, account, qos, time_limit and extra_flags of offload_targets.leonardo.slurm, and the
    # chosen GPUs (the plugin writes no --gres for a GPU limit)
    assert leonardo_plan.annotations["slurm-job.vk.io/flags"] == (
        "--partition=boost_usr_prod --account=icsc_ai --qos=normal --time=04:00:00 --gres=gpu:a100:2 --exclusive"
    )
    assert leonardo_plan.annotations["slurm-job.vk.io/flavor"] == "gpu"
    assert set(leonardo_plan.annotations) == {
        TARGET_KEY,
        "slurm-job.vk.io/flags",
        "slurm-job.vk.io/flavor",
        "interlink.eu/shadow-same-ns",
    }


def test_contract_flags_example(contract_config):
    """The documented SLURM example: partition, account and time only."""
    slurm = contract_config["offload_targets"]["leonardo"]["slurm"]
    for key in ("qos", "flavor", "extra_flags"):
        del slurm[key]
    plan = plan_for(build_catalog(**contract_config), GPU_USER, {"target": "leonardo"})
    assert plan.annotations["slurm-job.vk.io/flags"] == "--partition=boost_usr_prod --account=icsc_ai --time=04:00:00"


def test_resources_follow_the_selection(leonardo_plan):
    assert leonardo_plan.cpu_limit == 4
    assert leonardo_plan.mem_limit == 8 * GI
    # request_fraction defaults to 1: requests == limits
    assert leonardo_plan.cpu_guarantee == 4
    assert leonardo_plan.mem_guarantee == 8 * GI


def test_overrides_of_the_chosen_choice(leonardo_plan):
    assert list(leonardo_plan.overrides) == [{"image": "ghcr.io/org/alma9:1.0"}]


# --- dask target: naples ---------------------------------------------------------------------


@pytest.fixture
def naples_plan(contract_catalog):
    return plan_for(
        contract_catalog, ["highrate"], {"target": "naples", "image": "offload", "cores": 8, "memory": "16G"}
    )


def test_dask_target_keeps_the_session_here(naples_plan):
    assert naples_plan.offload == "dask"
    assert naples_plan.tolerations == ()
    assert "kubernetes.io/hostname" not in naples_plan.node_selector
    # no backend annotations: the session pod is not an interLink job
    assert not any(".vk.io/" in key or ".knoc.io/" in key for key in naples_plan.annotations)


def test_dask_target_is_still_labelled(naples_plan):
    assert naples_plan.labels[TARGET_KEY] == "naples"
    assert naples_plan.annotations[TARGET_KEY] == "naples"


def test_dask_target_remote_hub_url_is_not_used_by_a_local_session(naples_plan):
    # hub_api_url is "what a remote pod uses to reach the hub": the session is local
    assert naples_plan.hub_api_url is None


def test_dask_target_timeouts(naples_plan):
    assert naples_plan.start_timeout == 900
    assert naples_plan.overrides == ({"image": "ghcr.io/org/offload:1.0"},)


def test_cluster_target(contract_catalog):
    plan = plan_for(contract_catalog, ["cms"], {})
    assert plan.offload == "none"
    assert plan.target == "cluster"
    assert plan.tolerations == ()
    assert plan.node_selector == {}
    assert plan.labels == {TARGET_KEY: "cluster"}
    assert plan.annotations == {TARGET_KEY: "cluster"}
    assert (plan.cpu_limit, plan.mem_limit) == (2, 4 * GI)
    assert plan.extra_resource_limits == {}


def test_session_target_hub_api_url(contract_config):
    contract_config["offload_targets"]["leonardo"]["hub_api_url"] = "https://hub.example.org/hub/api"
    plan = plan_for(build_catalog(**contract_config), GPU_USER, {"target": "leonardo"})
    assert plan.hub_api_url == "https://hub.example.org/hub/api"


def test_target_own_placement_is_added(contract_config):
    leonardo = contract_config["offload_targets"]["leonardo"]
    leonardo["tolerations"] = [{"key": "hpc", "operator": "Exists", "effect": "NoExecute"}]
    leonardo["node_selector"] = {"site": "cineca"}
    leonardo["labels"] = {"site": "cineca"}
    leonardo["annotations"] = {"example.org/note": "x"}
    plan = plan_for(build_catalog(**contract_config), GPU_USER, {"target": "leonardo"})
    assert list(plan.tolerations) == [INTERLINK, {"key": "hpc", "operator": "Exists", "effect": "NoExecute"}]
    assert plan.node_selector == {"kubernetes.io/hostname": "vk-leonardo", "site": "cineca"}
    assert plan.labels == {TARGET_KEY: "leonardo", "site": "cineca"}
    assert plan.annotations["example.org/note"] == "x"


def test_dask_target_own_placement_is_not_applied_to_the_local_session(contract_config):
    contract_config["offload_targets"]["naples"]["node_selector"] = {"site": "naples"}
    contract_config["offload_targets"]["naples"]["tolerations"] = [{"key": "htc", "operator": "Exists"}]
    plan = plan_for(build_catalog(**contract_config), ["highrate"], {"target": "naples"})
    assert plan.node_selector == {}
    assert plan.tolerations == ()


# --- request_fraction -----------------------------------------------------------------------------


@pytest.mark.parametrize("fraction", [0.5, 0.25, 1.0])
def test_guarantees_follow_request_fraction(contract_config, fraction):
    contract_config["offload_targets"]["leonardo"]["request_fraction"] = fraction
    plan = plan_for(build_catalog(**contract_config), GPU_USER, {"target": "leonardo", "cores": 8, "memory": "16G"})
    assert plan.cpu_limit == 8
    assert plan.mem_limit == 16 * GI
    assert plan.cpu_guarantee == 8 * fraction
    assert plan.mem_guarantee == int(16 * GI * fraction)


def test_request_fraction_does_not_touch_accelerators(contract_config):
    contract_config["offload_targets"]["leonardo"]["request_fraction"] = 0.5
    plan = plan_for(
        build_catalog(**contract_config),
        GPU_USER,
        {"target": "leonardo", "accelerator": "nvidia.com/gpu:t4", "accelerator_count": 2},
    )
    assert plan.extra_resource_limits == {"nvidia.com/gpu": "2"}


# --- unlisted values ----------------------------------------------------------------------------


def test_unlisted_image_goes_through_value_template(contract_catalog):
    plan = plan_for(contract_catalog, ["cms"], {"image--unlisted-choice": "ghcr.io/org/custom:2.0"})
    assert plan.overrides == ({"image": "ghcr.io/org/custom:2.0"},)


def test_fill_value_inserts_user_text_verbatim():
    # str.format would read these as fields/attribute lookups; fill_value must not
    for text in ("{0}", "{value.__class__}", "{}", "{{", "%s"):
        assert fill_value("{value}", text) == text
        assert fill_value("registry/{value}:tag", text) == f"registry/{text}:tag"


def test_fill_value_handles_admin_braces_like_str_format():
    assert fill_value("{{literal}}/{value}", "x") == "{{literal}}/{value}".format(value="x") == "{literal}/x"
    assert fill_value("a{{b}}c", "x") == "a{b}c"


def test_fill_value_walks_dicts_and_lists():
    template = {
        "image": "{value}",
        "args": ["--image={value}", 3],
        "extra_labels": {"img": "{value}"},
        "n": 1,
        "none": None,
    }
    assert fill_value(template, "x:1") == {
        "image": "x:1",
        "args": ["--image=x:1", 3],
        "extra_labels": {"img": "x:1"},
        "n": 1,
        "none": None,
    }


@pytest.mark.parametrize(
    "template",
    [
        "{value}",
        "jupyter/datascience-notebook:{value}",
        "{{x}}-{value}",
        "{other}-{value}",
        ["{value}", "{{value}}"],
        {"image": "{value}", "default_url": "/lab", "extra_labels": {"user-specified-image-tag": "{value}"}},
        {"extra_annotations": {"example.org/image-{value}": "yes"}},  # KubeSpawner also fills keys
    ],
)
def test_fill_value_agrees_with_kubespawner_for_admin_templates(template):
    """A plain KubeSpawner profile_list gives the same pod."""
    assert fill_value(template, "v1.2") == recursive_format(template, value="v1.2")


def test_plan_does_not_mutate_the_catalog(contract_catalog):
    before = contract_catalog.model_dump()
    plan = plan_for(contract_catalog, ["cms"], {"image--unlisted-choice": "ghcr.io/org/x:1"})
    plan.overrides[0]["image"] = "changed"  # type: ignore[index]
    assert contract_catalog.model_dump() == before


# --- plain KubeSpawner profiles ---------------------------------------------------------------------


def test_plain_profile_plan_carries_only_overrides():
    catalog = build_catalog(
        profile_list=[
            {
                "display_name": "Demo",
                "slug": "demo",
                "kubespawner_override": {"default_url": "/lab", "cpu_limit": 2},
                "profile_options": {
                    "image": {
                        "display_name": "Image",
                        "choices": {
                            "base": {
                                "display_name": "base",
                                "kubespawner_override": {"image": "jupyter/base-notebook:latest"},
                            }
                        },
                    }
                },
            }
        ]
    )
    plan = plan_for(catalog, [], {})
    # profile override first, then the option's (KubeSpawner's order)
    assert plan.overrides == ({"default_url": "/lab", "cpu_limit": 2}, {"image": "jupyter/base-notebook:latest"})
    assert plan.target is None and plan.offload == "none"
    assert plan.cpu_limit is None and plan.mem_limit is None  # KubeSpawner's own traits stay in charge
    assert plan.labels == {} and plan.annotations == {} and plan.tolerations == () and plan.node_selector == {}
    assert plan.env == {}


def test_admin_model_label(contract_config):
    contract_config["profile_list"][0]["accelerators"]["nvidia.com/gpu"]["model_label"] = "gpu.example.org/model"
    plan = plan_for(
        build_catalog(**contract_config), GPU_USER, {"target": "leonardo", "accelerator": "nvidia.com/gpu:t4"}
    )
    assert plan.node_selector["gpu.example.org/model"] == "t4"
    assert "nvidia-gpu-type" not in plan.node_selector
    assert plan.extra_resource_limits == {"nvidia.com/gpu": "1"}


def test_fill_value_applies_an_admin_format_spec_like_str_format():
    assert fill_value("{value:.3}", "abcdef") == "{value:.3}".format(value="abcdef") == "abc"
    assert fill_value("{value:.3}", "{x}") == "{x}"
