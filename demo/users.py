"""Demo users and their groups (used by jupyterhub_config.py and run.py)."""

DEMO_GROUPS = {
    "cms": ["bob", "carol"],
    "highrate": ["hana"],
    "ai-infn": ["carol"],
    "gpu-users": ["carol"],
}
