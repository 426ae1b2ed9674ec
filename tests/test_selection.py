"""offload_spawner.pipeline.selection: every refusal of a selection ("what a user may not
use ... is refused if posted anyway"), with a message a user understands and
the user_options key at fault."""

import pytest

from offload_spawner.pipeline.catalog import build_catalog
from offload_spawner.pipeline.menu import build_menu
from offload_spawner.pipeline.selection import MAX_TEXT, OptionPick, Selection, SelectionError, select

GI = 2**30
GPU = "nvidia.com/gpu"
CMS = ["cms"]
HIGHRATE = ["highrate"]
GPU_USER = ["cms", "ai-infn", "gpu-users"]


@pytest.fixture
def menu_for(contract_catalog):
    def make(groups):
        return build_menu(contract_catalog, groups)

    return make


def refused(menu, user_options) -> SelectionError:
    with pytest.raises(SelectionError) as info:
        select(menu, user_options)
    error = info.value
    # a readable sentence: starts with a capital or a quoted value, ends with a full stop
    assert error.message.endswith("."), error.message
    assert str(error) == error.message
    assert "Traceback" not in error.message
    return error


# --- accepted ---------------------------------------------------------------------------


@pytest.mark.parametrize("user_options", [None, {}])
def test_empty_user_options_give_the_defaults(menu_for, user_options):
    selection = select(menu_for(CMS), user_options)
    assert selection == Selection(
        profile="analysis",
        target="cluster",
        options={"image": OptionPick(choice="alma9")},
        cores=2,
        memory=4 * GI,
    )
    assert selection.accelerator is None and selection.accelerator_count == 0


def test_contract_example_user_options(menu_for):
    # The documented user_options example, for a user allowed to use leonardo and a GPU
    options = {
        "profile": "analysis",
        "image": "alma9",
        "cores": 4,
        "memory": "8G",
        "accelerator": "nvidia.com/gpu:a100",
        "accelerator_count": 1,
        "target": "leonardo",
    }
    selection = select(menu_for(GPU_USER), options)
    assert selection.target == "leonardo"
    assert selection.cores == 4
    assert selection.memory == 8 * GI
    assert (selection.accelerator, selection.accelerator_model, selection.accelerator_count) == (GPU, "a100", 1)
    assert selection.to_user_options() == options


@pytest.mark.parametrize("cores", [4, 4.0, "4", "4.0", " 4 "])
def test_cores_may_arrive_as_strings(menu_for, cores):
    assert select(menu_for(CMS), {"cores": cores}).cores == 4


@pytest.mark.parametrize("memory", ["8G", "8", 8, "8.0", "8Gi", "8192M"])
def test_memory_forms(menu_for, memory):
    # a bare number is gigabytes (the form's number input)
    assert select(menu_for(CMS), {"memory": memory}).memory == 8 * GI


@pytest.mark.parametrize("count", ["2", 2, "2.0", 2.0])
def test_accelerator_count_may_arrive_as_string(menu_for, count):
    selection = select(
        menu_for(GPU_USER), {"target": "leonardo", "accelerator": "nvidia.com/gpu:t4", "accelerator_count": count}
    )
    assert selection.accelerator_count == 2


def test_accelerator_count_defaults_to_one(menu_for):
    selection = select(menu_for(GPU_USER), {"target": "leonardo", "accelerator": "nvidia.com/gpu:a100"})
    assert selection.accelerator_count == 1


@pytest.mark.parametrize("none", ["none", "", None])
def test_no_accelerator(menu_for, none):
    selection = select(menu_for(GPU_USER), {"target": "leonardo", "accelerator": none, "accelerator_count": "0"})
    assert selection.accelerator is None and selection.accelerator_count == 0


def test_listed_unlisted_choice(menu_for):
    selection = select(menu_for(CMS), {"image--unlisted-choice": "ghcr.io/org/custom/env:2.1"})
    assert selection.options["image"] == OptionPick(unlisted="ghcr.io/org/custom/env:2.1")
    assert selection.to_user_options()["image--unlisted-choice"] == "ghcr.io/org/custom/env:2.1"
    assert "image" not in selection.to_user_options()


def test_highrate_may_choose_offload_image_and_naples(menu_for):
    selection = select(menu_for(HIGHRATE), {"image": "offload", "target": "naples", "memory": "64G"})
    assert selection.options["image"].choice == "offload"
    assert selection.target == "naples"
    assert selection.memory == 64 * GI


def test_round_trip_through_user_options(menu_for):
    menu = menu_for(GPU_USER)
    selection = select(
        menu,
        {
            "target": "leonardo",
            "cores": "8",
            "memory": "16G",
            "accelerator": "nvidia.com/gpu:t4",
            "accelerator_count": "2",
        },
    )
    assert select(menu, selection.to_user_options()) == selection


# --- refused: what the user may not use ---------------------------------------------------


def test_hidden_profile_is_refused_like_a_missing_one(contract_config):
    contract_config["profile_list"].append(
        {"display_name": "Admin tools", "slug": "admin", "allowed_groups": ["admins"]}
    )
    menu = build_menu(build_catalog(**contract_config), CMS)
    hidden = refused(menu, {"profile": "admin"})
    missing = refused(menu, {"profile": "nonexistent"})
    assert hidden.field == missing.field == "profile"
    assert "'admin'" in hidden.message
    assert hidden.message.replace("'admin'", "X") == missing.message.replace("'nonexistent'", "X")
    assert "Admin tools" not in hidden.message  # nothing of the hidden profile leaks


def test_user_without_profiles_is_refused(menu_for):
    error = refused(menu_for([]), {})
    assert "no server configuration" in error.message


def test_hidden_choice_is_refused(menu_for):
    error = refused(menu_for(CMS), {"image": "offload"})
    assert error.field == "image"
    assert "'offload' is not a choice for Image" in error.message
    assert "AlmaLinux 9" in error.message  # what they may choose instead
    assert "Dask offload" not in error.message  # the hidden choice is not revealed


@pytest.mark.parametrize("key", ["nonexistent", "../alma9", "alma9x", "ALMA9", "__other__", "{0}"])
def test_tampered_choice_key_is_a_selection_error(menu_for, key):
    error = refused(menu_for(CMS), {"image": key})
    assert error.field == "image"
    assert isinstance(error, ValueError) and not isinstance(error, KeyError)


def test_hidden_target_is_refused(menu_for):
    error = refused(menu_for(CMS), {"target": "naples"})
    assert error.field == "target"
    assert "'naples'" in error.message
    assert "This cluster" in error.message  # the choice they have
    assert "INFN Naples" not in error.message


def test_unknown_target_is_refused(menu_for):
    error = refused(menu_for(HIGHRATE), {"target": "mars"})
    assert error.field == "target"
    assert "This cluster" in error.message and "INFN Naples (HTCondor)" in error.message


def test_cores_not_a_choice(menu_for):
    error = refused(menu_for(CMS), {"cores": 3})
    assert error.field == "cores"
    assert "3 cores is not one of the choices" in error.message
    assert "1 core, 2 cores, 4 cores, 8 cores" in error.message


def test_cores_above_the_profile_maximum(menu_for):
    error = refused(menu_for(HIGHRATE), {"cores": "16"})
    assert error.field == "cores"
    assert "16 cores is above the maximum of 8 cores" in error.message


def test_memory_above_the_group_limit(menu_for):
    error = refused(menu_for(CMS), {"memory": "64G"})
    assert error.field == "memory"
    assert "64G is above your limit of 32G" in error.message
    assert "on This cluster" in error.message


def test_memory_below_the_range_minimum():
    cat = build_catalog(profile_list=[{"display_name": "P", "memory": {"min": "2G", "max": "8G"}}])
    error = refused(build_menu(cat, []), {"memory": "1G"})
    assert error.field == "memory"
    assert "1G is below the minimum of 2G" in error.message


def test_contract_message_for_a_target_cap():
    """The documented message: "8 cores is above your limit of 4 on INFN Naples"."""
    cat = build_catalog(
        profile_list=[{"display_name": "P", "cores": {"min": 1, "max": 16}}],
        offload_targets={
            "naples": {
                "display_name": "INFN Naples",
                "backend": "htcondor",
                "node": "vk-naples",
                "limits": {"cores": 4},
            }
        },
    )
    error = refused(build_menu(cat, []), {"cores": 8, "target": "naples"})
    assert error.field == "cores"
    assert error.message == "8 cores is above your limit of 4 cores on INFN Naples."


def test_group_cap_on_a_range():
    cat = build_catalog(
        profile_list=[{"display_name": "P", "cores": {"min": 1, "max": 16}}], group_limits={"cms": {"cores": 4}}
    )
    error = refused(build_menu(cat, ["cms"]), {"cores": "4.5"})
    assert error.field == "cores"
    assert "4.5 cores is above your limit of 4 cores" in error.message


def test_cores_for_a_profile_without_cores():
    cat = build_catalog(profile_list=[{"display_name": "P"}])
    error = refused(build_menu(cat, []), {"cores": 2})
    assert error.field == "cores"
    assert "cannot be chosen" in error.message


def test_accelerator_count_above_the_limit(menu_for):
    error = refused(
        menu_for(GPU_USER), {"target": "leonardo", "accelerator": "nvidia.com/gpu:a100", "accelerator_count": 3}
    )
    assert error.field == "accelerator_count"
    assert "above your limit of 2" in error.message
    assert "CINECA Leonardo (SLURM)" in error.message


@pytest.mark.parametrize("count", [0, "0"])
def test_zero_accelerators_with_an_accelerator(menu_for, count):
    error = refused(
        menu_for(GPU_USER), {"target": "leonardo", "accelerator": "nvidia.com/gpu:a100", "accelerator_count": count}
    )
    assert error.field == "accelerator_count"


@pytest.mark.parametrize("count", ["1.5", "-1", True, [1], "one"])
def test_bad_accelerator_count(menu_for, count):
    error = refused(
        menu_for(GPU_USER), {"target": "leonardo", "accelerator": "nvidia.com/gpu:a100", "accelerator_count": count}
    )
    assert error.field == "accelerator_count"


def test_accelerator_not_on_this_target(menu_for):
    # leonardo lists only nvidia.com/gpu: the profile's FPGA is not offered there
    error = refused(menu_for(GPU_USER), {"target": "leonardo", "accelerator": "xilinx.com/fpga:u55c"})
    assert error.field == "accelerator"
    assert "is not available to you on CINECA Leonardo (SLURM)" in error.message
    assert "NVIDIA GPU a100" in error.message


def test_accelerator_withheld_from_the_user(menu_for):
    error = refused(menu_for(["cms", "ai-infn"]), {"target": "leonardo", "accelerator": "nvidia.com/gpu:a100"})
    assert error.field == "accelerator"
    assert "no accelerators are offered to you" in error.message


@pytest.mark.parametrize("value", ["nvidia.com/gpu:h100", "nvidia.com/gpu", "a100", ":a100"])
def test_unknown_accelerator_model(menu_for, value):
    error = refused(menu_for(GPU_USER), {"target": "leonardo", "accelerator": value})
    assert error.field == "accelerator"


def test_count_without_accelerator(menu_for):
    error = refused(menu_for(GPU_USER), {"target": "leonardo", "accelerator_count": 2})
    assert error.field == "accelerator"
    assert "Choose an accelerator" in error.message


@pytest.mark.parametrize("key", ["gpu", "image_spec", "kubespawner_override", "cmd", "Profile"])
def test_unknown_key_is_refused(menu_for, key):
    error = refused(menu_for(CMS), {key: "x"})
    assert error.field == key
    assert f"Unknown option '{key}'" in error.message


# --- unlisted free text -----------------------------------------------------------------------


def test_unlisted_text_failing_regex(menu_for):
    error = refused(menu_for(CMS), {"image--unlisted-choice": "docker.io/evil/miner:latest"})
    assert error.field == "image--unlisted-choice"
    assert "'docker.io/evil/miner:latest' is not an allowed Image" in error.message


def unlisted_catalog(regex=None, message=""):
    unlisted = {"enabled": True, "kubespawner_override": {"image": "{value}"}, "validation_message": message}
    if regex is not None:
        unlisted["validation_regex"] = regex
    return build_catalog(
        profile_list=[
            {
                "display_name": "P",
                "slug": "p",
                "profile_options": {"image": {"display_name": "Image", "unlisted_choice": unlisted}},
            }
        ]
    )


def test_regex_must_match_the_whole_text():
    menu = build_menu(unlisted_catalog(r"ghcr\.io/org/[a-z]+"), [])
    assert select(menu, {"image--unlisted-choice": "ghcr.io/org/abc"}).options["image"].unlisted == "ghcr.io/org/abc"
    # "ghcr.io/org/abc" is a matching prefix; the rest must not slip through
    error = refused(menu, {"image--unlisted-choice": "ghcr.io/org/abc:evil"})
    assert error.field == "image--unlisted-choice"


def test_admin_validation_message_is_used():
    menu = build_menu(unlisted_catalog(r"ghcr\.io/.+", "Use an image from ghcr.io."), [])
    assert refused(menu, {"image--unlisted-choice": "quay.io/x"}).message == "Use an image from ghcr.io."


@pytest.mark.parametrize("text", ["ghcr.io/{x}", "ghcr.io/org/x:{0}", "{value}", "a}b", "a{{b"])
def test_braces_are_refused(text):
    menu = build_menu(unlisted_catalog(), [])  # no regex: only the text rules apply
    error = refused(menu, {"image--unlisted-choice": text})
    assert error.field == "image--unlisted-choice"
    assert "braces" in error.message


@pytest.mark.parametrize("text", ["ghcr.io/a b", "ghcr.io/a\tb", "ghcr.io/a\x00b", "ghcr.io/a\nb"])
def test_spaces_and_control_characters_are_refused(text):
    error = refused(build_menu(unlisted_catalog(), []), {"image--unlisted-choice": text})
    assert error.field == "image--unlisted-choice"


def test_overlong_text_is_refused():
    error = refused(build_menu(unlisted_catalog(), []), {"image--unlisted-choice": "a" * (MAX_TEXT + 1)})
    assert error.field == "image--unlisted-choice"
    assert str(MAX_TEXT) in error.message
    assert len(error.message) < 200  # the text is not echoed back in full


def test_unlisted_only_option_needs_a_value():
    error = refused(build_menu(unlisted_catalog(), []), {})
    assert error.field == "image--unlisted-choice"
    assert "Please enter a value for Image" in error.message


def test_unlisted_text_where_not_enabled():
    cat = build_catalog(
        profile_list=[
            {
                "display_name": "P",
                "profile_options": {"image": {"display_name": "Image", "choices": {"a": {"display_name": "A"}}}},
            }
        ]
    )
    error = refused(build_menu(cat, []), {"image--unlisted-choice": "anything"})
    assert error.field == "image--unlisted-choice"
    assert "does not accept a value of your own" in error.message


# --- wrong types ---------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["cores", "memory"])
@pytest.mark.parametrize("value", [True, False, [4], ["8G"], {"n": 4}])
def test_bool_and_list_numbers_are_refused(menu_for, key, value):
    error = refused(menu_for(CMS), {key: value})
    assert error.field == key


@pytest.mark.parametrize("key", ["profile", "target", "image", "accelerator", "image--unlisted-choice"])
@pytest.mark.parametrize("value", [True, ["alma9"], {"a": 1}])
def test_non_scalar_text_is_refused(menu_for, key, value):
    error = refused(menu_for(GPU_USER), {key: value})
    assert error.field == key
    assert error.message == f"{key} must be a single value."


@pytest.mark.parametrize("cores", ["-4", "four", "4 cores", "nan", "inf", "1e1"])
def test_non_numbers_are_refused(menu_for, cores):
    error = refused(menu_for(CMS), {"cores": cores})
    assert error.field == "cores"
    assert "Cores" in error.message


def test_bad_memory_text(menu_for):
    error = refused(menu_for(CMS), {"memory": "8GB"})
    assert error.field == "memory"
    assert "Memory" in error.message and "'8GB'" in error.message


def test_user_options_must_be_a_mapping(menu_for):
    with pytest.raises(SelectionError):
        select(menu_for(CMS), ["profile", "analysis"])  # type: ignore[arg-type]


def test_long_values_are_cut_in_messages(menu_for):
    error = refused(menu_for(CMS), {"image": "x" * 400})
    assert len(error.message) < 200
