"""Synthetic hub configurations of a given size, in three forms that offer a
user the same profiles:

* ``plain``: a KubeSpawner ``profile_list`` (no group rules), given unchanged
  to both spawners;
* ``offload``: the offload catalog (``allowed_groups`` on profiles and
  choices, offload targets, per-group limits, cores/memory/accelerator
  choices) for OffloadSpawner;
* ``kubespawner_filtered``: what an admin writes for KubeSpawner today to get
  the same offer: one profile per entry with image/cores/memory/target
  options as ``kubespawner_override`` choices, and a callable ``profile_list``
  that filters profiles and choices by the user's groups.

Every profile is visible to the benchmark user (they are in ``students``), so
the three forms list the same number of profiles; the other groups of the
user make the group checks do their full work.
"""

from __future__ import annotations

import copy
from typing import Any

IMAGES = 5
CORES = (1, 2, 4, 8)
MEMORY = ("2G", "4G", "8G", "16G", "32G", "64G")


def user_groups(count: int) -> list[str]:
    """``count`` groups, one of which (``students``) sees every profile."""
    return ["students"] + [f"project-{k:03d}" for k in range(count - 1)]


def _image_choices(i: int) -> dict[str, Any]:
    return {
        f"img{k}": {"display_name": f"Image {k}", "kubespawner_override": {"image": f"quay.io/jupyter/p{i}-img{k}:1"}}
        for k in range(IMAGES)
    }


def plain(profiles: int) -> dict[str, Any]:
    """KubeSpawner's own profile_list, nothing OffloadSpawner-specific."""
    return {
        "profile_list": [
            {
                "display_name": f"Profile {i}",
                "slug": f"p{i}",
                "description": f"Environment number {i}",
                "kubespawner_override": {"cpu_limit": 2, "mem_limit": "4G"},
                "profile_options": {"image": {"display_name": "Image", "choices": _image_choices(i)}},
            }
            for i in range(profiles)
        ]
    }


def plain_options(profiles: int) -> dict[str, str]:
    return {"profile": f"p{profiles - 1}", "image": "img3"}


TARGETS: dict[str, Any] = {
    "cluster": {"display_name": "This cluster", "backend": "kubernetes"},
    "naples": {
        "display_name": "INFN Naples (HTCondor)",
        "backend": "htcondor",
        "node": "vk-naples",
        "offload": "dask",
        "allowed_groups": ["students", "highrate"],
        "limits": {"cores": 96, "memory": "180G"},
        "start_timeout": 900,
    },
    "leonardo": {
        "display_name": "CINECA Leonardo (SLURM)",
        "backend": "slurm",
        "node": "vk-leonardo",
        "offload": "session",
        "slurm": {"partition": "boost_usr_prod", "account": "icsc_ai", "time_limit": "04:00:00"},
        "allowed_groups": ["students", "ai-infn"],
        "limits": {"cores": 32, "memory": "480G", "accelerators": {"nvidia.com/gpu": 4}},
    },
}


def _profile_groups(i: int) -> list[str]:
    return ["students", f"project-{i % 500:03d}"]


def offload(profiles: int, groups: int) -> dict[str, Any]:
    """The offload catalog: group rules on profiles and choices, targets, group limits."""
    group_limits: dict[str, Any] = {"students": {"cores": 8, "memory": "32G", "accelerators": {"nvidia.com/gpu": 1}}}
    for k in range(max(groups, 2) - 1):
        group_limits[f"project-{k:03d}"] = {"cores": 4 + k % 5, "memory": f"{8 + k % 3 * 8}G"}
    profile_list = []
    for i in range(profiles):
        images = _image_choices(i)
        images["img4"]["allowed_groups"] = ["students", "gpu-users"]
        profile_list.append(
            {
                "display_name": f"Profile {i}",
                "slug": f"p{i}",
                "description": f"Environment number {i}",
                "allowed_groups": _profile_groups(i),
                "profile_options": {"image": {"display_name": "Image", "choices": images}},
                "cores": {"choices": list(CORES), "default": 2},
                "memory": {"choices": list(MEMORY), "default": "4G"},
                "accelerators": {"nvidia.com/gpu": {"display_name": "NVIDIA GPU", "models": ["t4", "a100"], "max": 4}},
                "targets": ["cluster", "naples", "leonardo"],
            }
        )
    return {"profile_list": profile_list, "offload_targets": copy.deepcopy(TARGETS), "group_limits": group_limits}


def offload_options(profiles: int) -> dict[str, Any]:
    return {
        "profile": f"p{profiles - 1}",
        "image": "img3",
        "cores": 4,
        "memory": "8G",
        "target": "leonardo",
        "accelerator": "nvidia.com/gpu:a100",
        "accelerator_count": 1,
    }


# The same offer written for KubeSpawner: each target is a choice setting a node
# selector and the interLink toleration, cores/memory are choices setting limits.
_KS_TARGETS = {
    "cluster": {"display_name": "This cluster", "kubespawner_override": {}},
    "naples": {
        "display_name": "INFN Naples (HTCondor)",
        "kubespawner_override": {
            "node_selector": {"kubernetes.io/hostname": "vk-naples"},
            "tolerations": [
                {"key": "virtual-node.interlink/no-schedule", "operator": "Exists", "effect": "NoSchedule"}
            ],
        },
    },
    "leonardo": {
        "display_name": "CINECA Leonardo (SLURM)",
        "kubespawner_override": {
            "node_selector": {"kubernetes.io/hostname": "vk-leonardo"},
            "tolerations": [
                {"key": "virtual-node.interlink/no-schedule", "operator": "Exists", "effect": "NoSchedule"}
            ],
            "extra_resource_limits": {"nvidia.com/gpu": "1"},
        },
    },
}


def _kubespawner_profiles(profiles: int) -> tuple[list[dict[str, Any]], dict[str, list[str]]]:
    out = []
    visibility: dict[str, list[str]] = {}
    for i in range(profiles):
        images = _image_choices(i)
        out.append(
            {
                "display_name": f"Profile {i}",
                "slug": f"p{i}",
                "description": f"Environment number {i}",
                "profile_options": {
                    "image": {"display_name": "Image", "choices": images},
                    "cores": {
                        "display_name": "Cores",
                        "choices": {
                            f"c{c}": {
                                "display_name": str(c),
                                "default": c == 2,
                                "kubespawner_override": {"cpu_guarantee": c, "cpu_limit": c},
                            }
                            for c in CORES
                        },
                    },
                    "memory": {
                        "display_name": "Memory",
                        "choices": {
                            f"m{m}": {
                                "display_name": m,
                                "default": m == "4G",
                                "kubespawner_override": {"mem_guarantee": m, "mem_limit": m},
                            }
                            for m in MEMORY
                        },
                    },
                    "target": {"display_name": "Where", "choices": copy.deepcopy(_KS_TARGETS)},
                },
            }
        )
        visibility[f"p{i}"] = _profile_groups(i)
        visibility[f"p{i}/image/img4"] = ["students", "gpu-users"]
        visibility[f"p{i}/target/naples"] = ["students", "highrate"]
        visibility[f"p{i}/target/leonardo"] = ["students", "ai-infn"]
    return out, visibility


def kubespawner_filtered(profiles: int) -> dict[str, Any]:
    """A callable profile_list as admins write it for KubeSpawner: keep the
    profiles and choices whose groups meet the user's."""
    all_profiles, visibility = _kubespawner_profiles(profiles)

    def profile_list(spawner) -> list[dict[str, Any]]:
        groups = {g.name for g in spawner.user.groups}
        visible = []
        for profile in all_profiles:
            if groups.isdisjoint(visibility[profile["slug"]]):
                continue
            profile = dict(profile, profile_options={})
            for key, option in all_profiles_by_slug[profile["slug"]]["profile_options"].items():
                choices = {
                    name: choice
                    for name, choice in option["choices"].items()
                    if groups.intersection(visibility.get(f"{profile['slug']}/{key}/{name}", groups))
                }
                profile["profile_options"][key] = dict(option, choices=choices)
            visible.append(profile)
        return visible

    all_profiles_by_slug = {p["slug"]: p for p in all_profiles}
    return {"profile_list": profile_list}


def kubespawner_options(profiles: int) -> dict[str, str]:
    return {"profile": f"p{profiles - 1}", "image": "img3", "cores": "c4", "memory": "m8G", "target": "leonardo"}
