"""Demo hub: OffloadSpawner with a catalog modelled on the ICSC / AI_INFN sites.

Started by `make demo` (demo/run.py), which also starts the test bed and an
OpenID Connect provider shaped like INDIGO IAM: users log in there (password
"demo") and their groups come from its ``wlcg.groups`` claim. Run on its own
(no DEMO_OIDC_ISSUER), the hub falls back to JupyterHub's DummyAuthenticator
with the same users and groups.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from users import DEMO_GROUPS, PASSWORD

c = get_config()  # noqa: F821

c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = int(os.environ.get("DEMO_PORT", "8000"))
# The hub's internal API and the proxy's API: demo/run.py picks free ports for
# them, so that a demo runs beside another hub on this machine (JupyterHub's
# defaults, 8081 and 8001, otherwise).
if os.environ.get("DEMO_HUB_PORT"):
    c.JupyterHub.hub_port = int(os.environ["DEMO_HUB_PORT"])
if os.environ.get("DEMO_PROXY_API_PORT"):
    c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{int(os.environ['DEMO_PROXY_API_PORT'])}"
c.JupyterHub.spawner_class = "offload"
c.Authenticator.allow_all = True
c.Authenticator.admin_users = {"admin"}

if os.environ.get("DEMO_OIDC_ISSUER"):
    # INDIGO IAM made easy: discovery, groups from wlcg.groups ("/cms" -> "cms"),
    # auth_state (JUPYTERHUB_CRYPT_KEY set by run.py), groups synced, tokens
    # refreshed before a spawn and delivered through the per-server Secret.
    c.JupyterHub.authenticator_class = "iam"
    c.IAMOAuthenticator.issuer = os.environ["DEMO_OIDC_ISSUER"]
    c.IAMOAuthenticator.client_id = os.environ["DEMO_OIDC_CLIENT_ID"]
    c.IAMOAuthenticator.client_secret = os.environ["DEMO_OIDC_CLIENT_SECRET"]
    c.IAMOAuthenticator.oauth_callback_url = f"http://127.0.0.1:{c.JupyterHub.port}/hub/oauth_callback"
    c.IAMOAuthenticator.groups_claim = "wlcg.groups"
    c.IAMOAuthenticator.allow_all = True
else:
    c.JupyterHub.authenticator_class = "dummy"
    c.DummyAuthenticator.password = PASSWORD
    c.JupyterHub.load_groups = {name: {"users": users} for name, users in DEMO_GROUPS.items()}

c.OffloadSpawner.offload_targets = {
    "cluster": {
        "display_name": "This cluster",
        "backend": "kubernetes",
        "description": "The hub's own Kubernetes cluster.",
    },
    "naples": {
        "display_name": "INFN Naples (HTCondor)",
        "backend": "htcondor",
        "node": "vk-naples",
        "offload": "dask",
        "allowed_groups": ["highrate"],
        "limits": {"cores": 96, "memory": "180G"},
        "start_timeout": 900,
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
        },
        "allowed_groups": ["ai-infn"],
        "limits": {"cores": 32, "memory": "480G", "accelerators": {"nvidia.com/gpu": 4}},
        "start_timeout": 900,
    },
    "docker": {
        "display_name": "INFN Docker site (FPGA)",
        "backend": "docker",
        "node": "vk-docker",
        "offload": "session",
        "allowed_groups": ["ai-infn"],
        "limits": {"cores": 16, "memory": "64G", "accelerators": {"xilinx.com/fpga": 2}},
    },
}
c.OffloadSpawner.group_limits = {
    "cms": {"cores": 8, "memory": "32G"},
    "gpu-users": {"accelerators": {"nvidia.com/gpu": 2}},
    "ai-infn": {"accelerators": {"xilinx.com/fpga": 1}},
}

# The local test bed (demo/run.py starts it): pods run as local processes of
# this machine's jupyterhub-singleuser, in namespace jhub, placed by the real
# scheduler onto node-local or the interLink-style virtual nodes.
if os.environ.get("DEMO_TESTBED"):
    c.OffloadSpawner.namespace = "jhub"
    c.OffloadSpawner.cmd = [os.path.join(os.path.dirname(sys.executable), "jupyterhub-singleuser")]
    if os.geteuid() == 0:
        c.OffloadSpawner.args = ["--allow-root"]
    # The servers run as processes of this machine and reach the hub's
    # internal API (127.0.0.1, DEMO_HUB_PORT) as the hub reaches them: both ways, what
    # `network: mesh` declares (so the hub does not warn that they may not).
    for slug in ("leonardo", "docker"):
        c.OffloadSpawner.offload_targets[slug]["network"] = "mesh"
    # Land in JupyterLab (the demo extra installs it and dask-labextension).
    c.OffloadSpawner.default_url = "/lab"
    c.OffloadSpawner.start_timeout = 120
    c.OffloadSpawner.http_timeout = 120
    c.JupyterHub.hub_ip = "127.0.0.1"
    if os.environ.get("DEMO_SLURM_NODE"):
        # The SLURM target on the real interLink stack (demo/run.py started it): a job
        # of the real SLURM on this machine. interLink's virtual kubelet reports pod IP
        # 127.0.0.1 for it, so servers listen there (the test bed's imitation moves the
        # others to their own pod IPs), on a port no other process here uses.
        leonardo = c.OffloadSpawner.offload_targets["leonardo"]
        leonardo["node"] = os.environ["DEMO_SLURM_NODE"]
        # What the one-node SLURM has: this machine's cores, its RealMemory, the two
        # count-only a100 GPUs of its gres.conf (requested by --gres, no plugin flavor).
        leonardo["limits"] = {
            "cores": int(os.environ["DEMO_SLURM_CPUS"]),
            "memory": f"{os.environ['DEMO_SLURM_MEMORY_MB']}M",
            "accelerators": {"nvidia.com/gpu": 2},
        }
        leonardo["slurm"] = {k: v for k, v in leonardo["slurm"].items() if k != "flavor"}
        c.OffloadSpawner.ip = "127.0.0.1"
        c.OffloadSpawner.port = int(os.environ["DEMO_SERVER_PORT"])
c.OffloadSpawner.profile_list = [
    {
        "display_name": "Analysis",
        "slug": "analysis",
        "description": "JupyterLab for physics analysis, with optional Dask offloading.",
        "allowed_groups": ["cms", "highrate"],
        "profile_options": {
            "image": {
                "display_name": "Image",
                "choices": {
                    "alma9": {
                        "display_name": "AlmaLinux 9",
                        "kubespawner_override": {"image": "quay.io/jupyter/base-notebook:2025-01-01"},
                    },
                    "offload": {
                        "display_name": "Dask offload",
                        "allowed_groups": ["highrate"],
                        "kubespawner_override": {"image": "quay.io/jupyter/scipy-notebook:2025-01-01"},
                    },
                },
                "unlisted_choice": {
                    "enabled": True,
                    "display_name": "Custom image",
                    "validation_regex": "^quay\\.io/jupyter/[a-z0-9._/-]+:[A-Za-z0-9._-]+$",
                    "validation_message": "Use an image from quay.io/jupyter, with a tag.",
                    "kubespawner_override": {"image": "{value}"},
                },
            },
        },
        "cores": {"choices": [1, 2, 4, 8], "default": 2},
        "memory": {"choices": ["2G", "4G", "8G", "16G", "32G", "64G"], "default": "4G"},
        "accelerators": {
            "nvidia.com/gpu": {"display_name": "NVIDIA GPU", "models": ["t4", "a100"], "max": 4},
            "xilinx.com/fpga": {"display_name": "AMD/Xilinx FPGA", "models": ["u55c"], "max": 2},
        },
        "targets": ["cluster", "naples", "leonardo", "docker"],
    },
    {
        "display_name": "Teaching",
        "slug": "teaching",
        "description": "A small notebook for tutorials, open to every user.",
        "cores": {"min": 0.5, "max": 2, "default": 1},
        "memory": {"min": "1G", "max": "4G", "default": "2G"},
        "targets": ["cluster"],
    },
]
