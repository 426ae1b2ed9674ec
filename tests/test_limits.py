"""offload_spawner.pipeline.limits: a user's ceiling from their groups, capped by a target.

The rules are in the module docstring: most generous among
the user's groups, field by field; else default_limits; an accelerator named in
any group_limits entry is reserved to the groups naming it; a target caps
cores/memory only when it sets them and offers only the accelerators it lists.
"""

import pytest

from offload_spawner.pipeline.catalog import build_catalog
from offload_spawner.pipeline.limits import Ceiling, target_ceiling, user_ceiling

GI = 2**30
GPU = "nvidia.com/gpu"
FPGA = "xilinx.com/fpga"


def catalog(group_limits=None, default_limits=None, targets=None):
    return build_catalog(offload_targets=targets or {}, group_limits=group_limits, default_limits=default_limits)


# --- user_ceiling ------------------------------------------------------------------


def test_most_generous_group_wins_field_by_field():
    cat = catalog({"small": {"cores": 4, "memory": "64G"}, "big": {"cores": 16, "memory": "8G"}})
    ceiling = user_ceiling(cat, ["small", "big"])
    assert ceiling.cores == 16  # from "big"
    assert ceiling.memory == 64 * GI  # from "small"


def test_group_that_does_not_set_a_field_does_not_lift_it():
    cat = catalog({"cpu": {"cores": 4}, "mem": {"memory": "8G"}})
    ceiling = user_ceiling(cat, ["cpu", "mem"])
    assert (ceiling.cores, ceiling.memory) == (4, 8 * GI)


def test_order_of_groups_does_not_matter():
    cat = catalog({"a": {"cores": 2}, "b": {"cores": 6}, "c": {"cores": 3}})
    assert user_ceiling(cat, ["a", "b", "c"]).cores == user_ceiling(cat, ["c", "b", "a"]).cores == 6


def test_groups_without_entry_are_ignored():
    cat = catalog({"cms": {"cores": 8}})
    assert user_ceiling(cat, ["cms", "students", "staff"]).cores == 8


def test_default_limits_apply_to_fields_no_group_sets():
    cat = catalog({"cms": {"cores": 8}}, default_limits={"cores": 2, "memory": "4G"})
    cms = user_ceiling(cat, ["cms"])
    assert cms.cores == 8  # group beats default, even when more generous
    assert cms.memory == 4 * GI  # no group sets memory: default
    nobody = user_ceiling(cat, [])
    assert (nobody.cores, nobody.memory) == (2, 4 * GI)


def test_group_may_be_less_generous_than_default():
    # "else default_limits": the default applies only when no group sets the field.
    cat = catalog({"restricted": {"cores": 1}}, default_limits={"cores": 4})
    assert user_ceiling(cat, ["restricted"]).cores == 1


def test_no_group_and_no_default_caps_nothing():
    cat = catalog({"cms": {"cores": 8}})
    ceiling = user_ceiling(cat, ["other"])
    assert ceiling.cores is None and ceiling.memory is None
    assert ceiling.accelerator_cap(GPU) is None


def test_accelerator_named_in_a_group_is_withheld_from_other_groups():
    cat = catalog({"cms": {"cores": 8}, "gpu-users": {"accelerators": {GPU: 2}}})
    assert user_ceiling(cat, ["gpu-users"]).accelerator_cap(GPU) == 2
    assert user_ceiling(cat, ["cms"]).accelerator_cap(GPU) == 0
    assert user_ceiling(cat, []).accelerator_cap(GPU) == 0
    # a resource no group names is not capped by groups
    assert user_ceiling(cat, ["cms"]).accelerator_cap(FPGA) is None


def test_accelerator_reserved_by_a_zero_entry_is_still_reserved():
    cat = catalog({"nobody-gets": {"accelerators": {GPU: 0}}})
    assert user_ceiling(cat, ["other"]).accelerator_cap(GPU) == 0


def test_most_generous_accelerator_count():
    cat = catalog({"a": {"accelerators": {GPU: 1}}, "b": {"accelerators": {GPU: 4, FPGA: 1}}})
    ceiling = user_ceiling(cat, ["a", "b"])
    assert ceiling.accelerator_cap(GPU) == 4
    assert ceiling.accelerator_cap(FPGA) == 1
    only_a = user_ceiling(cat, ["a"])
    assert only_a.accelerator_cap(GPU) == 1
    assert only_a.accelerator_cap(FPGA) == 0  # named by "b" only


def test_default_limits_accelerators():
    cat = catalog({"gpu-users": {"accelerators": {GPU: 4}}}, default_limits={"accelerators": {GPU: 1}})
    assert user_ceiling(cat, ["gpu-users"]).accelerator_cap(GPU) == 4
    # "else default_limits": the default grants what groups reserve
    assert user_ceiling(cat, ["cms"]).accelerator_cap(GPU) == 1
    # a default that lists accelerators closes the ones it does not list
    assert user_ceiling(cat, ["cms"]).accelerator_cap(FPGA) == 0


def test_contract_groups(contract_catalog):
    cms = user_ceiling(contract_catalog, ["cms"])
    assert (cms.cores, cms.memory) == (8, 32 * GI)
    assert cms.accelerator_cap(GPU) == 0  # gpu-users names it
    gpu = user_ceiling(contract_catalog, ["cms", "gpu-users"])
    assert (gpu.cores, gpu.memory, gpu.accelerator_cap(GPU)) == (8, 32 * GI, 2)
    highrate = user_ceiling(contract_catalog, ["highrate"])
    assert highrate.cores is None and highrate.memory is None


# --- target_ceiling ------------------------------------------------------------------


TARGETS = {
    "big": {
        "display_name": "Big",
        "backend": "slurm",
        "node": "vk-big",
        "limits": {"cores": 32, "memory": "480G", "accelerators": {GPU: 4}},
    },
    "open": {"display_name": "Open", "backend": "htcondor", "node": "vk-open"},
    "memonly": {"display_name": "Mem", "backend": "docker", "node": "vk-mem", "limits": {"memory": "16G"}},
}


def test_target_caps_cores_and_memory_it_sets():
    cat = catalog({"cms": {"cores": 64, "memory": "8G"}}, targets=TARGETS)
    ceiling = target_ceiling(user_ceiling(cat, ["cms"]), cat.offload_targets["big"])
    assert ceiling.cores == 32  # target is lower
    assert ceiling.memory == 8 * GI  # user is lower


def test_target_caps_an_uncapped_user():
    cat = catalog(targets=TARGETS)
    ceiling = target_ceiling(user_ceiling(cat, []), cat.offload_targets["big"])
    assert (ceiling.cores, ceiling.memory) == (32, 480 * GI)


def test_target_without_limits_does_not_cap_cores_or_memory():
    cat = catalog({"cms": {"cores": 8}}, targets=TARGETS)
    ceiling = target_ceiling(user_ceiling(cat, ["cms"]), cat.offload_targets["open"])
    assert ceiling.cores == 8
    assert ceiling.memory is None
    uncapped = target_ceiling(user_ceiling(cat, []), cat.offload_targets["open"])
    assert uncapped.cores is None and uncapped.memory is None


def test_target_capping_only_memory_leaves_cores_alone():
    cat = catalog({"cms": {"cores": 8, "memory": "64G"}}, targets=TARGETS)
    ceiling = target_ceiling(user_ceiling(cat, ["cms"]), cat.offload_targets["memonly"])
    assert (ceiling.cores, ceiling.memory) == (8, 16 * GI)


def test_target_offers_only_the_accelerators_it_lists():
    cat = catalog(targets=TARGETS)
    user = user_ceiling(cat, [])
    assert user.accelerator_cap(FPGA) is None  # the user is not capped...
    big = target_ceiling(user, cat.offload_targets["big"])
    assert big.accelerator_cap(GPU) == 4
    assert big.accelerator_cap(FPGA) == 0  # ...but "big" does not list FPGAs
    open_ = target_ceiling(user, cat.offload_targets["open"])
    assert open_.accelerator_cap(GPU) == 0  # no limits.accelerators: none offered


@pytest.mark.parametrize("groups, expected", [(["gpu-users"], 2), (["power"], 4), (["cms"], 0)])
def test_target_accelerators_capped_by_the_user(groups, expected):
    cat = catalog({"gpu-users": {"accelerators": {GPU: 2}}, "power": {"accelerators": {GPU: 16}}}, targets=TARGETS)
    ceiling = target_ceiling(user_ceiling(cat, groups), cat.offload_targets["big"])
    assert ceiling.accelerator_cap(GPU) == expected


def test_contract_leonardo_for_gpu_users(contract_catalog):
    leonardo = contract_catalog.offload_targets["leonardo"]
    ceiling = target_ceiling(user_ceiling(contract_catalog, ["ai-infn", "gpu-users"]), leonardo)
    assert ceiling.accelerator_cap(GPU) == 2  # gpu-users 2 < leonardo 4
    assert ceiling.accelerator_cap(FPGA) == 0  # leonardo lists only nvidia.com/gpu
    assert ceiling.cores == 32 and ceiling.memory == 480 * GI
    without_gpu_group = target_ceiling(user_ceiling(contract_catalog, ["ai-infn"]), leonardo)
    assert without_gpu_group.accelerator_cap(GPU) == 0


def test_ceiling_accelerator_cap_semantics():
    assert Ceiling().accelerator_cap(GPU) is None
    assert Ceiling(closed=True).accelerator_cap(GPU) == 0
    assert Ceiling(withheld=frozenset({GPU})).accelerator_cap(GPU) == 0
    assert Ceiling(accelerators={GPU: 3}, closed=True).accelerator_cap(GPU) == 3
