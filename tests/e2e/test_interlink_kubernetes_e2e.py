"""A notebook pod offloaded by the real interLink Kubernetes plugin into a second namespace.

The chain (see testbed/k8s_plugin.py): the pod ``offload-spawner render`` gives
for an ``interlink-kubernetes`` target is created in the hub namespace with the
hub's identity, as the hub creates it, followed by its token Secret (owned by
the pod); the real kube-scheduler binds it to ``vk-k8s``, the node interLink's
own virtual kubelet registered; the virtual kubelet hands it to interLink's API
server, which calls the real interlink-kubernetes-plugin; the plugin creates the
pod, its Secrets and ConfigMaps in namespace ``offload-remote-jhub`` of the same
test-bed apiserver, where the scheduler puts it on ``node-local`` and the test
bed's stand-in kubelet runs the real ``jupyterhub-singleuser``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from offload_spawner.identity.tokens import owner_reference
from testbed.k8s_plugin import DEFAULT_NODE, REMOTE_NODE, SOURCE_POD_UID_LABEL, remote_namespace

from .conftest import NAMESPACE, SINGLEUSER

REMOTE_NAMESPACE = remote_namespace(NAMESPACE)
TARGET = {
    "display_name": "Remote Kubernetes (interLink)",
    "backend": "interlink-kubernetes",
    "node": DEFAULT_NODE,
    "offload": "session",
    "limits": {"cores": 2, "memory": "4G"},
}
CONFIG = {
    "hub": {
        "config": {
            "JupyterHub": {"spawner_class": "offload"},
            "OffloadSpawner": {
                "namespace": NAMESPACE,
                "cmd": [SINGLEUSER],
                "args": ["--allow-root"],
                "offload_targets": {"remote-k8s": TARGET},
            },
        }
    },
    "singleuser": {
        "profileList": [
            {
                "display_name": "Analysis",
                "slug": "analysis",
                "cores": {"choices": [1], "default": 1},
                "memory": {"choices": ["1G"], "default": "1G"},
                "targets": ["remote-k8s"],
            }
        ]
    },
}


#: An IAM login's auth_state: its access token reaches the server as a file, from a Secret volume.
AUTH_STATE = {"access_token": "made-up.access.token", "oauth_user": {"preferred_username": "erin"}}


def render(tmp_path: Path) -> dict[str, Any]:
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump(CONFIG))
    auth_state = tmp_path / "auth_state.json"
    auth_state.write_text(json.dumps(AUTH_STATE))
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "offload_spawner.hub.cli",
            "render",
            "-f",
            str(values),
            "--user",
            "erin",
            "--auth-state",
            str(auth_state),
            "-o",
            "profile=analysis",
            "-o",
            "target=remote-k8s",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def with_values(secret: dict[str, Any]) -> dict[str, Any]:
    """The rendered Secret with its redacted values replaced by made-up ones (the hub's are tokens)."""
    body = json.loads(json.dumps(secret))
    body.pop("stringData", None)
    body["data"] = {key: base64.b64encode(f"made-up-{key}".encode()).decode() for key in secret_keys(secret)}
    return body


def secret_keys(secret: dict[str, Any]) -> list[str]:
    return sorted({*(secret.get("data") or {}), *(secret.get("stringData") or {})})


async def until(what: str, check, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        assert time.monotonic() < deadline, f"not {what} after {timeout:.0f}s"
        await asyncio.sleep(0.5)


async def remote_objects(admin, kind: str, pod_uid: str) -> list[dict[str, Any]]:
    """Pods/Secrets/ConfigMaps the plugin made for the pod with ``pod_uid`` (its source-uid label)."""
    calls = {
        "pods": admin.core.list_namespaced_pod,
        "secrets": admin.core.list_namespaced_secret,
        "configmaps": admin.core.list_namespaced_config_map,
    }
    response = await calls[kind](
        REMOTE_NAMESPACE, label_selector=f"{SOURCE_POD_UID_LABEL}={pod_uid}", _preload_content=False
    )
    if response.status == 404:
        return []
    return json.loads(await response.read())["items"]


async def namespace_objects(admin, kind: str, namespace: str) -> list[str]:
    calls = {
        "pods": admin.core.list_namespaced_pod,
        "secrets": admin.core.list_namespaced_secret,
        "configmaps": admin.core.list_namespaced_config_map,
    }
    response = await calls[kind](namespace, _preload_content=False)
    if response.status == 404:
        return []
    # Every namespace gets the cluster's CA bundle from kube-controller-manager.
    return [
        o["metadata"]["name"]
        for o in json.loads(await response.read())["items"]
        if o["metadata"]["name"] != "kube-root-ca.crt"
    ]


async def test_a_notebook_pod_runs_in_the_second_namespace_and_delete_removes_both(
    k8s_plugin_stack, admin, hub_kube, tmp_path
):
    rendered = render(tmp_path)
    body = rendered["pod"]
    assert body["spec"]["nodeSelector"]["kubernetes.io/hostname"] == DEFAULT_NODE
    assert len(rendered["secrets"]) == 1, rendered["secrets"]
    assert [v["secret"]["secretName"] for v in body["spec"]["volumes"] if "secret" in v] == [
        rendered["secrets"][0]["metadata"]["name"]
    ]
    name = body["metadata"]["name"]
    submitted_before = k8s_plugin_stack.pods_submitted()

    # As the hub does it: the pod, then its token Secret owned by the pod.
    pod = await hub_kube.create_pod(body)
    uid = pod["metadata"]["uid"]
    secret = with_values(rendered["secrets"][0])
    secret["metadata"]["ownerReferences"] = [owner_reference(name, uid)]
    await hub_kube._json(await hub_kube.core.create_namespaced_secret(NAMESPACE, secret, _preload_content=False))

    async def remote_running() -> dict[str, Any] | None:
        pods = await remote_objects(admin, "pods", uid)
        running = [p for p in pods if (p.get("status") or {}).get("phase") == "Running"]
        return running[0] if running else None

    remote = await until("the remote pod Running", remote_running, 120)
    assert remote["metadata"]["namespace"] == REMOTE_NAMESPACE
    assert remote["spec"]["nodeName"] == REMOTE_NODE
    assert remote["metadata"]["name"].startswith(name)
    # The plugin's ping and status calls bring the remote state back to the pod in the hub namespace.
    source = await admin.wait_pod(
        name, lambda p: (p or {}).get("status", {}).get("phase") == "Running", "Running on the virtual node", timeout=90
    )
    assert source["spec"]["nodeName"] == DEFAULT_NODE
    assert k8s_plugin_stack.pods_submitted() == submitted_before + 1
    # interLink's virtual kubelet resolves env values from Secrets before it calls the plugin
    # (interLink pkg/virtualkubelet/execute.go, resolveEnvFromRefs), so the token reaches the
    # remote pod as a plain env value and the plugin makes no Secret for it (README, limitations).
    token_env = {
        e["name"]: sorted(e)
        for e in remote["spec"]["containers"][0]["env"]
        if e["name"] in ("JUPYTERHUB_API_TOKEN", "ACCESS_TOKEN")
    }
    assert token_env == {"JUPYTERHUB_API_TOKEN": ["name", "value"], "ACCESS_TOKEN": ["name", "value"]}, (
        "the tokens now reach the remote pod differently: update README's limitations"
    )
    # The Secret *volume* (the access token file) goes along: the plugin re-creates that Secret
    # in the remote namespace under a name scoped to the pod's uid (_create_secrets, _scope_obj_name).
    remote_secrets = await remote_objects(admin, "secrets", uid)
    assert [s["metadata"]["name"] for s in remote_secrets] == [f"{secret['metadata']['name']}-{uid}"]
    assert sorted(remote_secrets[0]["data"]) == secret_keys(rendered["secrets"][0])
    assert [v["secret"]["secretName"] for v in remote["spec"]["volumes"] if "secret" in v] == [
        remote_secrets[0]["metadata"]["name"]
    ]

    await hub_kube.delete_pod(name)
    await admin.wait_pod(name, lambda p: p is None, "deleted", timeout=90)

    async def all_gone() -> bool:
        left = {
            f"{ns}/{kind}": await namespace_objects(admin, kind, ns)
            for ns in (NAMESPACE, REMOTE_NAMESPACE)
            for kind in ("pods", "secrets", "configmaps")
        }
        gone = not any(left.values())
        if not gone:
            all_gone.left = left  # type: ignore[attr-defined]
        return gone

    try:
        await until("every pod, Secret and ConfigMap gone from both namespaces", all_gone, 90)
    except AssertionError as e:
        pytest.fail(f"{e}: left {getattr(all_gone, 'left', {})}")
