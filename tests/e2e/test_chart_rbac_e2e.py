"""The RBAC the real Zero-to-JupyterHub chart renders for helm-values/values.yaml,
plus this project's opt-in helm-values/rbac-*.yaml, applied to the test bed's
kube-apiserver and asked with SubjectAccessReviews: the hub and the user
servers can do what docs/admin-guide.md says, and nothing more.

Everything goes into its own namespace (``chart-rbac``, also the release name,
so cluster-scoped names do not meet the test bed's own): the other e2e tests
keep the test bed's ``jhub`` namespace as it is.
"""

from __future__ import annotations

import copy
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from testbed import LocalCluster
from upstream_data import UpstreamDataMissing, find_z2jh_chart

ROOT = Path(__file__).resolve().parents[2]
NS = "chart-rbac"
RBAC_KINDS = {"ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"}

try:
    CHART = find_z2jh_chart()
except UpstreamDataMissing as e:
    pytest.skip(str(e), allow_module_level=True)
HELM = Path(
    subprocess.run(
        [str(ROOT / "testbed" / "build_helm.sh"), "--bin"], capture_output=True, text=True, check=True
    ).stdout.strip()
)
if not HELM.exists():
    pytest.skip(f"helm is not built: run {ROOT / 'testbed' / 'build_helm.sh'}", allow_module_level=True)

from z2jh_chart import prepared_chart, render  # noqa: E402


def _collection(doc: dict[str, Any]) -> str:
    kind, ns = doc["kind"], doc["metadata"].get("namespace", NS)
    if kind == "ServiceAccount":
        return f"/api/v1/namespaces/{ns}/serviceaccounts"
    plural = {
        "Role": "roles",
        "RoleBinding": "rolebindings",
        "ClusterRole": "clusterroles",
        "ClusterRoleBinding": "clusterrolebindings",
    }[kind]
    if kind.startswith("Cluster"):
        return f"/apis/rbac.authorization.k8s.io/v1/{plural}"
    return f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/{plural}"


def _apply(admin, doc: dict[str, Any]) -> None:
    path = _collection(doc)
    status, body = admin.request("POST", path, doc)
    if status == 409:
        status, body = admin.request("PUT", f"{path}/{doc['metadata']['name']}", doc)
    assert status in (200, 201), f"{doc['kind']} {doc['metadata']['name']}: HTTP {status} {body}"


def _opt_in_rbac() -> list[dict[str, Any]]:
    """The RBAC objects of helm-values/rbac-*.yaml as an admin applies them, moved
    to this test's namespace (the files say to change ``jhub`` to yours) and
    names. The Dask tenant admission policy beside them is not RBAC: its own test
    (test_dask_tenants_e2e.py) applies and tries it."""
    docs = []
    for path in sorted((ROOT / "helm-values").glob("rbac-*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc or doc["kind"] not in RBAC_KINDS:
                continue
            doc = copy.deepcopy(doc)
            if "namespace" in doc["metadata"]:
                doc["metadata"]["namespace"] = NS
            if doc["kind"].startswith("Cluster"):
                doc["metadata"]["name"] = f"{NS}-{doc['metadata']['name']}"
                if doc["kind"] == "ClusterRoleBinding":
                    doc["roleRef"]["name"] = f"{NS}-{doc['roleRef']['name']}"
            for subject in doc.get("subjects", []):
                subject["namespace"] = NS
            docs.append(doc)
    return docs


@pytest.fixture(scope="module")
def applied(cluster: LocalCluster, tmp_path_factory) -> dict[str, Any]:
    chart = prepared_chart(CHART, tmp_path_factory.mktemp("chart"))
    manifests = render(HELM, chart, [ROOT / "helm-values" / "values.yaml"], release=NS, namespace=NS)
    rbac = [d for d in manifests if d["kind"] in RBAC_KINDS]
    admin = cluster.control_plane.admin()
    admin.ensure("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    for doc in rbac + _opt_in_rbac():
        _apply(admin, doc)
    # The authorizer sees new RBAC objects through its informers: wait until it does.
    assert _eventually(lambda: can(admin, "hub", "create", "secrets"), True)
    assert _eventually(lambda: can(admin, "offload-dask-user", "create", "daskclusters", group=DASK), True)
    assert _eventually(lambda: can(admin, "hub", "list", "nodes", namespace=None), True)
    return {"admin": admin, "rendered": rbac}


def can(
    admin,
    account: str,
    verb: str,
    resource: str,
    namespace: str | None = NS,
    group: str = "",
    subresource: str = "",
    name: str = "",
) -> bool:
    attributes = {"verb": verb, "resource": resource, "group": group}
    if namespace:
        attributes["namespace"] = namespace
    if subresource:
        attributes["subresource"] = subresource
    if name:
        attributes["name"] = name
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "user": f"system:serviceaccount:{NS}:{account}",
            "groups": ["system:serviceaccounts", f"system:serviceaccounts:{NS}", "system:authenticated"],
            "resourceAttributes": attributes,
        },
    }
    result = admin.call("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", review)
    return bool(result["status"].get("allowed"))


def test_the_chart_rendered_the_hub_role(applied):
    kinds = {(d["kind"], d["metadata"]["name"]) for d in applied["rendered"]}
    assert {("ServiceAccount", "hub"), ("Role", "hub"), ("RoleBinding", "hub")} <= kinds


# What the hub does (docs/admin-guide.md): KubeSpawner's pods and PVCs, the
# per-server token Secret (create, read, delete: rotation is delete + create),
# events for progress, and with rbac-availability.yaml nodes and pods cluster-wide.
HUB_CAN = [
    ("create", "pods"),
    ("delete", "pods"),
    ("get", "pods"),
    ("list", "pods"),
    ("watch", "pods"),
    ("create", "secrets"),
    ("delete", "secrets"),
    ("get", "secrets"),
    ("list", "secrets"),
    ("create", "persistentvolumeclaims"),
    ("list", "events"),
    ("watch", "events"),
]
HUB_CANNOT = [
    ("update", "secrets"),
    ("patch", "secrets"),
    ("update", "pods"),
    ("patch", "pods"),
    ("create", "pods/exec"),
    ("create", "roles"),
    ("create", "rolebindings"),
    ("delete", "events"),
]


@pytest.mark.parametrize(("verb", "resource"), HUB_CAN, ids=[" ".join(x) for x in HUB_CAN])
def test_hub_can(applied, verb, resource):
    resource, _, sub = resource.partition("/")
    assert can(applied["admin"], "hub", verb, resource, subresource=sub)


@pytest.mark.parametrize(("verb", "resource"), HUB_CANNOT, ids=[" ".join(x) for x in HUB_CANNOT])
def test_hub_cannot(applied, verb, resource):
    resource, _, sub = resource.partition("/")
    group = "rbac.authorization.k8s.io" if resource in ("roles", "rolebindings") else ""
    assert not can(applied["admin"], "hub", verb, resource, group=group, subresource=sub)


def test_hub_reads_nodes_and_pods_cluster_wide_for_availability_only(applied):
    admin = applied["admin"]
    assert can(admin, "hub", "list", "nodes", namespace=None)
    assert can(admin, "hub", "watch", "nodes", namespace=None)
    assert can(admin, "hub", "list", "pods", namespace="kube-system")
    # ... and nothing else outside its namespace.
    assert not can(admin, "hub", "patch", "nodes", namespace=None)
    assert not can(admin, "hub", "delete", "nodes", namespace=None)
    assert not can(admin, "hub", "get", "secrets", namespace="kube-system")
    assert not can(admin, "hub", "create", "pods", namespace="kube-system")
    assert not can(admin, "hub", "get", "pods", namespace="kube-system", name="etcd")


DASK = "kubernetes.dask.org"


def test_user_server_with_the_dask_account_manages_dask_clusters(applied):
    admin = applied["admin"]
    for verb in ("create", "get", "list", "watch", "patch", "delete"):
        assert can(admin, "offload-dask-user", verb, "daskclusters", group=DASK), verb
    assert can(admin, "offload-dask-user", "update", "daskworkergroups", group=DASK, subresource="scale")
    assert can(admin, "offload-dask-user", "get", "pods")
    assert can(admin, "offload-dask-user", "get", "pods", subresource="log")
    assert not can(admin, "offload-dask-user", "create", "pods", subresource="portforward")


def test_user_server_cannot_read_another_users_secret_or_make_pods(applied):
    admin = applied["admin"]
    for account in ("offload-dask-user", "default"):
        assert not can(admin, account, "get", "secrets", name="jupyter-bob-offload"), account
        assert not can(admin, account, "list", "secrets"), account
        assert not can(admin, account, "watch", "secrets"), account
        assert not can(admin, account, "create", "pods"), account
        assert not can(admin, account, "delete", "pods"), account
        assert not can(admin, account, "create", "pods", subresource="exec"), account
        assert not can(admin, account, "create", "daskclusters", group=DASK, namespace="kube-system"), account
    # A server without the opt-in account (values-minimal.yaml) has no rights at all here.
    assert not can(admin, "default", "get", "pods")
    assert not can(admin, "default", "create", "daskclusters", group=DASK)


def test_the_check_can_see_a_grant(applied):
    """The SubjectAccessReviews answer yes when a Role says so: grant the default
    account secrets/get for a moment and the same question flips."""
    admin = applied["admin"]
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "probe", "namespace": NS},
        "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "probe", "namespace": NS},
        "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": NS}],
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "probe"},
    }

    def allowed() -> bool:
        return can(admin, "default", "get", "secrets", name="jupyter-bob-offload")

    _apply(admin, role)
    _apply(admin, binding)
    try:
        # The authorizer sees RBAC objects through its informers: wait for them.
        assert _eventually(allowed, True)
    finally:
        for kind in ("rolebindings", "roles"):
            admin.request("DELETE", f"/apis/rbac.authorization.k8s.io/v1/namespaces/{NS}/{kind}/probe")
    assert not _eventually(allowed, False)


def _eventually(check, expected: bool, attempts: int = 50) -> bool:
    """check() once it gives ``expected`` (polled up to ``attempts`` times), else its last answer."""
    for _ in range(attempts):
        answer = check()
        if answer == expected:
            return answer
        time.sleep(0.2)
    return answer
