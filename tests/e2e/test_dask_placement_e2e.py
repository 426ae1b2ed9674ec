"""The Dask tenant parts a real hub does, end to end on the test bed.

The Dask placement allowance: a real hub's OffloadSpawner writes,
for a server holding a ServiceAccount, the placement Secret the admission policy
(helm-values/rbac-dask-tenant-policy.yaml) reads, with the hub's own identity
(Zero-to-JupyterHub's hub Role), owned by the server's pod, and deletes it with
the server. What the policy then refuses is tested in test_dask_tenants_e2e.py.

The Dask pods' hub token: issued with only the target's scopes, referenced by
the Dask pod spec, refused what the server's own token may do, revoked at stop.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from jupyterhub import orm
from jupyterhub.tests.utils import async_requests, public_url

from offload_spawner.dask.dask_hub_token import TOKEN_NOTE
from offload_spawner.dask.dask_placement import (
    ANNOTATION_PREFIX,
    PLACEMENT_LABEL,
    allowed_placement,
    placement_secret_name,
)
from offload_spawner.identity.server_secret import DASK_HUB_TOKEN_KEY, secret_name
from offload_spawner.pipeline.catalog import TokenPolicy

from .conftest import NAMESPACE

pytestmark = pytest.mark.e2e

ACCOUNT = "offload-dask-user"
TARGETS: dict[str, Any] = {
    "naples": {"display_name": "INFN Naples (HTCondor)", "backend": "htcondor", "node": "vk-naples", "offload": "dask"},
    # a session target without Dask settings
    "leonardo": {
        "display_name": "CINECA Leonardo (SLURM)",
        "backend": "slurm",
        "node": "vk-leonardo",
        "offload": "session",
        "slurm": {"partition": "boost_usr_prod"},
    },
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
    assert secret["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "name": dora.pod_name,
            "uid": pod["metadata"]["uid"],
            "controller": False,
            "blockOwnerDeletion": True,
        }
    ]
    # exactly what the server's own DaskCluster asks for: Naples, its sizes, no accelerator
    assert allowance(secret) == allowed_placement(dora.pod_name, dora._dask.cluster)
    assert allowance(secret)["worker.nodeSelector"] == "kubernetes.io/hostname=vk-naples"
    assert not secret.get("data")

    # a server whose target has no Dask settings may make no Dask pods
    erin = spawners["erin"]
    assert allowance(await admin.secret(placement_secret_name(erin.pod_name))) == {
        "pod": erin.pod_name,
        "allowed": "false",
    }

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


async def _hub_api(hub, method: str, path: str, token: str, body: Any = None) -> int:
    url = public_url(hub.app) + "hub/api/" + path
    data = None if body is None else json.dumps(body)
    r = await async_requests.request(method, url, headers={"Authorization": f"token {token}"}, data=data)
    return r.status_code


async def test_dask_pods_get_a_hub_token_with_only_the_targets_scopes_until_the_server_stops(spawn_hub, admin):
    targets = {"naples": TARGETS["naples"] | {"tokens": {"dask_pods": ["hub_token"]}}}
    hub = await spawn_hub({"offload_targets": targets, "profile_list": PROFILES}, {}, ("gina",))
    r = await hub.api_spawn("gina", {"profile": "analysis", "target": "naples"})
    assert r.status_code in (201, 202), r.text
    await hub.wait_ready("gina", timeout=60)
    spawner = hub.app.users["gina"].spawner
    server_token = spawner.api_token

    secret = await admin.secret(secret_name(spawner.pod_name))
    scoped = base64.b64decode(secret["data"][DASK_HUB_TOKEN_KEY]).decode()
    assert scoped and scoped != server_token
    found = orm.APIToken.find(hub.app.db, scoped)
    assert found is not None and found.user.name == "gina"
    assert sorted(found.scopes) == ["read:users:name!user"] == TokenPolicy().dask_hub_scopes
    assert found.note == TOKEN_NOTE

    # the Dask pods refer to it (only by secretKeyRef), under the usual env name; the file never holds it
    for role in ("worker", "scheduler"):
        env = {e["name"]: e for e in spawner._dask.cluster["spec"][role]["spec"]["containers"][0]["env"]}
        assert env["JUPYTERHUB_API_TOKEN"] == {
            "name": "JUPYTERHUB_API_TOKEN",
            "valueFrom": {"secretKeyRef": {"name": secret_name(spawner.pod_name), "key": DASK_HUB_TOKEN_KEY}},
        }
    for text in spawner._dask.files.values():
        assert scoped not in text and server_token not in text

    # it tells whose it is, and nothing more
    assert await _hub_api(hub, "GET", "users/gina", scoped) == 200
    assert await _hub_api(hub, "POST", "users/gina/server", scoped) == 403
    assert await _hub_api(hub, "DELETE", "users/gina/server", scoped) == 403
    assert await _hub_api(hub, "POST", "users/gina/tokens", scoped, {"note": "more"}) == 403
    activity = {"last_activity": datetime.now(UTC).isoformat().replace("+00:00", "Z")}
    # the server's own token may report activity and reach the server (run code as the user); it may not
    assert await _hub_api(hub, "POST", "users/gina/activity", server_token, activity) == 200
    assert await _hub_api(hub, "POST", "users/gina/activity", scoped, activity) == 403
    assert (await hub.via_proxy("gina", "api/contents", server_token)).status_code == 200
    assert (await hub.via_proxy("gina", "api/contents", scoped)).status_code in (302, 403)

    await hub.stop("gina")
    await hub.wait_stopped("gina")
    hub.app.db.expire_all()
    assert orm.APIToken.find(hub.app.db, scoped) is None
    assert await _hub_api(hub, "GET", "users/gina", scoped) == 403
