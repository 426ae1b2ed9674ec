"""Backend settings mean what the upstream interLink plugins do with them.

Each test names the upstream file whose behaviour it encodes; the end-to-end
proof (the real plugins reading rendered pods) is in test_upstream_htcondor.py
and test_upstream_slurm.py.
"""

from __future__ import annotations

import pytest

from offload_spawner.backends import adapter_for
from offload_spawner.pipeline.catalog import CatalogError, build_catalog
from offload_spawner.pipeline.plan import build_plan
from offload_spawner.pipeline.selection import Selection

GPU_PROFILE = {
    "display_name": "GPU",
    "slug": "gpu",
    "accelerators": {"nvidia.com/gpu": {"display_name": "GPU", "models": ["a100"], "max": 4}},
}


def slurm_target(**slurm):
    return {"display_name": "S", "backend": "slurm", "node": "vk-s", "slurm": slurm}


def problems(**config) -> str:
    with pytest.raises(CatalogError) as e:
        build_catalog(**config)
    return "\n".join(e.value.problems)


# --- HTCondor: interlink-htcondor-plugin/handles.py ---------------------------------


def test_htcondor_requests_are_whole_cores_and_mi():
    catalog = build_catalog(
        offload_targets={"c": {"display_name": "C", "backend": "htcondor", "node": "vk-c", "offload": "session"}}
    )
    plan = build_plan(catalog, Selection(profile=None, target="c", cores=2.0, memory=8 * 2**30))
    assert plan.resource_requests == {"cpu": "2", "memory": "8192Mi"}
    plan = build_plan(catalog, Selection(profile=None, target="c", cores=1.5, memory=1536 * 2**20 + 5))
    assert plan.resource_requests == {"cpu": "1", "memory": "1536Mi"}  # rounded down: never above the limits


def test_other_backends_keep_kubespawners_requests():
    catalog = build_catalog(offload_targets={"s": slurm_target()})
    assert build_plan(catalog, Selection(profile=None, target="s", cores=2.0, memory=2**30)).resource_requests == {}


@pytest.mark.parametrize("root", ["docker://", "/cvmfs/unpacked.cern.ch/"])
def test_htcondor_image_root_with_a_trailing_slash_is_refused(root):
    """The plugin prefixes it only to images starting with '/': 'docker://' + '/img' is broken."""
    text = problems(
        offload_targets={
            "c": {"display_name": "C", "backend": "htcondor", "node": "vk-c", "htcondor": {"image_root": root}}
        }
    )
    assert "offload_targets.c.htcondor.image_root" in text and "ends with '/'" in text


# --- Docker -------------------------------------------------------------------------------


def test_docker_flags_are_refused():
    """docker-options.vk.io/flags go before `run` in the plugin, and the executed command drops them."""
    text = problems(
        offload_targets={
            "d": {"display_name": "D", "backend": "docker", "node": "vk-d", "docker": {"flags": ["--shm-size=8g"]}}
        }
    )
    assert "offload_targets.d.docker.flags" in text and "does not pass" in text


# --- interLink itself: interLink/pkg/virtualkubelet/virtualkubelet.go ------------------


@pytest.mark.parametrize("resource", ["amd.com/gpu", "intel.com/gpu", "example.org/npu"])
def test_a_model_list_needs_a_label_interlink_sets(resource):
    profile = {"display_name": "P", "slug": "p", "accelerators": {resource: {"display_name": "A", "models": ["m1"]}}}
    text = problems(profile_list=[profile])
    assert "profile_list[0].accelerators" in text and "model_label" in text
    profile["accelerators"][resource]["model_label"] = "example.org/accelerator-model"
    build_catalog(profile_list=[profile])


@pytest.mark.parametrize("backend", ["slurm", "htcondor", "docker", "interlink-kubernetes", "generic"])
def test_offloaded_pods_keep_their_shadow_pod_in_their_namespace(backend):
    catalog = build_catalog(offload_targets={"t": {"display_name": "T", "backend": backend, "node": "vk-t"}})
    plan = build_plan(catalog, Selection(profile=None, target="t"))
    assert plan.annotations["interlink.eu/shadow-same-ns"] == "true"


def test_in_cluster_pods_get_no_interlink_annotation():
    catalog = build_catalog(offload_targets={"k": {"display_name": "K", "backend": "kubernetes"}})
    assert "interlink.eu/shadow-same-ns" not in build_plan(catalog, Selection(profile=None, target="k")).annotations


# --- SLURM: interlink-slurm-plugin/pkg/slurm/prepare.go ------------------------------------


def gpu_flags(target: dict, model="a100", count=1) -> str:
    catalog = build_catalog(offload_targets={"s": target})
    selection = Selection(
        profile=None, target="s", accelerator="nvidia.com/gpu", accelerator_model=model, accelerator_count=count
    )
    return adapter_for(catalog.offload_targets["s"].backend).annotations(catalog.offload_targets["s"], selection)[
        "slurm-job.vk.io/flags"
    ]


def test_slurm_requests_the_chosen_gpus_by_default():
    assert gpu_flags(slurm_target(partition="gpu"), count=2) == "--partition=gpu --gres=gpu:a100:2"


def test_slurm_gres_in_the_sites_names():
    target = slurm_target(gres_name="gpu", gres_types={"a100": "nvidia_a100_80gb", "h100": ""})
    assert gpu_flags(target) == "--gres=gpu:nvidia_a100_80gb:1"
    assert gpu_flags(target, model="h100", count=4) == "--gres=gpu:4"


def test_slurm_target_offering_gpus_it_cannot_request_is_refused():
    text = problems(
        offload_targets={
            "s": {**slurm_target(gres_from_accelerators=False), "limits": {"accelerators": {"nvidia.com/gpu": 4}}}
        }
    )
    assert "offload_targets.s" in text and "--gres" in text
    text = problems(profile_list=[GPU_PROFILE], offload_targets={"s": slurm_target(gres_from_accelerators=False)})
    assert "profile_list[0].accelerators" in text and "'s'" in text
    # A flavor that requests the GPUs is the other way.
    build_catalog(
        profile_list=[GPU_PROFILE], offload_targets={"s": slurm_target(gres_from_accelerators=False, flavor="gpu")}
    )


def test_slurm_singularity_mounts_and_mpi_flags():
    target = slurm_target(
        singularity_mounts=[{"source": "/cvmfs", "read_only": True}, {"source": "/work/icsc", "target": "/data"}],
        mpi_flags=["--bind-to=core", "--map-by=socket"],
    )
    catalog = build_catalog(offload_targets={"s": target})
    annotations = build_plan(catalog, Selection(profile=None, target="s")).annotations
    assert annotations["slurm-job.vk.io/singularity-mounts"] == "--bind /cvmfs:/cvmfs:ro --bind /work/icsc:/data"
    assert annotations["slurm-job.vk.io/mpi-flags"] == "--bind-to=core --map-by=socket"


@pytest.mark.parametrize(
    "setting, value",
    [
        ("singularity_mounts", [{"source": "relative/path"}]),
        ("singularity_mounts", [{"source": "/cvmfs; rm -rf /"}]),
        ("singularity_mounts", [{"source": "/a b"}]),
        ("mpi_flags", []),
        ("mpi_flags", ["--x=$(id)"]),
    ],
)
def test_slurm_typed_settings_refuse_bad_values(setting, value):
    text = problems(offload_targets={"s": slurm_target(**{setting: value})})
    assert f"offload_targets.s.slurm.{setting}" in text


# --- per-user UID -------------------------------------------------------------------------


def test_uid_from_a_claim():
    from offload_spawner.identity.site_uid import site_uid

    assert site_uid({"oauth_user": {"uid": 41003}}, "uid") == 41003
    assert site_uid({"oauth_user": {"posix_uid": "41003"}}, "posix_uid") == 41003


@pytest.mark.parametrize(
    "auth_state",
    [
        None,
        {},
        {"oauth_user": {}},
        {"oauth_user": {"uid": -1}},
        {"oauth_user": {"uid": "alice"}},
        {"oauth_user": {"uid": True}},
    ],
)
def test_no_usable_uid_is_refused(auth_state):
    from offload_spawner.identity.site_uid import SiteUidError, site_uid

    with pytest.raises(SiteUidError):
        site_uid(auth_state, "uid")


def test_fixed_and_per_user_uid_are_exclusive():
    target = {**slurm_target(), "pod_shape": {"run_as_user": 1000, "run_as_user_claim": "uid"}}
    assert "either run_as_user" in problems(offload_targets={"s": target})
