"""Dask offloading through a real JupyterHub (MockHub + configurable-http-proxy):
the server pod of a Dask target carries its Dask configuration file (from the
per-server Secret) and env; other targets carry none. Pods are recorded at the
Kubernetes API edge (see hub_fixtures.RecordingSpawner).
"""

from __future__ import annotations

import copy

import kubernetes_validate
import pytest
import yaml
from jupyterhub import orm

from hub_fixtures import RecordingSpawner
from offload_spawner.dask.dask_config import DASK_CONFIG_DIR, DASK_CONFIG_FILE
from offload_spawner.identity.server_secret import DASK_HUB_TOKEN_KEY, file_key, secret_name

pytestmark = pytest.mark.hub

GROUPS = {"highrate": ["hana"]}


def pod_of(user: str) -> dict:
    [pod] = [pod for name, pod in RecordingSpawner.recorded if name == user]
    return pod


async def test_dask_target_server_gets_the_dask_file_and_env(offload_hub, contract_config):
    hub = await offload_hub(contract_config, groups=GROUPS, users=("hana",))
    r = await hub.api_spawn("hana", {"profile": "analysis", "image": "offload", "cores": 4, "target": "naples"})
    assert r.status_code in (201, 202), r.text
    await hub.wait_ready("hana")

    pod = pod_of("hana")
    kubernetes_validate.validate(pod, desired_version="1.34", strict=True)
    spawner = hub.app.users["hana"].spawner
    secret = secret_name(spawner.pod_name)
    [volume] = [v for v in pod["spec"]["volumes"] if (v.get("secret") or {}).get("secretName") == secret]
    assert volume["secret"]["items"] == [{"key": file_key(DASK_CONFIG_FILE), "path": "offload-spawner.yaml"}]
    container = pod["spec"]["containers"][0]
    assert {"name": volume["name"], "mountPath": DASK_CONFIG_DIR, "readOnly": True} in container["volumeMounts"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["DASK_ROOT_CONFIG"] == DASK_CONFIG_DIR

    files = await spawner.server_files()
    assert set(files) == {DASK_CONFIG_FILE}
    config = yaml.safe_load(files[DASK_CONFIG_FILE])
    spec = config["kubernetes"]["custom-cluster-spec"]
    scheduler = spec["spec"]["scheduler"]["spec"]
    assert scheduler["nodeSelector"] == {"kubernetes.io/hostname": "vk-naples"}
    # the Dask pods default to the server's image (the profile's "offload" choice)
    assert scheduler["containers"][0]["image"] == container["image"] == "ghcr.io/org/offload:1.0"
    assert config["kubernetes"]["namespace"] == spawner.namespace
    # the hub's token for this server is never in the file
    assert spawner.api_token and spawner.api_token not in files[DASK_CONFIG_FILE]
    assert "secretKeyRef" in files[DASK_CONFIG_FILE]


async def test_session_target_without_dask_settings_gets_no_dask_file(offload_hub, contract_config):
    hub = await offload_hub(contract_config, groups={"ai-infn": ["carol"], "cms": ["carol"]}, users=("carol",))
    r = await hub.api_spawn("carol", {"profile": "analysis", "target": "leonardo"})
    assert r.status_code in (201, 202), r.text
    await hub.wait_ready("carol")
    pod = pod_of("carol")
    assert await hub.app.users["carol"].spawner.server_files() == {}
    assert not any("offload-files" in v["name"] for v in pod["spec"].get("volumes") or [])
    assert "DASK_ROOT_CONFIG" not in {e["name"] for e in pod["spec"]["containers"][0]["env"]}


async def test_dask_pods_hub_token_is_scoped_and_revoked_when_the_server_ends(offload_hub, contract_config):
    """Through a real hub; the recording spawner's stop() is a stand-in that does not call
    super(), so what revokes here is the clear_state() JupyterHub calls after every stop,
    the path of a server that ended by itself."""
    config = copy.deepcopy(contract_config)
    naples = config["offload_targets"]["naples"]
    naples["tokens"] = {
        **naples.get("tokens", {}),
        "dask_pods": ["access_token", "hub_token"],
        "dask_hub_scopes": ["read:users:name!user", "read:users:activity!user"],
    }
    hub = await offload_hub(config, groups=GROUPS, users=("hana",))
    r = await hub.api_spawn("hana", {"profile": "analysis", "image": "offload", "cores": 4, "target": "naples"})
    assert r.status_code in (201, 202), r.text
    await hub.wait_ready("hana")
    spawner = hub.app.users["hana"].spawner
    token_id = spawner._dask_hub_token_id
    found = hub.app.db.get(orm.APIToken, token_id)
    assert found is not None and found.user.name == "hana"
    assert sorted(found.scopes) == ["read:users:activity!user", "read:users:name!user"]
    assert spawner.get_state()["offload_dask_hub_token_id"] == token_id
    spec = yaml.safe_load((await spawner.server_files())[DASK_CONFIG_FILE])["kubernetes"]["custom-cluster-spec"]
    env = {e["name"]: e for e in spec["spec"]["worker"]["spec"]["containers"][0]["env"]}
    assert env["JUPYTERHUB_API_TOKEN"]["valueFrom"]["secretKeyRef"]["key"] == DASK_HUB_TOKEN_KEY

    await hub.stop("hana")
    hub.app.db.expire_all()
    assert hub.app.db.get(orm.APIToken, token_id) is None
    assert "offload_dask_hub_token_id" not in spawner.get_state()
