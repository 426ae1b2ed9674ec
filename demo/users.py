"""Demo users and their groups (used by run.py and jupyterhub_config.py).

The demo's OpenID Connect provider (testbed/oidc, shaped like INDIGO IAM)
sends these groups in the ``wlcg.groups`` claim, with IAM's leading slash
("/cms"); the hub's IAMOAuthenticator strips it and syncs them into JupyterHub.
"""

PASSWORD = "demo"

DEMO_GROUPS = {
    "cms": ["bob", "carol", "dave"],
    "highrate": ["hana"],
    # dave shares carol's sites: each sees the other's servers in the free capacity.
    "ai-infn": ["carol", "dave"],
    "gpu-users": ["carol", "dave"],
}

#: Users with no group: they log in and are offered only what is open to every
#: user (the Teaching profile on this cluster; the Analysis profile and the
#: remote sites need a group).
NO_GROUP_USERS = ["nobody"]


def groups_by_user() -> dict[str, list[str]]:
    users: dict[str, list[str]] = {name: [] for name in NO_GROUP_USERS}
    for group, members in DEMO_GROUPS.items():
        for user in members:
            users.setdefault(user, []).append(group)
    return users


def provider_users() -> dict[str, dict]:
    """The users as the OIDC provider takes them."""
    return {
        name: {"password": PASSWORD, "groups": groups, "wlcg_groups": ["/" + g for g in groups]}
        for name, groups in groups_by_user().items()
    }
