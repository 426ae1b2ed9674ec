"""An OffloadSpawner configuration: three targets, group ceilings and one profile.

* ``cluster``: the hub's own Kubernetes cluster;
* ``naples``: an HTCondor site behind the interLink virtual node ``vk-naples``,
  where only Dask clusters go (the server stays in the cluster);
* ``leonardo``: a SLURM site behind ``vk-leonardo``, where the whole server runs.

The profile uses KubeSpawner's ``profile_list`` schema; the keys marked NEW are
what OffloadSpawner adds (groups, cores, memory, accelerators, targets).
Check it with ``offload-spawner check -f docs/examples/jupyterhub_config.py``;
see what a user would get with ``offload-spawner form|render``.
"""

c = get_config()  # noqa: F821 (provided by JupyterHub when it loads this file)

c.JupyterHub.spawner_class = "offload"  # the entry point in the group jupyterhub.spawners
c.OffloadSpawner.offload_targets = {
    "cluster": {"display_name": "This cluster", "backend": "kubernetes"},
    "naples": {
        "display_name": "INFN Naples (HTCondor)",
        "backend": "htcondor",  # kubernetes | slurm | htcondor | docker | interlink-kubernetes | generic
        "node": "vk-naples",  # virtual node name -> nodeSelector kubernetes.io/hostname
        "offload": "dask",  # "session": the server pod runs there; "dask": only Dask clusters do
        "allowed_groups": ["highrate"],
        "limits": {"cores": 96, "memory": "180G"},
        "start_timeout": 900,
        "hub_api_url": "https://hub.example.org/hub/api",  # what a remote pod uses to reach the hub
    },
    "leonardo": {
        "display_name": "CINECA Leonardo (SLURM)",
        "backend": "slurm",
        "node": "vk-leonardo",
        "offload": "session",
        "slurm": {
            "partition": "boost_usr_prod",
            "account": "icsc_ai",
            "qos": "normal",
            "time_limit": "04:00:00",
            "flavor": "gpu",
            "extra_flags": ["--exclusive"],
        },
        "allowed_groups": ["ai-infn"],
        "limits": {"cores": 32, "memory": "480G", "accelerators": {"nvidia.com/gpu": 4}},
    },
}
c.OffloadSpawner.group_limits = {
    "cms": {"cores": 8, "memory": "32G"},
    "gpu-users": {"accelerators": {"nvidia.com/gpu": 2}},
}
c.OffloadSpawner.profile_list = [  # KubeSpawner's schema, plus the keys marked NEW
    {
        "display_name": "Analysis",
        "slug": "analysis",
        "allowed_groups": ["cms", "highrate"],  # NEW (profile and choice level)
        "profile_options": {
            "image": {
                "display_name": "Image",
                "choices": {
                    "alma9": {
                        "display_name": "AlmaLinux 9",
                        "kubespawner_override": {"image": "ghcr.io/org/alma9:1.0"},
                    },
                    "offload": {
                        "display_name": "Dask offload",
                        "allowed_groups": ["highrate"],
                        "kubespawner_override": {"image": "ghcr.io/org/offload:1.0"},
                    },
                },
                "unlisted_choice": {
                    "enabled": True,
                    "validation_regex": "^ghcr\\.io/org/[a-z0-9._/-]+:[A-Za-z0-9._-]+$",
                    "kubespawner_override": {"image": "{value}"},
                },
            },
        },
        "cores": {"choices": [1, 2, 4, 8], "default": 2},  # NEW; or {"min": 1, "max": 16, "default": 2}
        "memory": {"choices": ["2G", "4G", "8G", "16G", "32G", "64G"], "default": "4G"},  # NEW; or min/max
        "accelerators": {
            "nvidia.com/gpu": {"display_name": "NVIDIA GPU", "models": ["t4", "a100"], "max": 4},
            "xilinx.com/fpga": {"display_name": "AMD/Xilinx FPGA", "models": ["u55c"], "max": 2},
        },  # NEW
        "targets": ["cluster", "naples", "leonardo"],  # NEW; default: every target
    },
]
