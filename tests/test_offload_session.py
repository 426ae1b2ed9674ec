"""Offloaded sessions through a real JupyterHub (MockHub + configurable-http-proxy):
per-target timeouts, the hub address a remote server gets, the pod shape on
virtual nodes, and the reserved tunnel port. Pods are the manifests KubeSpawner
builds, recorded at the Kubernetes API edge (see hub_fixtures); the control
plane versions of these paths are in tests/e2e/test_offload_lifecycle_e2e.py.
"""

from __future__ import annotations

import copy

import kubernetes_validate
import pytest

from hub_fixtures import RecordingSpawner

pytestmark = pytest.mark.hub

HUB_API_URL = "https://hub.example.org/hub/api"
GROUPS = {"cms": ["carol"], "ai-infn": ["carol"]}
BLOCK_METADATA = {
    "name": "block-cloud-metadata",
    "image": "tools",
    "command": ["iptables"],
    "securityContext": {"runAsUser": 0, "capabilities": {"add": ["NET_ADMIN"]}},
}
HOME = {"name": "home", "persistentVolumeClaim": {"claimName": "claim-{username}"}}
# Zero-to-JupyterHub's scheduling.userPods.nodeAffinity.matchNodePurpose: require
NODE_PURPOSE = [{"matchExpressions": [{"key": "hub.jupyter.org/node-purpose", "operator": "In", "values": ["user"]}]}]
LEONARDO = {"profile": "analysis", "target": "leonardo"}
CLUSTER = {"profile": "analysis", "target": "cluster"}


def config(contract_config, **extra):
    cfg = copy.deepcopy(contract_config)
    leonardo = cfg["offload_targets"]["leonardo"]
    leonardo.update(start_timeout=900, http_timeout=120, hub_api_url=HUB_API_URL, pod_shape={"run_as_user": 5123})
    cfg.update(
        start_timeout=45,
        http_timeout=30,
        volumes=[HOME],
        volume_mounts=[{"name": "home", "mountPath": "/home/jovyan"}],
        init_containers=[BLOCK_METADATA],
        node_affinity_required=NODE_PURPOSE,
        **extra,
    )
    return cfg


def last_pod(user: str) -> dict:
    return [pod for name, pod in RecordingSpawner.recorded if name == user][-1]


async def spawn(hub, user, options):
    r = await hub.api_spawn(user, options)
    assert r.status_code in (201, 202), r.text
    await hub.wait_ready(user)
    return hub.app.users[user].spawner


async def test_target_timeouts_apply_and_do_not_stick(offload_hub, contract_config):
    hub = await offload_hub(config(contract_config), groups=GROUPS, users=("carol",))
    spawner = await spawn(hub, "carol", LEONARDO)
    assert (spawner.start_timeout, spawner.http_timeout) == (900, 120)
    await hub.stop("carol")
    spawner = await spawn(hub, "carol", CLUSTER)
    # the configured values again, not leonardo's
    assert (spawner.start_timeout, spawner.http_timeout) == (45, 30)


async def test_remote_pod_gets_the_hub_address_and_the_virtual_node_shape(offload_hub, contract_config):
    hub = await offload_hub(config(contract_config), groups=GROUPS, users=("carol",))
    await spawn(hub, "carol", LEONARDO)
    pod = last_pod("carol")
    kubernetes_validate.validate(pod, desired_version="1.34", strict=True)
    env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
    assert env["JUPYTERHUB_API_URL"] == HUB_API_URL
    assert env["JUPYTERHUB_ACTIVITY_URL"] == f"{HUB_API_URL}/users/carol/activity"
    spec = pod["spec"]
    assert {"name": "home", "emptyDir": {}} in spec["volumes"]
    assert {"name": "home", "mountPath": "/home/jovyan"} in spec["containers"][0]["volumeMounts"]
    assert spec["automountServiceAccountToken"] is False
    assert spec["securityContext"]["runAsUser"] == 5123
    assert pod["metadata"]["annotations"]["interlink.eu/disable-offload-init-containers"] == "block-cloud-metadata"
    assert 8080 not in [p["containerPort"] for p in spec["containers"][0]["ports"]]
    assert "requiredDuringSchedulingIgnoredDuringExecution" not in spec.get("affinity", {}).get("nodeAffinity", {})


async def test_in_cluster_pod_keeps_kubespawners_shape(offload_hub, contract_config):
    hub = await offload_hub(config(contract_config), groups=GROUPS, users=("carol",))
    await spawn(hub, "carol", CLUSTER)
    pod = last_pod("carol")
    spec = pod["spec"]
    assert {"name": "home", "persistentVolumeClaim": {"claimName": "claim-carol"}} in spec["volumes"]
    assert "interlink.eu/disable-offload-init-containers" not in pod["metadata"]["annotations"]
    assert (
        spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
        == NODE_PURPOSE
    )
    env = {e["name"]: e.get("value") for e in spec["containers"][0]["env"]}
    assert env["JUPYTERHUB_API_URL"] != HUB_API_URL


async def test_port_8080_on_a_session_target_is_refused_before_any_pod(offload_hub, contract_config):
    """The hub-start check refuses this config; a hub started without it (or a
    callable profile_list) still refuses at spawn time, with a message for the user."""
    hub = await offload_hub(config(contract_config, port=8080), groups=GROUPS, users=("carol",))
    r = await hub.api_spawn("carol", LEONARDO)
    assert r.status_code == 500, r.text
    assert "8080" in r.json()["message"] and "interLink" in r.json()["message"]
    assert [name for name, _ in RecordingSpawner.recorded] == []
    # an in-cluster server may use 8080
    await spawn(hub, "carol", CLUSTER)
