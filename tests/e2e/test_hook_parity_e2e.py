"""Admin hooks through the real ``start()``, beside a plain KubeSpawner.

tests/test_spawner_parity.py compares the pods the two spawners build; here
each spawner really starts a server in the test bed (KubeSpawner's own
``_start`` creates the pod, with OffloadSpawner's overrides around it), so the
``modify_pod_hook`` runs where KubeSpawner runs it, and the pod compared is
the one the apiserver holds.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import kubespawner.clients
import pytest
from jupyterhub.objects import Hub
from jupyterhub.utils import maybe_future
from kubespawner import KubeSpawner
from traitlets.config import Config

from offload_spawner.hub.cli import CliGroup, CliUser
from offload_spawner.hub.spawner import OffloadSpawner

from .conftest import NAMESPACE, Kube

PROFILES = [
    {
        "display_name": "Small",
        "slug": "small",
        "kubespawner_override": {"environment": {"SIZE": "small"}, "extra_labels": {"size": "small"}},
    },
]


def _hook_log() -> tuple[list[dict[str, Any]], Any, Any]:
    seen: list[dict[str, Any]] = []

    async def modify_pod_hook(spawner, pod):
        seen.append(
            {
                "env": sorted(e.name if hasattr(e, "name") else e["name"] for e in pod.spec.containers[0].env),
                "labels": dict(pod.metadata.labels),
            }
        )
        pod.metadata.labels["modified-by"] = "hook"
        pod.spec.containers[0].env.append({"name": "FROM_MODIFY_HOOK", "value": "1"})
        return pod

    def pre_spawn_hook(spawner):
        spawner.environment = {**spawner.environment, "FROM_PRE_SPAWN": spawner.user.name}

    return seen, modify_pod_hook, pre_spawn_hook


async def _start_and_read(cls, user: str, admin: Kube) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    seen, modify_pod_hook, pre_spawn_hook = _hook_log()
    config = Config()
    config.KubeSpawner.namespace = NAMESPACE
    config.KubeSpawner.cmd = ["sleep", "300"]  # the pod only has to run; no hub to talk to here
    config.KubeSpawner.start_timeout = 60
    config.KubeSpawner.profile_list = copy.deepcopy(PROFILES)
    config.KubeSpawner.modify_pod_hook = modify_pod_hook
    config.KubeSpawner.pre_spawn_hook = pre_spawn_hook
    config.OffloadSpawner.offload_availability = False
    spawner = cls(
        user=CliUser(user, [CliGroup("anyone")]), hub=Hub(ip="127.0.0.1", port=8081, base_url="/hub/"), config=config
    )
    spawner.api_token = "hook-parity-token"
    spawner.user_options = {"profile": "small"}
    # What jupyterhub/user.py (User.spawn) does before start().
    await spawner._run_apply_user_options(spawner.user_options)
    await maybe_future(spawner.run_pre_spawn_hook())
    try:
        await spawner.start()
        pod = await admin.pod(spawner.pod_name)
    finally:
        await spawner.stop(now=True)
    assert pod is not None
    return pod, seen


@pytest.fixture
async def spawners_clean(kubespawner_kubeconfig: Path):
    KubeSpawner.reflectors.clear()
    yield
    await KubeSpawner._stop_all_reflectors()
    kubespawner.clients._client_cache.clear()


async def test_modify_and_pre_spawn_hooks_through_the_real_start(admin, spawners_clean):
    theirs, seen_theirs = await _start_and_read(KubeSpawner, "hook-k", admin)
    ours, seen_ours = await _start_and_read(OffloadSpawner, "hook-o", admin)
    for pod, seen in ((theirs, seen_theirs), (ours, seen_ours)):
        assert len(seen) == 1, "modify_pod_hook runs once per start"
        assert pod["metadata"]["labels"]["modified-by"] == "hook"
        assert pod["metadata"]["labels"]["size"] == "small"
        env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
        assert env["FROM_MODIFY_HOOK"] == "1"
        assert env["FROM_PRE_SPAWN"] == pod["metadata"]["labels"]["hub.jupyter.org/username"]
        assert env["SIZE"] == "small"
    # The hook saw the same pod under both, except the hub token: KubeSpawner passes it as
    # two plain env values, OffloadSpawner as one Secret reference (no token in a pod spec).
    assert set(seen_theirs[0]["env"]) - set(seen_ours[0]["env"]) == {"JPY_API_TOKEN"}
    assert set(seen_ours[0]["env"]) <= set(seen_theirs[0]["env"])
    without_user = [
        {k: v for k, v in s[0]["labels"].items() if k != "hub.jupyter.org/username"} for s in (seen_theirs, seen_ours)
    ]
    assert without_user[0] == without_user[1]
