"""offload_spawner.backends: the interLink annotations each plugin reads, built
from typed admin settings and validated numbers only."""

import pytest

from offload_spawner.backends import ADAPTERS, adapter_for
from offload_spawner.pipeline.catalog import Backend, build_catalog
from offload_spawner.pipeline.menu import build_menu
from offload_spawner.pipeline.plan import build_plan
from offload_spawner.pipeline.selection import OptionPick, Selection, select

MARKER = "ghcr.io/org/zz-user-marker:9.9"

TARGETS = {
    "slurm": {
        "display_name": "SLURM",
        "backend": "slurm",
        "node": "vk-slurm",
        "limits": {"accelerators": {"nvidia.com/gpu": 4}},
        "slurm": {
            "partition": "boost_usr_prod",
            "account": "icsc_ai",
            "qos": "normal",
            "time_limit": "1-00:00:00",
            "flavor": "gpu",
            "extra_flags": ["--exclusive", "--constraint=a100"],
            "gres_from_accelerators": True,
            "image_root": "docker://",
            "singularity_options": ["--nv", "--cleanenv"],
            "pre_exec": "module load cuda",
        },
    },
    "condor": {
        "display_name": "HTCondor",
        "backend": "htcondor",
        "node": "vk-condor",
        "htcondor": {"singularity_options": ["--nv"], "image_root": "oras://registry.example.org"},
    },
    "docker": {"display_name": "Docker", "backend": "docker", "node": "vk-docker"},
    "remote": {
        "display_name": "Remote k8s",
        "backend": "interlink-kubernetes",
        "node": "vk-remote",
        "kubernetes_plugin": {"remote_pvcs": ["data", "scratch"]},
    },
    "generic": {
        "display_name": "Generic",
        "backend": "generic",
        "node": "vk-generic",
        "annotations": {"example.org/queue": "short"},
    },
    "cluster": {"display_name": "Here", "backend": "kubernetes"},
}

PROFILE = {
    "display_name": "P",
    "slug": "p",
    "profile_options": {
        "image": {
            "display_name": "Image",
            "choices": {"base": {"display_name": "Base", "kubespawner_override": {"image": "ghcr.io/org/base:1"}}},
            "unlisted_choice": {
                "enabled": True,
                "kubespawner_override": {"image": "{value}", "extra_labels": {"img": "{value}"}},
            },
        }
    },
    "cores": {"min": 1, "max": 8},
    "memory": {"min": "1G", "max": "16G"},
    "accelerators": {"nvidia.com/gpu": {"display_name": "GPU", "models": ["a100"], "max": 4}},
}


#: What interLink's virtual kubelet reads on every offloaded pod: its wstunnel
#: shadow pod in the pod's own namespace (interLink/pkg/virtualkubelet/virtualkubelet.go).
SHADOW = {"interlink.eu/shadow-same-ns": "true"}


@pytest.fixture
def catalog():
    return build_catalog(profile_list=[PROFILE], offload_targets=TARGETS)


def annotations(catalog, target, selection=None):
    selection = selection or Selection(profile="p", target=target)
    return adapter_for(catalog.offload_targets[target].backend).annotations(catalog.offload_targets[target], selection)


def test_every_backend_has_an_adapter():
    assert set(ADAPTERS) == set(Backend)


def test_slurm_annotations(catalog):
    selection = Selection(
        profile="p", target="slurm", accelerator="nvidia.com/gpu", accelerator_model="a100", accelerator_count=2
    )
    assert annotations(catalog, "slurm", selection) == {
        **SHADOW,
        "slurm-job.vk.io/flags": "--partition=boost_usr_prod --account=icsc_ai --qos=normal --time=1-00:00:00 "
        "--gres=gpu:a100:2 --exclusive --constraint=a100",
        "slurm-job.vk.io/flavor": "gpu",
        "slurm-job.vk.io/image-root": "docker://",
        "slurm-job.vk.io/singularity-options": "--nv --cleanenv",
        "slurm-job.vk.io/pre-exec": "module load cuda",
    }


def test_slurm_gres_only_for_a_gpu_and_unless_turned_off(catalog):
    without = annotations(catalog, "slurm")["slurm-job.vk.io/flags"]
    assert "--gres" not in without
    # Off only where the flavor requests the GPUs.
    cfg = {**TARGETS["slurm"], "slurm": {**TARGETS["slurm"]["slurm"], "gres_from_accelerators": False}}
    cat = build_catalog(offload_targets={"slurm": cfg})
    selection = Selection(
        profile=None, target="slurm", accelerator="nvidia.com/gpu", accelerator_model="a100", accelerator_count=1
    )
    assert "--gres" not in annotations(cat, "slurm", selection)["slurm-job.vk.io/flags"]


def test_slurm_without_settings_writes_nothing():
    cat = build_catalog(offload_targets={"s": {"display_name": "S", "backend": "slurm", "node": "vk-s"}})
    assert annotations(cat, "s") == SHADOW


def test_htcondor_annotations(catalog):
    assert annotations(catalog, "condor") == {
        **SHADOW,
        "htcondor-job.vk.io/singularity-options": "--nv",
        "htcondor-job.knoc.io/image-root": "oras://registry.example.org",
    }


def test_docker_annotations(catalog):
    assert annotations(catalog, "docker") == SHADOW


def test_interlink_kubernetes_annotations(catalog):
    assert annotations(catalog, "remote") == {**SHADOW, "interlink.io/remote-pvc": "data,scratch"}


def test_generic_and_kubernetes_add_nothing_themselves(catalog):
    assert annotations(catalog, "generic") == SHADOW
    assert annotations(catalog, "cluster") == {}


def test_generic_target_static_annotations_reach_the_plan(catalog):
    plan = build_plan(catalog, Selection(profile="p", target="generic"))
    assert plan.annotations["example.org/queue"] == "short"


def test_empty_settings_write_nothing():
    cat = build_catalog(
        offload_targets={
            "c": {"display_name": "C", "backend": "htcondor", "node": "vk-c"},
            "d": {"display_name": "D", "backend": "docker", "node": "vk-d"},
            "r": {"display_name": "R", "backend": "interlink-kubernetes", "node": "vk-r"},
        }
    )
    for slug in ("c", "d", "r"):
        assert annotations(cat, slug) == SHADOW


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_no_user_free_text_reaches_any_annotation(catalog, target):
    menu = build_menu(catalog, [])
    selection = select(
        menu,
        {
            "target": target,
            "image--unlisted-choice": MARKER,
            "cores": "3",
            "memory": "5G",
            **({"accelerator": "nvidia.com/gpu:a100", "accelerator_count": 3} if target == "slurm" else {}),
        },
    )
    assert selection.options["image"] == OptionPick(unlisted=MARKER)
    direct = annotations(catalog, target, selection)
    plan = build_plan(catalog, selection)
    for key, value in {**direct, **plan.annotations, **plan.labels}.items():
        assert "zz-user-marker" not in key and "zz-user-marker" not in value, (key, value)
    # the free text only goes where the admin's {value} template puts it
    assert plan.overrides[-1]["image"] == MARKER


def test_adapters_read_only_typed_selection_fields(catalog):
    """An adapter given a selection whose free text is hostile still writes only admin values."""
    hostile = Selection(
        profile="p",
        target="slurm",
        options={"image": OptionPick(unlisted="x; rm -rf / #")},
        cores=2,
        memory=2**30,
    )
    for slug in TARGETS:
        for value in annotations(catalog, slug, hostile).values():
            assert "rm -rf" not in value
