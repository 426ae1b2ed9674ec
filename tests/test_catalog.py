"""offload_spawner.pipeline.catalog: the admin configuration is checked once, and every
problem names its key path (the hub does not start on a bad config)."""

import pytest

from offload_spawner.pipeline.catalog import (
    INTERLINK_TOLERATION,
    RESERVED_KEYS,
    Backend,
    CatalogError,
    build_catalog,
)

GI = 2**30

#: KubeSpawner's own documented profile_list example (its ``profile_list`` help), no NEW keys.
KUBESPAWNER_PROFILE_LIST = [
    {
        "display_name": "Demo - profile_list entry 1",
        "description": "Demo description for profile_list entry 1, and it should look good even though it is a bit lengthy.",
        "slug": "demo-1",
        "default": True,
        "profile_options": {
            "image": {
                "display_name": "Image",
                "choices": {
                    "base": {
                        "display_name": "jupyter/base-notebook:latest",
                        "kubespawner_override": {"image": "jupyter/base-notebook:latest"},
                    },
                    "minimal": {
                        "display_name": "jupyter/minimal-notebook:latest",
                        "default": True,
                        "kubespawner_override": {"image": "jupyter/minimal-notebook:latest"},
                    },
                },
                "unlisted_choice": {
                    "enabled": True,
                    "display_name": "Other image",
                    "display_name_in_choices": "Enter image manually",
                    "validation_regex": "^jupyter/.+:.+$",
                    "validation_message": "Must be an image matching ^jupyter/<name>:<tag>$",
                    "kubespawner_override": {"image": "{value}"},
                },
            },
        },
        "kubespawner_override": {"default_url": "/lab"},
    },
    {
        "display_name": "Demo - profile_list entry 2",
        "slug": "demo-2",
        "kubespawner_override": {
            "extra_resource_guarantees": {"nvidia.com/gpu": "1"},
            "cpu_limit": 2,
            "mem_limit": "4G",
        },
    },
]


def problems_of(**config) -> list[str]:
    with pytest.raises(CatalogError) as info:
        build_catalog(**config)
    problems = info.value.problems
    assert problems, "a CatalogError must list its problems"
    # every problem is one "path: message" line, and the error text shows them all
    for problem in problems:
        assert problem in str(info.value)
    return problems


def only_problem(**config) -> str:
    problems = problems_of(**config)
    assert len(problems) == 1, problems
    return problems[0]


# --- valid configurations ------------------------------------------------------


def test_contract_example_validates(contract_catalog):
    catalog = contract_catalog
    assert [p.resolved_slug for p in catalog.profile_list] == ["analysis"]
    assert list(catalog.offload_targets) == ["cluster", "naples", "leonardo"]
    naples = catalog.offload_targets["naples"]
    assert naples.backend is Backend.htcondor
    assert naples.node == "vk-naples"
    assert naples.offload == "dask"
    assert naples.limits.memory == 180 * GI
    assert naples.limits.cores == 96
    leonardo = catalog.offload_targets["leonardo"]
    assert leonardo.limits.memory == 480 * GI
    assert leonardo.limits.accelerators == {"nvidia.com/gpu": 4}
    assert leonardo.slurm.partition == "boost_usr_prod"
    assert leonardo.slurm.extra_flags == ["--exclusive"]
    assert catalog.group_limits["cms"].memory == 32 * GI
    assert catalog.default_limits is None
    profile = catalog.profile("analysis")
    assert profile.cores.choices == [1, 2, 4, 8]
    assert profile.memory.default == 4 * GI
    assert catalog.profile_targets(profile) == ["cluster", "naples", "leonardo"]


def test_targets_default_to_every_target(contract_config):
    del contract_config["profile_list"][0]["targets"]
    catalog = build_catalog(**contract_config)
    assert catalog.profile_targets(catalog.profile("analysis")) == ["cluster", "naples", "leonardo"]


def test_target_properties(contract_catalog):
    targets = contract_catalog.offload_targets
    assert not targets["cluster"].is_virtual
    assert targets["naples"].is_virtual and not targets["naples"].runs_session_remotely
    assert targets["leonardo"].is_virtual and targets["leonardo"].runs_session_remotely


def test_plain_kubespawner_profile_list_validates():
    catalog = build_catalog(profile_list=KUBESPAWNER_PROFILE_LIST)
    assert [p.resolved_slug for p in catalog.profile_list] == ["demo-1", "demo-2"]
    image = catalog.profile("demo-1").profile_options["image"]
    assert image.default_choice == "minimal"
    assert image.unlisted_choice.enabled
    assert image.unlisted_choice.kubespawner_override == {"image": "{value}"}
    assert catalog.profile("demo-2").kubespawner_override["mem_limit"] == "4G"
    assert catalog.offload_targets == {}


def test_plain_profile_list_with_callable_override_validates():
    def image(spawner):
        return "jupyter/base-notebook:latest"

    catalog = build_catalog(profile_list=[{"display_name": "One", "kubespawner_override": {"image": image}}])
    assert catalog.profile("one").kubespawner_override["image"] is image


def test_missing_slug_is_derived_from_display_name_as_kubespawner_does():
    from slugify import slugify

    catalog = build_catalog(profile_list=[{"display_name": "Data Science (CPU)"}])
    assert catalog.profile_list[0].resolved_slug == slugify("Data Science (CPU)") == "data-science-cpu"


def test_profile_list_as_dict_is_taken_in_key_order():
    catalog = build_catalog(
        profile_list={"b": {"display_name": "Bee", "slug": "bee"}, "a": {"display_name": "Ay", "slug": "ay"}}
    )
    assert [p.resolved_slug for p in catalog.profile_list] == ["ay", "bee"]


def test_empty_configuration_is_valid():
    catalog = build_catalog()
    assert catalog.profile_list == [] and catalog.offload_targets == {}


def test_first_choice_is_default_when_none_is_marked():
    catalog = build_catalog(
        profile_list=[
            {
                "display_name": "P",
                "profile_options": {
                    "image": {
                        "display_name": "Image",
                        "choices": {"one": {"display_name": "1"}, "two": {"display_name": "2"}},
                    }
                },
            }
        ]
    )
    assert catalog.profile("p").profile_options["image"].default_choice == "one"


def test_interlink_toleration_is_the_contract_one():
    assert INTERLINK_TOLERATION == {
        "key": "virtual-node.interlink/no-schedule",
        "operator": "Exists",
        "effect": "NoSchedule",
    }


def test_reserved_keys_are_the_user_options_fields():
    assert {"profile", "cores", "memory", "accelerator", "accelerator_count", "target", "storage"} == RESERVED_KEYS


# --- errors name the key path ----------------------------------------------------


def test_bad_memory_unit_names_the_path(contract_config):
    contract_config["offload_targets"]["naples"]["limits"]["memory"] = "180GB"
    problem = only_problem(**contract_config)
    assert problem.startswith("offload_targets.naples.limits.memory: ")
    assert "'180GB'" in problem


def test_bad_memory_in_group_limits(contract_config):
    contract_config["group_limits"]["cms"]["memory"] = "32 GB"
    assert only_problem(**contract_config).startswith("group_limits.cms.memory: ")


def test_bad_memory_choice_in_profile(contract_config):
    contract_config["profile_list"][0]["memory"]["choices"][2] = "8gb"
    assert only_problem(**contract_config).startswith("profile_list[0].memory.choices[2]: ")


def test_unknown_target_key(contract_config):
    contract_config["offload_targets"]["naples"]["limit"] = {"cores": 4}
    problem = only_problem(**contract_config)
    assert problem.startswith("offload_targets.naples.limit: ")
    assert "unknown key" in problem


def test_unknown_profile_key(contract_config):
    contract_config["profile_list"][0]["target"] = ["cluster"]
    problem = only_problem(**contract_config)
    assert problem.startswith("profile_list[0].target: ")
    assert "unknown key" in problem


def test_unknown_choice_key(contract_config):
    contract_config["profile_list"][0]["profile_options"]["image"]["choices"]["alma9"]["kubespawner_overide"] = {}
    problem = only_problem(**contract_config)
    assert problem.startswith("profile_list[0].profile_options.image.choices.alma9.kubespawner_overide: ")
    assert "unknown key" in problem


def test_unknown_top_level_limits_key(contract_config):
    contract_config["default_limits"] = {"cpus": 4}
    problem = only_problem(**contract_config)
    assert problem.startswith("default_limits.cpus: ")
    assert "unknown key" in problem


def test_profile_target_not_in_offload_targets(contract_config):
    contract_config["profile_list"][0]["targets"] = ["cluster", "nowhere"]
    problem = only_problem(**contract_config)
    assert problem.startswith("profile_list[0].targets: ")
    assert "'nowhere'" in problem and "offload_targets" in problem


def test_profile_target_without_any_offload_targets():
    problem = only_problem(profile_list=[{"display_name": "P", "targets": ["hpc"]}])
    assert problem.startswith("profile_list[0].targets: ")
    assert "'hpc'" in problem


@pytest.mark.parametrize(
    "flag",
    [
        "--mail-user=a b",
        "--x;rm -rf /",
        "--x;rm",
        "--comment='hi'",
        '--comment="hi"',
        "--x=$(id)",
        "--x=`id`",
        "--x|y",
        "--x&",
        "exclusive",
        "--x\n--y",
    ],
)
def test_bad_slurm_extra_flag(contract_config, flag):
    contract_config["offload_targets"]["leonardo"]["slurm"]["extra_flags"] = ["--exclusive", flag]
    problem = only_problem(**contract_config)
    assert problem.startswith("offload_targets.leonardo.slurm.extra_flags[1]: ")


@pytest.mark.parametrize(
    "flag", ["--exclusive", "-N", "--gres=gpu:a100:1", "--constraint=a100,nvlink", "--mail-type=END"]
)
def test_good_slurm_extra_flags(contract_config, flag):
    contract_config["offload_targets"]["leonardo"]["slurm"]["extra_flags"] = [flag]
    assert build_catalog(**contract_config).offload_targets["leonardo"].slurm.extra_flags == [flag]


@pytest.mark.parametrize(
    "field, value", [("partition", "boost usr"), ("account", "a;b"), ("qos", "x'y"), ("time_limit", "4 hours")]
)
def test_bad_slurm_words(contract_config, field, value):
    contract_config["offload_targets"]["leonardo"]["slurm"][field] = value
    assert only_problem(**contract_config).startswith(f"offload_targets.leonardo.slurm.{field}: ")


def test_virtual_backend_without_node(contract_config):
    del contract_config["offload_targets"]["leonardo"]["node"]
    problem = only_problem(**contract_config)
    assert problem.startswith("offload_targets.leonardo: ")
    assert "'node'" in problem


def test_kubernetes_backend_with_node(contract_config):
    contract_config["offload_targets"]["cluster"]["node"] = "vk-x"
    problem = only_problem(**contract_config)
    assert problem.startswith("offload_targets.cluster: ")
    assert "node" in problem


def test_kubernetes_backend_with_dask_offload(contract_config):
    contract_config["offload_targets"]["cluster"]["offload"] = "dask"
    problem = only_problem(**contract_config)
    assert problem.startswith("offload_targets.cluster: ")
    assert "dask" in problem


def test_settings_for_another_backend(contract_config):
    contract_config["offload_targets"]["naples"]["slurm"] = {"partition": "x"}
    problem = only_problem(**contract_config)
    assert problem.startswith("offload_targets.naples: ")
    assert "slurm" in problem and "htcondor" in problem


def test_unknown_backend(contract_config):
    contract_config["offload_targets"]["naples"]["backend"] = "pbs"
    assert only_problem(**contract_config).startswith("offload_targets.naples.backend: ")


def test_bad_offload_mode(contract_config):
    contract_config["offload_targets"]["naples"]["offload"] = "everything"
    assert only_problem(**contract_config).startswith("offload_targets.naples.offload: ")


def test_bad_node_name(contract_config):
    contract_config["offload_targets"]["naples"]["node"] = "VK Naples"
    assert only_problem(**contract_config).startswith("offload_targets.naples.node: ")


def test_bad_hub_api_url(contract_config):
    contract_config["offload_targets"]["naples"]["hub_api_url"] = 'https://hub" onmouseover="x'
    assert only_problem(**contract_config).startswith("offload_targets.naples.hub_api_url: ")


def test_bad_target_slug(contract_config):
    contract_config["offload_targets"]["Bad Slug"] = {"display_name": "Bad"}
    problem = only_problem(**contract_config)
    assert problem.startswith("offload_targets.")
    assert "'Bad Slug'" in problem


def test_duplicate_profile_slugs(contract_config):
    second = dict(contract_config["profile_list"][0])
    contract_config["profile_list"].append(second)
    problem = only_problem(**contract_config)
    assert problem.startswith("profile_list[1].slug: ")
    assert "'analysis'" in problem


def test_duplicate_profile_slug_derived_from_display_name(contract_config):
    contract_config["profile_list"].append({"display_name": "Analysis"})
    problem = only_problem(**contract_config)
    assert problem.startswith("profile_list[1].slug: ")
    assert "'analysis'" in problem


def test_two_default_profiles():
    problem = only_problem(
        profile_list=[{"display_name": "A", "default": True}, {"display_name": "B", "default": True}]
    )
    assert problem.startswith("profile_list: ")
    assert "default" in problem


def test_two_default_choices():
    option = {
        "display_name": "Image",
        "choices": {"a": {"display_name": "A", "default": True}, "b": {"display_name": "B", "default": True}},
    }
    problem = only_problem(profile_list=[{"display_name": "P", "profile_options": {"image": option}}])
    assert problem.startswith("profile_list[0].profile_options.image: ")
    assert "default" in problem


def test_default_cores_not_in_choices(contract_config):
    contract_config["profile_list"][0]["cores"]["default"] = 3
    problem = only_problem(**contract_config)
    assert problem.startswith("profile_list[0].cores: ")
    assert "default 3" in problem


def test_default_memory_not_in_choices(contract_config):
    contract_config["profile_list"][0]["memory"]["default"] = "3G"
    problem = only_problem(**contract_config)
    assert problem.startswith("profile_list[0].memory: ")
    assert "3G" in problem


def test_cores_range_min_above_max(contract_config):
    contract_config["profile_list"][0]["cores"] = {"min": 8, "max": 2}
    problem = only_problem(**contract_config)
    assert problem.startswith("profile_list[0].cores: ")
    assert "min 8" in problem and "max 2" in problem


def test_memory_range_default_outside(contract_config):
    contract_config["profile_list"][0]["memory"] = {"min": "2G", "max": "8G", "default": "16G"}
    problem = only_problem(**contract_config)
    assert problem.startswith("profile_list[0].memory: ")
    assert "16G" in problem and "2G..8G" in problem


def test_cores_choices_and_range_together(contract_config):
    contract_config["profile_list"][0]["cores"] = {"choices": [1, 2], "min": 1, "max": 2}
    assert only_problem(**contract_config).startswith("profile_list[0].cores: ")


def test_cores_neither_choices_nor_range(contract_config):
    contract_config["profile_list"][0]["cores"] = {"default": 2}
    assert only_problem(**contract_config).startswith("profile_list[0].cores: ")


@pytest.mark.parametrize("key", sorted(RESERVED_KEYS))
def test_option_key_clashing_with_reserved_names(contract_config, key):
    contract_config["profile_list"][0]["profile_options"][key] = {
        "display_name": "Clash",
        "choices": {"a": {"display_name": "A"}},
    }
    problem = only_problem(**contract_config)
    assert problem.startswith("profile_list[0].profile_options: ")
    assert repr(key) in problem
    assert "clashes" in problem


def test_option_key_with_double_dash(contract_config):
    contract_config["profile_list"][0]["profile_options"]["image--x"] = {
        "display_name": "X",
        "choices": {"a": {"display_name": "A"}},
    }
    problem = only_problem(**contract_config)
    assert problem.startswith("profile_list[0]")
    assert "'--'" in problem


def test_option_without_choices_or_unlisted(contract_config):
    contract_config["profile_list"][0]["profile_options"]["image"] = {"display_name": "Image"}
    assert only_problem(**contract_config).startswith("profile_list[0].profile_options.image: ")


def test_bad_validation_regex(contract_config):
    contract_config["profile_list"][0]["profile_options"]["image"]["unlisted_choice"]["validation_regex"] = "(["
    problem = only_problem(**contract_config)
    assert problem.startswith("profile_list[0].profile_options.image.unlisted_choice.validation_regex: ")
    assert "regular expression" in problem


def test_bad_accelerator_resource_name(contract_config):
    contract_config["profile_list"][0]["accelerators"]["gpu"] = {"display_name": "GPU", "models": ["a100"]}
    problem = only_problem(**contract_config)
    assert problem.startswith("profile_list[0].accelerators.gpu")
    assert "'gpu'" in problem


def test_bad_accelerator_model(contract_config):
    contract_config["profile_list"][0]["accelerators"]["nvidia.com/gpu"]["models"] = ["a100", "h100 80GB"]
    assert only_problem(**contract_config).startswith("profile_list[0].accelerators.nvidia.com/gpu.models[1]: ")


def test_accelerator_without_models(contract_config):
    contract_config["profile_list"][0]["accelerators"]["nvidia.com/gpu"]["models"] = []
    assert only_problem(**contract_config).startswith("profile_list[0].accelerators.nvidia.com/gpu.models: ")


def test_negative_limit(contract_config):
    contract_config["group_limits"]["cms"]["cores"] = -1
    assert only_problem(**contract_config).startswith("group_limits.cms.cores: ")


def test_missing_display_name_is_required(contract_config):
    del contract_config["offload_targets"]["naples"]["display_name"]
    problem = only_problem(**contract_config)
    assert problem.startswith("offload_targets.naples.display_name: ")
    assert "required" in problem


def test_every_problem_is_reported(contract_config):
    contract_config["offload_targets"]["naples"]["limits"]["memory"] = "180GB"
    contract_config["group_limits"]["cms"]["cores"] = 0
    contract_config["offload_targets"]["leonardo"]["slurm"]["extra_flags"] = ["--a b"]
    problems = problems_of(**contract_config)
    paths = sorted(p.split(": ", 1)[0] for p in problems)
    assert paths == [
        "group_limits.cms.cores",
        "offload_targets.leonardo.slurm.extra_flags[0]",
        "offload_targets.naples.limits.memory",
    ]


def test_error_text_is_readable(contract_config):
    contract_config["offload_targets"]["naples"]["limits"]["memory"] = "180GB"
    with pytest.raises(CatalogError) as info:
        build_catalog(**contract_config)
    text = str(info.value)
    assert text.startswith("invalid offload_spawner configuration:")
    assert "\n  offload_targets.naples.limits.memory: " in text
    assert isinstance(info.value, ValueError)
