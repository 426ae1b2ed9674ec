"""Dask offloading on the test bed's real control plane: on the HTCondor target
(the test bed's imitation of interLink) and on a SLURM target through the real
interLink stack and a real SLURM (the session-wide ``interlink_stack`` fixture).

The server's Dask file is read back with Dask's own config machinery, the
DaskCluster comes from dask-kubernetes' KubeCluster, and its scheduler and
worker pods are built with the dask-kubernetes operator's own functions. No
dask operator runs here: the test creates those pods itself (with the admin
identity, standing in for the operator's ServiceAccount), and the real
kube-scheduler places them. The per-server Secret the pods read their tokens
from is also created by the test, standing in for the spawner's Secret
machinery. The containers' command is replaced by a short check of
their environment: the test bed runs commands as local processes, and a real
``dask-scheduler --host 0.0.0.0`` would bind a fixed port shared with other runs.

The opt-in RBAC file (helm-values/rbac-dask.yaml) is applied and checked with
the API server's own authorizer (SubjectAccessReview): the dask-kubernetes
CRDs need not be installed for that.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

from dask_pods import operator_pods_for
from offload_spawner.identity.server_secret import ACCESS_TOKEN_KEY, HUB_TOKEN_KEY
from offload_spawner.pipeline.catalog import INTERLINK_TOLERATION
from testbed.interlink import DEFAULT_NODE

from .conftest import server_token_secret

NAMESPACE = "jhub"
POD = "jupyter-dask-e2e"
RBAC_FILE = Path(__file__).resolve().parents[2] / "helm-values" / "rbac-dask.yaml"
FAKE_HUB_TOKEN = "e2e-hub-token-not-real"
FAKE_ACCESS_TOKEN = "e2e-access-token-not-real"
NAPLES = {
    "display_name": "INFN Naples (HTCondor)",
    "backend": "htcondor",
    "node": "vk-naples",
    "offload": "dask",
    "limits": {"cores": 96, "memory": "180G"},
    "hub_api_url": "https://hub.example.org/hub/api",
    "dask": {"worker_cores": 2, "worker_memory": "1G", "scheduler_memory": "1G"},
}

CHECK_ENV = f"""
import os, sys
if "JUPYTERHUB_API_TOKEN" in os.environ:
    sys.exit("the hub token reached a Dask pod whose target's tokens.dask_pods does not name it")
expected = {{
    "ACCESS_TOKEN": {FAKE_ACCESS_TOKEN!r},
    "JUPYTERHUB_USER": "dask-e2e",
    "JUPYTERHUB_API_URL": "https://hub.example.org/hub/api",
}}
for key, value in expected.items():
    if os.environ.get(key) != value:
        sys.exit(f"{{key}} is not what the Secret/spec holds")
"""


def phase_is(*phases: str):
    return lambda p: (p or {}).get("status", {}).get("phase") in phases


def _rbac_objects() -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(RBAC_FILE.read_text()) if doc]


def _collection(obj: dict[str, Any]) -> str:
    ns = obj["metadata"]["namespace"]
    if obj["kind"] == "ServiceAccount":
        return f"/api/v1/namespaces/{ns}/serviceaccounts"
    return f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/{obj['kind'].lower()}s"


async def test_dask_pods_from_the_servers_config_land_on_the_virtual_node(cluster, admin, tmp_path):
    """On the HTCondor target (the test bed's imitation: interLink's HTCondor plugin does not run here)."""
    await _run_dask_pods(admin, tmp_path, "naples", NAPLES, finish_timeout=30)


async def test_dask_pods_on_the_real_slurm_stack_read_their_tokens_from_the_secret(admin, tmp_path, interlink_stack):
    """The same pods through the real interLink stack: interLink's virtual kubelet resolves
    the Secret references (interLink ``pkg/virtualkubelet/execute.go``) into the env file
    of each SLURM job, and the check runs in the job. One core each, one after the other
    if SLURM's two cores are taken."""
    await _run_dask_pods(
        admin,
        tmp_path,
        "slurm-dask",
        SLURM_DASK,
        finish_timeout=180,
        job_output=lambda pod: _slurm_job_output(interlink_stack, pod),
    )


SLURM_DASK = {
    "display_name": "Local SLURM Dask (interLink)",
    "backend": "slurm",
    "node": DEFAULT_NODE,
    "offload": "dask",
    "slurm": {"partition": "boost_usr_prod"},
    "limits": {"cores": 2, "memory": "4G"},
    "hub_api_url": "https://hub.example.org/hub/api",
    "dask": {"worker_cores": 1, "worker_memory": "1G", "scheduler_memory": "1G"},
}


def _slurm_job_output(stack, pod: dict[str, Any]) -> str:
    folder = stack.data_root / f"{pod['metadata']['namespace']}-{pod['metadata']['uid']}"
    return (
        "\n".join(f"== {f.name}:\n{f.read_text(errors='replace')[-2000:]}" for f in sorted(folder.glob("*.out")))
        or f"nothing in {folder}"
    )


async def _run_dask_pods(
    admin, tmp_path, slug: str, settings: dict[str, Any], *, finish_timeout: float, job_output=None
) -> None:
    """The scheduler and worker pods the dask-kubernetes operator builds from the server's
    Dask file, each running CHECK_ENV once, land on the target's node and succeed."""
    name, namespace, pods = await operator_pods_for(
        slug, settings, server_pod=POD, user_name="dask-e2e", tmp_path=tmp_path
    )
    assert namespace == NAMESPACE

    tokens = {HUB_TOKEN_KEY: FAKE_HUB_TOKEN, ACCESS_TOKEN_KEY: FAKE_ACCESS_TOKEN}
    async with server_token_secret(admin, POD, tokens):
        try:
            for role, pod in pods.items():
                pod["metadata"]["name"] = f"{name}-{role}"
                container = pod["spec"]["containers"][0]
                container["command"], container["args"] = [sys.executable, "-c", CHECK_ENV], []
                container.pop("readinessProbe", None)
                container.pop("livenessProbe", None)
                pod["spec"]["restartPolicy"] = "Never"  # a Deployment's pods restart; this check runs once
                await admin.create_pod(pod)
            for role in pods:
                done = await admin.wait_pod(
                    f"{name}-{role}", phase_is("Succeeded", "Failed"), "finished", timeout=finish_timeout
                )
                # the real kube-scheduler bound it to the virtual node ...
                assert done["spec"]["nodeName"] == settings["node"]
                assert INTERLINK_TOLERATION in done["spec"]["tolerations"]
                assert done["metadata"]["labels"]["dask.org/component"] == role
                assert done["metadata"]["labels"]["offload-spawner.io/target"] == slug
                # ... and the tokens reached the process from the Secret, by reference only
                log = done["metadata"]["annotations"].get("testbed.offload-spawner.io/log", "")
                why = job_output(done) if job_output else (Path(log).read_text() if log else done["status"])
                assert done["status"]["phase"] == "Succeeded", why
                env = done["spec"]["containers"][0]["env"]
                assert FAKE_HUB_TOKEN not in str(env) and FAKE_ACCESS_TOKEN not in str(env)
        finally:
            for role in pods:
                await admin.delete_pod(f"{name}-{role}")
            for role in pods:  # a virtual kubelet deletes the pod once its remote job is gone
                await admin.wait_pod(f"{name}-{role}", lambda p: p is None, "deleted", timeout=90)


async def test_the_opt_in_rbac_lets_users_run_dask_and_nothing_more(cluster):
    api = cluster.control_plane.admin()
    objects = _rbac_objects()
    assert {o["kind"] for o in objects} == {"ServiceAccount", "Role", "RoleBinding"}
    for obj in objects:
        assert obj["metadata"]["namespace"] == NAMESPACE  # the test bed's hub namespace
        api.ensure(_collection(obj), obj)
    user = f"system:serviceaccount:{NAMESPACE}:offload-dask-user"

    def allowed(verb: str, resource: str, group: str = "", namespace: str = NAMESPACE, sub: str = "") -> bool:
        review = api.call(
            "POST",
            "/apis/authorization.k8s.io/v1/subjectaccessreviews",
            {
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SubjectAccessReview",
                "spec": {
                    "user": user,
                    "groups": ["system:serviceaccounts", f"system:serviceaccounts:{NAMESPACE}"],
                    "resourceAttributes": {
                        "namespace": namespace,
                        "verb": verb,
                        "group": group,
                        "resource": resource,
                        "subresource": sub,
                    },
                },
            },
        )
        return bool(review["status"].get("allowed"))

    try:
        dask = "kubernetes.dask.org"
        for verb in ("create", "get", "list", "watch", "patch", "delete"):
            for resource in ("daskclusters", "daskworkergroups", "daskjobs", "daskautoscalers"):
                assert allowed(verb, resource, dask), (verb, resource)
        assert allowed("patch", "daskworkergroups", dask, sub="scale")
        for verb in ("get", "list", "watch"):
            assert allowed(verb, "pods") and allowed(verb, "services")
        assert allowed("get", "pods", sub="log")
        # the scheduler is reached through its Service, not a port-forward to any pod
        assert not allowed("create", "pods", sub="portforward") and not allowed("get", "pods", sub="portforward")

        # never: other users' tokens, making pods directly, other namespaces
        assert not allowed("get", "secrets") and not allowed("list", "secrets")
        assert not allowed("create", "pods") and not allowed("delete", "pods")
        assert not allowed("create", "pods", sub="exec")
        assert not allowed("create", "daskclusters", dask, namespace="kube-system")
        assert not allowed("list", "pods", namespace="kube-system")
    finally:
        for obj in reversed(objects):
            api.request("DELETE", f"{_collection(obj)}/{obj['metadata']['name']}")
