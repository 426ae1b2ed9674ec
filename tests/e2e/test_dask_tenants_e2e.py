"""Dask tenant isolation on the test bed's real kube-apiserver.

A user server holding the opt-in Dask ServiceAccount (helm-values/rbac-dask.yaml)
tries, as an attacker would, to create Dask objects whose pods would mount
another user's token Secret, use another ServiceAccount, or replace another
user's cluster. The Dask operator (not run here) builds pods from the pod
specs inside these objects as they are (dask-kubernetes
``dask_kubernetes/operator/controller/controller.py``: ``build_scheduler_pod_spec``,
``build_worker_deployment_spec``), so the API server accepting the object is
the attack succeeding.

* Without the admission policy the API server accepts all of it (the gap,
  demonstrated).
* With helm-values/rbac-dask-tenant-policy.yaml (a ValidatingAdmissionPolicy the
  test bed's API server runs) each attempt is refused, and the cluster the
  server's own Dask config describes is still accepted.

The caller is the ServiceAccount with a token bound to its server's pod, as
KubeSpawner mounts it (TokenRequest with a ``boundObjectRef``).
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from offload_spawner.dask.dask_config import cluster_name, cluster_spec
from offload_spawner.dask.dask_placement import placement_secret, placement_secret_name
from offload_spawner.identity.server_secret import secret_name
from offload_spawner.pipeline.catalog import build_catalog
from offload_spawner.pipeline.limits import target_ceiling, user_ceiling
from testbed.kubeapi import KubeRest

pytestmark = pytest.mark.e2e

NAMESPACE = "jhub"
ROOT = Path(__file__).resolve().parents[2]
RBAC_FILE = ROOT / "helm-values" / "rbac-dask.yaml"
POLICY_FILE = ROOT / "helm-values" / "rbac-dask-tenant-policy.yaml"
SA = "offload-dask-user"
VICTIM, ATTACKER = "jupyter-alice", "jupyter-mallory"
DASK = "/apis/kubernetes.dask.org/v1/namespaces/jhub"


def _crd_dir() -> Path:
    import dask_kubernetes.operator

    return Path(dask_kubernetes.operator.__file__).parent / "deployment" / "helm" / "dask-kubernetes-operator" / "crds"


def _collection(obj: dict[str, Any]) -> str:
    kind, ns = obj["kind"], obj["metadata"].get("namespace")
    if kind == "ServiceAccount":
        return f"/api/v1/namespaces/{ns}/serviceaccounts"
    if kind == "Secret":
        return f"/api/v1/namespaces/{ns or NAMESPACE}/secrets"
    if kind in ("Role", "RoleBinding"):
        return f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/{kind.lower()}s"
    if kind == "CustomResourceDefinition":
        return "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
    if kind == "ValidatingAdmissionPolicy":
        return "/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicies"
    if kind == "ValidatingAdmissionPolicyBinding":
        return "/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicybindings"
    raise AssertionError(kind)


def _docs(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _wait(check, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not {what} after {timeout}s")
        time.sleep(0.5)


@pytest.fixture
def bed(cluster):
    """CRDs, the Dask RBAC, two server pods with their Secrets, and a bound token per server.

    Per test: the e2e conftest deletes every pod of the namespace after each
    test, and a token bound to a deleted pod is no longer valid."""
    api = cluster.control_plane.admin()
    for name in ("daskcluster", "daskworkergroup", "daskjob"):
        api.ensure(
            _collection({"kind": "CustomResourceDefinition", "metadata": {}}),
            yaml.safe_load((_crd_dir() / f"{name}.yaml").read_text()),
        )

    def established(plural: str) -> bool:
        crd = api.call("GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{plural}.kubernetes.dask.org")
        conditions = (crd.get("status") or {}).get("conditions") or []
        return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)

    for name in ("daskclusters", "daskworkergroups", "daskjobs"):
        _wait(lambda n=name: established(n), f"{name} established")
    for obj in _docs(RBAC_FILE):
        api.ensure(_collection(obj), obj)
    tokens = {}
    for pod in (VICTIM, ATTACKER):
        api.ensure(
            f"/api/v1/namespaces/{NAMESPACE}/secrets",
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": secret_name(pod)},
                "stringData": {"access_token": f"{pod}-token-not-real"},
            },
        )
        created = api.ensure(
            f"/api/v1/namespaces/{NAMESPACE}/pods",
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": pod},
                # never scheduled: only the pod object is needed to bind a token to it
                "spec": {
                    "serviceAccountName": SA,
                    "nodeSelector": {"offload-spawner.io/nowhere": "true"},
                    "containers": [{"name": "notebook", "image": "server:1"}],
                },
            },
        )
        uid = (
            created.get("metadata", {}).get("uid")
            or api.call("GET", f"/api/v1/namespaces/{NAMESPACE}/pods/{pod}")["metadata"]["uid"]
        )
        # what the spawner writes for a server holding a ServiceAccount: where its Dask pods may go
        api.ensure(f"/api/v1/namespaces/{NAMESPACE}/secrets", placement_secret(pod, own_cluster(pod)))
        request = api.call(
            "POST",
            f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts/{SA}/token",
            {
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {
                    "expirationSeconds": 3600,
                    "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": pod, "uid": uid},
                },
            },
        )
        tokens[pod] = request["status"]["token"]
    unbound = api.call(
        "POST",
        f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts/{SA}/token",
        {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": 3600},
        },
    )["status"]["token"]
    cp = cluster.control_plane
    yield {
        "admin": api,
        "as": {pod: KubeRest(cp.server, cp.ca_file, token=token) for pod, token in tokens.items()},
        "unbound": KubeRest(cp.server, cp.ca_file, token=unbound),
    }
    for pod in (VICTIM, ATTACKER):
        api.request("DELETE", f"/api/v1/namespaces/{NAMESPACE}/pods/{pod}")
        api.request("DELETE", f"/api/v1/namespaces/{NAMESPACE}/secrets/{secret_name(pod)}")
        api.request("DELETE", f"/api/v1/namespaces/{NAMESPACE}/secrets/{placement_secret_name(pod)}")


TARGETS = {
    "naples": {"display_name": "Naples", "backend": "htcondor", "node": "vk-naples", "offload": "dask"},
    "leonardo": {
        "display_name": "Leonardo",
        "backend": "slurm",
        "node": "vk-leonardo",
        "offload": "dask",
        "slurm": {"partition": "boost_usr_prod"},
    },
}
#: Each server's target: the victim's Dask pods may go to Leonardo, the attacker's only to Naples.
SERVER_TARGET = {VICTIM: "leonardo", ATTACKER: "naples"}


def own_cluster(pod: str) -> dict[str, Any]:
    """The DaskCluster this server's own Dask config describes."""
    catalog = build_catalog(offload_targets=TARGETS)
    slug = SERVER_TARGET[pod]
    target = catalog.offload_targets[slug]
    return cluster_spec(
        name=cluster_name(pod),
        target_slug=slug,
        target=target,
        settings=target.dask_settings,
        ceiling=target_ceiling(user_ceiling(catalog, []), target),
        image="ghcr.io/org/offload:1.0",
        secret=secret_name(pod),
        user_name=pod.removeprefix("jupyter-"),
    )


def attempts() -> dict[str, tuple[str, dict[str, Any]]]:
    """What the attacker's server tries: (collection, body) by name."""
    steal_env = own_cluster(ATTACKER)
    for role in ("worker", "scheduler"):
        for item in steal_env["spec"][role]["spec"]["containers"][0]["env"]:
            if "valueFrom" in item:
                item["valueFrom"]["secretKeyRef"]["name"] = secret_name(VICTIM)
    steal_volume = own_cluster(ATTACKER)
    steal_volume["metadata"]["name"] = f"{ATTACKER}-vol"
    worker = steal_volume["spec"]["worker"]["spec"]
    worker["volumes"] = [{"name": "loot", "secret": {"secretName": secret_name(VICTIM)}}]
    worker["containers"][0]["volumeMounts"] = [{"name": "loot", "mountPath": "/loot"}]
    other_account = own_cluster(ATTACKER)
    other_account["metadata"]["name"] = f"{ATTACKER}-sa"
    other_account["spec"]["scheduler"]["spec"]["serviceAccountName"] = "hub"
    other_account["spec"]["scheduler"]["spec"]["automountServiceAccountToken"] = True
    replace_victims = own_cluster(ATTACKER)
    replace_victims["metadata"]["name"] = cluster_name(VICTIM)
    group = {
        "apiVersion": "kubernetes.dask.org/v1",
        "kind": "DaskWorkerGroup",
        "metadata": {"name": f"{ATTACKER}-extra"},
        "spec": {"cluster": cluster_name(ATTACKER), "worker": copy.deepcopy(steal_volume["spec"]["worker"])},
    }
    return {
        "env from the victim's Secret": (f"{DASK}/daskclusters", steal_env),
        "volume of the victim's Secret": (f"{DASK}/daskclusters", steal_volume),
        "the hub's ServiceAccount": (f"{DASK}/daskclusters", other_account),
        "a cluster under the victim's name": (f"{DASK}/daskclusters", replace_victims),
        "a worker group mounting the victim's Secret": (f"{DASK}/daskworkergroups", group),
    }


def _delete_all(api: KubeRest) -> None:
    for kind in ("daskclusters", "daskworkergroups"):
        for item in api.call("GET", f"{DASK}/{kind}").get("items", []):
            api.request("DELETE", f"{DASK}/{kind}/{item['metadata']['name']}")


def test_without_the_policy_the_dask_rbac_lets_one_user_reach_anothers_secret(bed):
    attacker = bed["as"][ATTACKER]
    try:
        for what, (collection, body) in attempts().items():
            status, answer = attacker.request("POST", collection, body)
            # the gap: the API server accepts it, and the operator would build the pods
            assert status == 201, (what, status, answer)
    finally:
        _delete_all(bed["admin"])


def test_the_admission_policy_refuses_every_attempt_and_keeps_the_own_cluster(bed):
    api, attacker = bed["admin"], bed["as"][ATTACKER]
    policy = _docs(POLICY_FILE)
    assert {d["kind"] for d in policy} == {"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"}
    for obj in policy:
        api.ensure(_collection(obj), obj)
    probes = [attempts()["volume of the victim's Secret"], attempts()["a worker group mounting the victim's Secret"]]
    try:
        # the API server loads new policies asynchronously: wait until each kind's refuses
        def refused(collection: str, body: dict[str, Any]) -> bool:
            status, _ = attacker.request("POST", collection, body)
            if status == 201:
                api.request("DELETE", f"{collection}/{body['metadata']['name']}")
            return status == 403

        for collection, body in probes:
            _wait(lambda c=collection, b=body: refused(c, b), f"enforcing the policy on {collection}")
        for what, (collection, body) in attempts().items():
            status, answer = attacker.request("POST", collection, body)
            assert status == 403, (what, status, answer)
            assert "ValidatingAdmissionPolicy" in str(answer) or "Dask" in str(answer), answer
        # the server's own cluster, as its Dask config describes it, is accepted
        status, answer = attacker.request("POST", f"{DASK}/daskclusters", own_cluster(ATTACKER))
        assert status == 201, answer
        # ... and the victim's, from the victim's server
        status, answer = bed["as"][VICTIM].request("POST", f"{DASK}/daskclusters", own_cluster(VICTIM))
        assert status == 201, answer
        # the attacker may not delete the victim's cluster
        status, answer = attacker.request("DELETE", f"{DASK}/daskclusters/{cluster_name(VICTIM)}")
        assert status == 403, answer
        # a token not bound to a server's pod manages nothing
        status, answer = bed["unbound"].request(
            "POST", f"{DASK}/daskclusters", own_cluster(VICTIM) | {"metadata": {"name": f"{VICTIM}-other"}}
        )
        assert status == 403, answer
    finally:
        for obj in reversed(policy):
            api.request("DELETE", f"{_collection(obj)}/{obj['metadata']['name']}")
        _delete_all(api)


def placement_attempts() -> dict[str, tuple[str, dict[str, Any]]]:
    """Dask objects of the attacker's server whose pods would go where its selection
    does not allow (the attacker's target is Naples; Leonardo is the victim's)."""

    def variant(suffix: str) -> dict[str, Any]:
        body = own_cluster(ATTACKER)
        body["metadata"]["name"] = f"{ATTACKER}-{suffix}"
        return body

    out: dict[str, tuple[str, dict[str, Any]]] = {}
    body = variant("node")
    body["spec"]["worker"]["spec"]["nodeSelector"] = {"kubernetes.io/hostname": "vk-leonardo"}
    out["another virtual node (the victim's) by node selector"] = (f"{DASK}/daskclusters", body)
    body = variant("nosel")
    del body["spec"]["scheduler"]["spec"]["nodeSelector"]
    out["no node selector"] = (f"{DASK}/daskclusters", body)
    body = variant("nodename")
    body["spec"]["worker"]["spec"]["nodeName"] = "vk-leonardo"
    out["another virtual node by nodeName"] = (f"{DASK}/daskclusters", body)
    body = variant("affinity")
    body["spec"]["worker"]["spec"]["affinity"] = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {
                        "matchExpressions": [
                            {"key": "kubernetes.io/hostname", "operator": "In", "values": ["vk-leonardo"]}
                        ]
                    }
                ]
            }
        }
    }
    out["another virtual node by node affinity"] = (f"{DASK}/daskclusters", body)
    body = variant("tolerate")
    body["spec"]["worker"]["spec"]["tolerations"].append({"operator": "Exists"})
    out["a toleration of every taint"] = (f"{DASK}/daskclusters", body)
    body = variant("gpu")
    body["spec"]["worker"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] = "1"
    out["an accelerator"] = (f"{DASK}/daskclusters", body)
    body = variant("big")
    body["spec"]["scheduler"]["spec"]["containers"][0]["resources"]["limits"]["cpu"] = "64"
    out["more cores than allowed"] = (f"{DASK}/daskclusters", body)
    body = variant("mem")
    body["spec"]["worker"]["spec"]["containers"][0]["resources"]["requests"]["memory"] = "1Ti"
    out["more memory than allowed (request)"] = (f"{DASK}/daskclusters", body)
    body = variant("nolimit")
    del body["spec"]["worker"]["spec"]["containers"][0]["resources"]["limits"]
    out["no limits"] = (f"{DASK}/daskclusters", body)
    body = variant("flags")
    annotations = body["spec"]["worker"]["metadata"]["annotations"]
    annotations["slurm-job.vk.io/flags"] = "--partition=boost_usr_prod --gres=gpu:4"
    out["a site annotation the target does not write"] = (f"{DASK}/daskclusters", body)
    body = variant("sidecar")
    worker = body["spec"]["worker"]["spec"]
    worker["containers"].append(copy.deepcopy(worker["containers"][0]) | {"name": "more"})
    out["a second container"] = (f"{DASK}/daskclusters", body)
    group_spec = copy.deepcopy(own_cluster(ATTACKER)["spec"]["worker"])
    group_spec["spec"]["nodeSelector"] = {"kubernetes.io/hostname": "vk-leonardo"}
    out["a worker group on another virtual node"] = (
        f"{DASK}/daskworkergroups",
        {
            "apiVersion": "kubernetes.dask.org/v1",
            "kind": "DaskWorkerGroup",
            "metadata": {"name": f"{ATTACKER}-extra"},
            "spec": {"cluster": cluster_name(ATTACKER), "worker": group_spec},
        },
    )
    job_cluster = own_cluster(ATTACKER)["spec"]
    job_pod = copy.deepcopy(job_cluster["worker"])
    job_pod["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] = "1"
    out["a job runner pod with an accelerator"] = (
        f"{DASK}/daskjobs",
        {
            "apiVersion": "kubernetes.dask.org/v1",
            "kind": "DaskJob",
            "metadata": {"name": f"{ATTACKER}-job"},
            "spec": {"job": job_pod, "cluster": {"spec": job_cluster}},
        },
    )
    return out


def test_the_admission_policy_keeps_dask_pods_where_the_selection_allows(bed):
    api, attacker, victim = bed["admin"], bed["as"][ATTACKER], bed["as"][VICTIM]
    policy = _docs(POLICY_FILE)
    for obj in policy:
        api.ensure(_collection(obj), obj)
    probe = placement_attempts()["another virtual node (the victim's) by node selector"]
    try:

        def refused(collection: str, body: dict[str, Any]) -> bool:
            status, _ = attacker.request("POST", collection, body)
            if status == 201:
                api.request("DELETE", f"{collection}/{body['metadata']['name']}")
            return status == 403

        _wait(lambda: refused(*probe), "enforcing the placement policy")
        for what, (collection, body) in placement_attempts().items():
            # Each Dask kind has its own policy, which the API server starts
            # enforcing on its own, a moment after it is created.
            _wait(lambda c=collection, b=body: refused(c, b), f"refusing {what}")
            status, answer = attacker.request("POST", collection, body)
            assert status == 403, (what, status, answer)
            assert "where this server's selection allows" in str(answer), (what, answer)
        # what the victim's selection allows (Leonardo) is the victim's only
        status, answer = victim.request("POST", f"{DASK}/daskclusters", own_cluster(VICTIM))
        assert status == 201, answer
        # the attacker's own cluster, and a change of its worker count, stay allowed
        status, answer = attacker.request("POST", f"{DASK}/daskclusters", own_cluster(ATTACKER))
        assert status == 201, answer
        current = attacker.call("GET", f"{DASK}/daskclusters/{cluster_name(ATTACKER)}")
        current["spec"]["worker"]["replicas"] = 3
        status, answer = attacker.request("PUT", f"{DASK}/daskclusters/{cluster_name(ATTACKER)}", current)
        assert status == 200, answer
        # ... but not moving it to another node afterwards
        current = attacker.call("GET", f"{DASK}/daskclusters/{cluster_name(ATTACKER)}")
        current["spec"]["worker"]["spec"]["nodeSelector"] = {"kubernetes.io/hostname": "vk-leonardo"}
        status, answer = attacker.request("PUT", f"{DASK}/daskclusters/{cluster_name(ATTACKER)}", current)
        assert status == 403, answer
        # a server whose target has no Dask (its allowance: nothing) makes no Dask pods
        api.request("DELETE", f"/api/v1/namespaces/{NAMESPACE}/secrets/{placement_secret_name(ATTACKER)}")
        api.ensure(f"/api/v1/namespaces/{NAMESPACE}/secrets", placement_secret(ATTACKER, None))
        body = own_cluster(ATTACKER)
        body["metadata"]["name"] = f"{ATTACKER}-again"
        _wait(lambda: refused(f"{DASK}/daskclusters", body), "the attacker's allowance of nothing")
    finally:
        for obj in reversed(policy):
            api.request("DELETE", f"{_collection(obj)}/{obj['metadata']['name']}")
        _delete_all(api)
