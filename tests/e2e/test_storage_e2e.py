"""Storage on the test bed: a real hub, the real kube-apiserver and controller-manager.

* The per-user claim of a ``pvc`` volume is created on the first spawn (through
  KubeSpawner's own ``storage_pvc_ensure``), bound by kube-controller-manager to
  a PersistentVolume the test provides, and reused by the next spawn.
* A file written in one in-cluster session is there in the next (the test bed's
  virtual kubelet keeps one directory per claim, as a bound volume would).
* A group's volume reaches only the group's members.
* A SLURM session's pod carries the site binds in the annotation the SLURM plugin reads.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from jupyterhub.tests.utils import async_requests, public_url

pytestmark = [pytest.mark.e2e, pytest.mark.hub]

NAMESPACE = "jhub"
STORAGE_CLASS = "testbed-home"

TARGETS = {
    "cluster": {"display_name": "This cluster", "backend": "kubernetes"},
    "leonardo": {
        "display_name": "CINECA Leonardo",
        "backend": "slurm",
        "node": "vk-leonardo",
        "slurm": {"partition": "boost_usr_prod"},
        "network": "mesh",
    },
}
STORAGE = {
    "home": {
        "display_name": "home",
        "mount_path": "/home/jovyan",
        "cluster": {"kind": "pvc", "size": "1G", "storage_class": STORAGE_CLASS},
    },
    "cms-data": {
        "display_name": "CMS group area",
        "mount_path": "/data/cms",
        "allowed_groups": ["cms"],
        "cluster": {"kind": "nfs", "server": "nfs.example.org", "path": "/export/cms"},
    },
    "work": {
        "display_name": "$WORK",
        "mount_path": "/work",
        "targets": {"leonardo": {"path": "/leonardo_work/{username}"}},
    },
}
PROFILES = [{"display_name": "Analysis", "slug": "analysis", "targets": list(TARGETS)}]
GROUPS = {"cms": ["bob"], "ai-infn": ["hana"]}


def _pv(name: str, claim: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": name},
        "spec": {
            "capacity": {"storage": "2Gi"},
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": STORAGE_CLASS,
            "persistentVolumeReclaimPolicy": "Retain",
            "hostPath": {"path": f"/tmp/offload-testbed-{name}"},
            "claimRef": {"namespace": NAMESPACE, "name": claim},
        },
    }


@pytest.fixture
def volumes(cluster):
    """A PersistentVolume per user claim (the test bed has no provisioner); removed afterwards."""
    admin = cluster.control_plane.admin()
    names = []

    def provide(claim: str) -> None:
        name = f"pv-{claim}"
        admin.call("POST", "/api/v1/persistentvolumes", _pv(name, claim))
        names.append(name)

    yield provide
    for claim in ("claim-bob", "claim-hana"):
        admin.request("DELETE", f"/api/v1/namespaces/{NAMESPACE}/persistentvolumeclaims/{claim}")
    for name in names:
        admin.request("DELETE", f"/api/v1/persistentvolumes/{name}")


@pytest.fixture
async def hub(spawn_hub):
    config = {
        "offload_targets": TARGETS,
        "profile_list": PROFILES,
        "storage": STORAGE,
        # The server's root is its home, so the contents API writes into the claim.
        "working_dir": "/home/jovyan",
    }
    return await spawn_hub(config, GROUPS, ("bob", "hana"))


async def _claim(admin, name: str) -> dict[str, Any] | None:
    return await admin._maybe(admin.core.read_namespaced_persistent_volume_claim, name, NAMESPACE)


async def _contents(hub, user: str, path: str, method: str = "GET", body: dict | None = None) -> Any:
    token = await hub.token(user)
    url = public_url(hub.app, hub.app.users[user]) + f"api/contents/{path}"
    return await async_requests.request(
        method,
        url,
        headers={"Authorization": f"token {token}"},
        data=json.dumps(body) if body is not None else None,
    )


async def _spawn_and_wait(hub, user: str, target: str) -> None:
    r = await hub.api_spawn(user, {"profile": "analysis", "target": target})
    assert r.status_code in (201, 202), r.text
    await hub.wait_ready(user, timeout=90)


async def _stop(hub, admin, user: str) -> None:
    name = hub.pod_name(user)
    await hub.stop(user)
    await hub.wait_stopped(user)
    await admin.wait_pod(name, lambda p: p is None, "deleted", timeout=30)


async def test_home_claim_is_created_once_kept_and_holds_files_across_sessions(hub, admin, volumes):
    volumes("claim-bob")
    assert await _claim(admin, "claim-bob") is None

    await _spawn_and_wait(hub, "bob", "cluster")
    claim = await _claim(admin, "claim-bob")
    assert claim is not None, "the first spawn creates the user's claim"
    assert claim["spec"]["storageClassName"] == STORAGE_CLASS
    assert claim["spec"]["resources"]["requests"]["storage"] in (str(2**30), "1Gi")
    uid = claim["metadata"]["uid"]
    deadline = time.monotonic() + 30
    while (await _claim(admin, "claim-bob"))["status"].get("phase") != "Bound":
        assert time.monotonic() < deadline, "kube-controller-manager did not bind the claim"
        await asyncio.sleep(0.5)

    pod = await admin.pod(hub.pod_name("bob"))
    volumes_by_name = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes_by_name["offload-storage-home"]["persistentVolumeClaim"] == {"claimName": "claim-bob"}
    assert volumes_by_name["offload-storage-cms-data"]["nfs"] == {"server": "nfs.example.org", "path": "/export/cms"}
    env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
    assert env["OFFLOAD_STORAGE"].splitlines() == [
        "home (your 1G volume) at /home/jovyan",
        "CMS group area at /data/cms",
        "no $WORK here",
    ]

    r = await _contents(hub, "bob", "notes.txt", "PUT", {"type": "file", "format": "text", "content": "kept"})
    assert r.status_code in (200, 201), r.text
    await _stop(hub, admin, "bob")
    assert (await _claim(admin, "claim-bob"))["metadata"]["uid"] == uid, "stopping keeps the claim"

    await _spawn_and_wait(hub, "bob", "cluster")
    assert (await _claim(admin, "claim-bob"))["metadata"]["uid"] == uid, "the next spawn reuses the claim"
    r = await _contents(hub, "bob", "notes.txt")
    assert r.status_code == 200, r.text
    assert r.json()["content"] == "kept"
    await _stop(hub, admin, "bob")


async def test_group_volume_reaches_only_members(hub, admin, volumes):
    volumes("claim-hana")
    await _spawn_and_wait(hub, "hana", "cluster")
    pod = await admin.pod(hub.pod_name("hana"))
    names = {v["name"] for v in pod["spec"]["volumes"]}
    assert "offload-storage-home" in names and "offload-storage-cms-data" not in names
    await _stop(hub, admin, "hana")


async def test_slurm_session_carries_the_site_binds_and_no_claim(hub, admin):
    await _spawn_and_wait(hub, "hana", "leonardo")
    pod = await admin.pod(hub.pod_name("hana"))
    assert pod["spec"]["nodeName"] == "vk-leonardo"
    assert pod["metadata"]["annotations"]["slurm-job.vk.io/singularity-mounts"] == "--bind /leonardo_work/hana:/work"
    assert not any(v["name"].startswith("offload-storage") for v in pod["spec"].get("volumes") or [])
    assert await _claim(admin, "claim-hana") is None, "no claim for a server that runs off-site"
    await _stop(hub, admin, "hana")
