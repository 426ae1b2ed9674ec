"""The Dask placement allowance end to end: a real hub's OffloadSpawner writes,
for a server holding a ServiceAccount, the placement Secret the admission policy
(helm-values/rbac-dask-tenant-policy.yaml) reads, with the hub's own identity
(Zero-to-JupyterHub's hub Role), owned by the server's pod, and deletes it with
the server. What the policy then refuses is tested in test_dask_tenants_e2e.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from offload_spawner.dask_placement import ANNOTATION_PREFIX, PLACEMENT_LABEL, allowed_placement, placement_secret_name

from .conftest import NAMESPACE

pytestmark = pytest.mark.e2e

ACCOUNT = "offload-dask-user"
TARGETS: dict[str, Any] = {
    "naples": {"display_name": "INFN Naples (HTCondor)", "backend": "htcondor", "node": "vk-naples", "offload": "dask"},
    # a session target without Dask settings
    "leonardo": {"display_name": "CINECA Leonardo (SLURM)", "backend": "slurm", "node": "vk-leonardo",
                 "offload": "session", "slurm": {"partition": "boost_usr_prod"}},
}
PROFILES = [{"display_name": "Analysis", "slug": "analysis"}]


def allowance(secret: dict[str, Any]) -> dict[str, str]:
    annotations = secret["metadata"].get("annotations") or {}
    return {k.removeprefix(ANNOTATION_PREFIX): v for k, v in annotations.items() if k.startswith(ANNOTATION_PREFIX)}


@pytest.fixture
async def account(admin):
    body = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": ACCOUNT}}
    await admin.core.create_namespaced_service_account(NAMESPACE, body)
    yield ACCOUNT
    await admin.core.delete_namespaced_service_account(ACCOUNT, NAMESPACE)


async def test_a_server_with_a_service_account_gets_its_placement_secret_until_it_stops(spawn_hub, admin, account):
    config = {"offload_targets": TARGETS, "profile_list": PROFILES, "service_account": account}
    hub = await spawn_hub(config, {}, ("dora", "erin"))
    spawners = {}
    for user, target in (("dora", "naples"), ("erin", "leonardo")):
        r = await hub.api_spawn(user, {"profile": "analysis", "target": target})
        assert r.status_code in (201, 202), r.text
        await hub.wait_ready(user, timeout=60)
        spawners[user] = hub.app.users[user].spawner

    dora = spawners["dora"]
    pod = await admin.pod(dora.pod_name)
    assert pod["spec"]["serviceAccountName"] == account
    secret = await admin.secret(placement_secret_name(dora.pod_name))
    assert secret is not None
    assert secret["metadata"]["labels"][PLACEMENT_LABEL] == "server"
    assert secret["metadata"]["ownerReferences"] == [{
        "apiVersion": "v1", "kind": "Pod", "name": dora.pod_name, "uid": pod["metadata"]["uid"],
        "controller": False, "blockOwnerDeletion": True}]
    # exactly what the server's own DaskCluster asks for: Naples, its sizes, no accelerator
    assert allowance(secret) == allowed_placement(dora.pod_name, dora._dask.cluster)
    assert allowance(secret)["worker.nodeSelector"] == "kubernetes.io/hostname=vk-naples"
    assert not secret.get("data")

    # a server whose target has no Dask settings may make no Dask pods
    erin = spawners["erin"]
    assert allowance(await admin.secret(placement_secret_name(erin.pod_name))) == {
        "pod": erin.pod_name, "allowed": "false"}

    for user, spawner in spawners.items():
        pod_name = spawner.pod_name
        await hub.stop(user)
        await hub.wait_stopped(user)
        assert await admin.pod(pod_name) is None
        assert await admin.secret(placement_secret_name(pod_name)) is None
    secrets = await admin.core.list_namespaced_secret(NAMESPACE, label_selector=PLACEMENT_LABEL)
    assert secrets.items == []


async def test_a_server_without_a_service_account_gets_no_placement_secret(spawn_hub, admin):
    hub = await spawn_hub({"offload_targets": TARGETS, "profile_list": PROFILES}, {}, ("fred",))
    r = await hub.api_spawn("fred", {"profile": "analysis", "target": "naples"})
    assert r.status_code in (201, 202), r.text
    await hub.wait_ready("fred", timeout=60)
    pod_name = hub.app.users["fred"].spawner.pod_name
    # no token for the Kubernetes API, so no Dask objects to constrain
    assert await admin.secret(placement_secret_name(pod_name)) is None
    await hub.stop("fred")
    await hub.wait_stopped("fred")
