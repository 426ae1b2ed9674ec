"""offload_spawner.pipeline.menu: what one user may choose (what a user may
not use is not shown to them)."""

import dataclasses

import pytest

from offload_spawner.pipeline.catalog import build_catalog
from offload_spawner.pipeline.menu import Bounds, build_menu

GI = 2**30
GPU = "nvidia.com/gpu"
FPGA = "xilinx.com/fpga"


def choice_keys(profile, option="image"):
    return [c.key for c in profile.option(option).choices]


def target_slugs(profile):
    return [t.slug for t in profile.targets]


# --- the contract example -----------------------------------------------------------


def test_cms_user_sees_analysis_with_alma9_on_cluster_only(contract_catalog):
    menu = build_menu(contract_catalog, ["cms"])
    assert [p.slug for p in menu.profiles] == ["analysis"]
    analysis = menu.profile("analysis")
    assert choice_keys(analysis) == ["alma9"]  # 'offload' is highrate-only
    assert analysis.option("image").default == "alma9"
    assert analysis.option("image").unlisted is not None  # free text stays available (regex-checked)
    assert target_slugs(analysis) == ["cluster"]  # naples: highrate; leonardo: ai-infn
    assert analysis.default_target == "cluster"
    assert menu.default_profile == "analysis"


def test_cms_user_memory_is_capped_at_their_group_limit(contract_catalog):
    cluster = build_menu(contract_catalog, ["cms"]).profile("analysis").target("cluster")
    assert cluster.memory.choices == tuple(n * GI for n in (2, 4, 8, 16, 32))  # 64G is above cms's 32G
    assert cluster.memory.cap == 32 * GI
    assert cluster.memory.default == 4 * GI
    assert cluster.cores.choices == (1, 2, 4, 8)  # cms allows 8: nothing cut
    assert cluster.cores.cap is None


def test_highrate_user_sees_offload_image_and_naples(contract_catalog):
    analysis = build_menu(contract_catalog, ["highrate"]).profile("analysis")
    assert choice_keys(analysis) == ["alma9", "offload"]
    assert target_slugs(analysis) == ["cluster", "naples"]
    naples = analysis.target("naples")
    assert naples.display_name == "INFN Naples (HTCondor)"
    assert naples.offload == "dask"
    assert naples.backend == "htcondor"
    assert naples.memory.choices[-1] == 64 * GI  # highrate has no group limit; naples allows 180G
    assert naples.accelerators == ()  # naples lists no accelerators


def test_gpu_user_on_leonardo_gets_two_gpus_and_no_fpga(contract_catalog):
    analysis = build_menu(contract_catalog, ["cms", "ai-infn", "gpu-users"]).profile("analysis")
    assert target_slugs(analysis) == ["cluster", "leonardo"]
    leonardo = analysis.target("leonardo")
    assert leonardo.display_name == "CINECA Leonardo (SLURM)"
    assert leonardo.offload == "session"
    gpu = leonardo.accelerator(GPU)
    assert gpu is not None
    assert gpu.max == 2  # gpu-users 2 < leonardo 4 < profile 4
    assert gpu.models == ("t4", "a100")
    assert gpu.display_name == "NVIDIA GPU"
    assert gpu.model_label == "nvidia-gpu-type"
    assert leonardo.accelerator(FPGA) is None  # leonardo lists only nvidia.com/gpu
    assert [a.resource for a in leonardo.accelerators] == [GPU]
    # the cluster target lists no accelerators at all
    assert analysis.target("cluster").accelerators == ()


def test_leonardo_fpga_stays_hidden_even_for_fpga_group(contract_config):
    contract_config["group_limits"]["fpga-users"] = {"accelerators": {FPGA: 2}}
    catalog = build_catalog(**contract_config)
    leonardo = build_menu(catalog, ["cms", "ai-infn", "fpga-users", "gpu-users"]).profile("analysis").target("leonardo")
    assert leonardo.accelerator(FPGA) is None
    assert leonardo.accelerator(GPU).max == 2


def test_ai_infn_without_gpu_group_gets_no_gpu(contract_catalog):
    analysis = build_menu(contract_catalog, ["cms", "ai-infn"]).profile("analysis")
    assert analysis.target("leonardo").accelerators == ()


def test_user_with_no_groups_sees_no_profile(contract_catalog):
    menu = build_menu(contract_catalog, [])
    assert menu.profiles == ()
    assert menu.default_profile is None
    assert build_menu(contract_catalog, ["students"]).profiles == ()


def test_ai_infn_only_user_does_not_see_cms_profile(contract_catalog):
    # analysis is for cms and highrate only; leonardo alone does not make it visible
    assert build_menu(contract_catalog, ["ai-infn", "gpu-users"]).profiles == ()


def test_menu_carries_no_override_or_admin_setting(contract_catalog):
    """Nothing the browser must not see is in the menu (it is all the form gets)."""
    for groups in (["cms"], ["highrate"], ["cms", "ai-infn", "gpu-users"]):
        text = repr(build_menu(contract_catalog, groups))
        for secret in (
            "ghcr.io/org/alma9:1.0",
            "ghcr.io/org/offload:1.0",
            "kubespawner_override",
            "boost_usr_prod",
            "icsc_ai",
            "vk-leonardo",
            "hub.example.org",
        ):
            assert secret not in text, (groups, secret)


# --- cores / memory bounds --------------------------------------------------------------


def one_profile_catalog(group_limits=None, default_limits=None, **profile):
    profile.setdefault("display_name", "P")
    profile.setdefault("slug", "p")
    return build_catalog(profile_list=[profile], group_limits=group_limits, default_limits=default_limits)


def test_cores_choices_above_the_ceiling_are_dropped():
    cat = one_profile_catalog({"small": {"cores": 3}}, cores={"choices": [1, 2, 4, 8], "default": 2})
    cores = build_menu(cat, ["small"]).profile("p").targets[0].cores
    assert cores.choices == (1, 2)
    assert cores.default == 2
    assert cores.cap == 3
    assert not cores.allows(4)


def test_default_above_the_ceiling_falls_to_the_largest_allowed():
    cat = one_profile_catalog({"tiny": {"cores": 2}}, cores={"choices": [1, 2, 4, 8], "default": 4})
    cores = build_menu(cat, ["tiny"]).profile("p").targets[0].cores
    assert cores.choices == (1, 2)
    assert cores.default == 2


def test_no_choice_fits_hides_the_profile():
    cat = one_profile_catalog({"tiny": {"cores": 1}}, cores={"choices": [2, 4]})
    assert build_menu(cat, ["tiny"]).profiles == ()
    assert [p.slug for p in build_menu(cat, ["other"]).profiles] == ["p"]


def test_memory_range_is_cut_at_the_ceiling():
    cat = one_profile_catalog({"g": {"memory": "12G"}}, memory={"min": "2G", "max": "64G", "default": "16G"})
    memory = build_menu(cat, ["g"]).profile("p").targets[0].memory
    assert (memory.min, memory.max) == (2 * GI, 12 * GI)
    assert memory.default == 12 * GI  # clamped into the range
    assert memory.cap == 12 * GI
    assert memory.allows(12 * GI) and not memory.allows(13 * GI) and not memory.allows(1 * GI)


def test_range_below_min_hides_the_profile():
    cat = one_profile_catalog({"g": {"memory": "1G"}}, memory={"min": "2G", "max": "64G"})
    assert build_menu(cat, ["g"]).profiles == ()


def test_range_not_cut_has_no_cap():
    cat = one_profile_catalog({"g": {"cores": 64}}, cores={"min": 1, "max": 16})
    cores = build_menu(cat, ["g"]).profile("p").targets[0].cores
    assert (cores.min, cores.max, cores.default, cores.cap) == (1, 16, 1, None)


def test_profile_without_cores_offers_none():
    cat = one_profile_catalog()
    target = build_menu(cat, []).profile("p").targets[0]
    assert target.cores is None and target.memory is None and target.accelerators == ()


def test_bounds_allows():
    assert Bounds(choices=(1, 2), min=None, max=None, default=1).allows(2)
    assert not Bounds(choices=(1, 2), min=None, max=None, default=1).allows(1.5)
    assert Bounds(choices=None, min=1, max=4, default=1).allows(2.5)
    assert not Bounds(choices=None, min=1, max=4, default=1).allows(4.5)


# --- visibility ---------------------------------------------------------------------------


def test_plain_kubespawner_profiles_without_targets():
    cat = build_catalog(
        profile_list=[
            {"display_name": "One", "slug": "one"},
            {"display_name": "Two", "slug": "two", "default": True},
        ]
    )
    menu = build_menu(cat, [])
    assert [p.slug for p in menu.profiles] == ["one", "two"]
    assert menu.default_profile == "two"
    (target,) = menu.profile("one").targets
    assert target.slug is None and target.offload == "none"
    assert menu.profile("one").default_target is None


def test_hidden_default_choice_falls_back_to_first_visible():
    cat = one_profile_catalog(
        profile_options={
            "image": {
                "display_name": "Image",
                "choices": {
                    "a": {"display_name": "A"},
                    "b": {"display_name": "B", "default": True, "allowed_groups": ["staff"]},
                },
            }
        }
    )
    assert build_menu(cat, ["staff"]).profile("p").option("image").default == "b"
    student = build_menu(cat, ["student"]).profile("p").option("image")
    assert [c.key for c in student.choices] == ["a"]
    assert student.default == "a"


def test_option_with_nothing_visible_hides_the_profile():
    cat = one_profile_catalog(
        profile_options={
            "image": {"display_name": "Image", "choices": {"a": {"display_name": "A", "allowed_groups": ["staff"]}}}
        }
    )
    assert build_menu(cat, ["student"]).profiles == ()
    assert len(build_menu(cat, ["staff"]).profiles) == 1


def test_hidden_default_profile_is_not_default():
    cat = build_catalog(
        profile_list=[
            {"display_name": "Public", "slug": "public"},
            {"display_name": "Staff", "slug": "staff", "default": True, "allowed_groups": ["staff"]},
        ]
    )
    assert build_menu(cat, ["staff"]).default_profile == "staff"
    student = build_menu(cat, ["student"])
    assert [p.slug for p in student.profiles] == ["public"]
    assert student.default_profile == "public"


def test_empty_allowed_groups_means_nobody():
    cat = build_catalog(profile_list=[{"display_name": "Closed", "allowed_groups": []}])
    assert build_menu(cat, ["anything"]).profiles == ()


def test_profile_whose_targets_are_all_hidden_is_hidden(contract_config):
    contract_config["profile_list"][0]["targets"] = ["naples"]
    catalog = build_catalog(**contract_config)
    assert build_menu(catalog, ["cms"]).profiles == ()
    assert [t.slug for t in build_menu(catalog, ["highrate"]).profile("analysis").targets] == ["naples"]


@pytest.mark.parametrize(
    "resource, label", [(GPU, "nvidia-gpu-type"), (FPGA, "xilinx-fpga-type"), ("intel.com/fpga", "intel-fpga-type")]
)
def test_default_model_labels(resource, label):
    cat = one_profile_catalog(accelerators={resource: {"display_name": "A", "models": ["m1"], "max": 2}})
    (acc,) = build_menu(cat, []).profile("p").targets[0].accelerators
    assert acc.model_label == label
    assert acc.max == 2


def test_admin_model_label_wins():
    cat = one_profile_catalog(
        accelerators={GPU: {"display_name": "A", "models": ["m1"], "model_label": "gpu.example.org/model"}}
    )
    (acc,) = build_menu(cat, []).profile("p").targets[0].accelerators
    assert acc.model_label == "gpu.example.org/model"


def test_menu_is_immutable(contract_catalog):
    menu = build_menu(contract_catalog, ["cms"])
    with pytest.raises(dataclasses.FrozenInstanceError):
        menu.default_profile = "x"  # type: ignore[misc]
