"""The Dask placement allowance (offload_spawner.dask.dask_placement) and the policy that reads it.

The policy's behaviour on a real API server is tested in
tests/e2e/test_dask_tenants_e2e.py; here: the allowance is read off the
server's own DaskCluster, and the policy file reads the same keys, label and
encoding the module writes."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest
import yaml

from offload_spawner.dask.dask_config import cluster_name, cluster_spec
from offload_spawner.dask.dask_placement import (
    ANNOTATION_PREFIX,
    PLACEMENT_LABEL,
    RESOURCES,
    ROLES,
    allowed_placement,
    placement_secret,
    placement_secret_name,
    toleration_line,
)
from offload_spawner.pipeline.catalog import build_catalog
from offload_spawner.pipeline.limits import target_ceiling, user_ceiling
from offload_spawner.pipeline.plan import target_tolerations

POLICY_FILE = Path(__file__).resolve().parents[1] / "helm-values" / "rbac-dask-tenant-policy.yaml"
POD = "jupyter-ann"
TARGETS = {
    "leonardo": {
        "display_name": "Leonardo",
        "backend": "slurm",
        "node": "vk-leonardo",
        "offload": "dask",
        "slurm": {"partition": "boost_usr_prod"},
        "dask": {"worker_cores": 2, "worker_memory": "8G"},
        "tolerations": [
            {"key": "site", "operator": "Equal", "value": "cineca", "effect": "NoSchedule", "tolerationSeconds": 30}
        ],
    },
}


def own_cluster() -> dict[str, Any]:
    catalog = build_catalog(offload_targets=TARGETS)
    target = catalog.offload_targets["leonardo"]
    return cluster_spec(
        name=cluster_name(POD),
        target_slug="leonardo",
        target=target,
        settings=target.dask_settings,
        ceiling=target_ceiling(user_ceiling(catalog, []), target),
        image="img:1",
        secret=f"{POD}-offload",
        user_name="ann",
    )


def test_the_allowance_is_what_the_servers_own_cluster_asks_for():
    cluster = own_cluster()
    allowed = allowed_placement(POD, cluster)
    assert allowed["pod"] == POD and allowed["allowed"] == "true"
    target = build_catalog(offload_targets=TARGETS).offload_targets["leonardo"]
    for role in ROLES:
        spec = cluster["spec"][role]
        assert allowed[f"{role}.nodeSelector"] == "kubernetes.io/hostname=vk-leonardo"
        # the one decision on tolerations, as the policy's CEL rebuilds them
        assert allowed[f"{role}.tolerations"].split("\n") == [toleration_line(t) for t in target_tolerations(target)]
        assert "site|Equal|cineca|NoSchedule|30" in allowed[f"{role}.tolerations"].split("\n")
        assert "slurm-job.vk.io/flags=--partition=boost_usr_prod" in allowed[f"{role}.annotations"].split("\n")
        limits = spec["spec"]["containers"][0]["resources"]["limits"]
        assert {r: allowed[f"{role}.{r}"] for r in RESOURCES} == {r: str(limits[r]) for r in RESOURCES}
    assert allowed["worker.cpu"] == "2" and allowed["worker.memory"] == str(8 * 2**30)


def test_no_dask_settings_allow_nothing():
    assert allowed_placement(POD, None) == {"pod": POD, "allowed": "false"}


def test_toleration_line_defaults_the_operator_as_kubernetes_does():
    assert toleration_line({"key": "a", "value": "b"}) == "a|Equal|b||"
    assert toleration_line({"operator": "Exists"}) == "|Exists|||"


def test_the_secret_holds_the_allowance_in_annotations_and_nothing_in_data():
    owner = {"apiVersion": "v1", "kind": "Pod", "name": POD, "uid": "u-1"}
    secret = placement_secret(POD, own_cluster(), owner=owner)
    assert secret["metadata"]["name"] == placement_secret_name(POD) == f"{POD}-dask-placement"
    assert secret["metadata"]["labels"] == {PLACEMENT_LABEL: "server"}
    assert secret["metadata"]["ownerReferences"] == [owner]
    assert "data" not in secret
    annotations = secret["metadata"]["annotations"]
    assert {k.removeprefix(ANNOTATION_PREFIX) for k in annotations} == set(allowed_placement(POD, own_cluster()))


def _placement_policies() -> list[dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all(POLICY_FILE.read_text()) if d]
    return [d for d in docs if d["metadata"]["name"].startswith("offload-dask-placement-")]


@pytest.mark.parametrize("kind", ["daskclusters", "daskworkergroups", "daskjobs"])
def test_the_policy_reads_the_same_label_and_keys(kind):
    by_name = {(d["kind"], d["metadata"]["name"]): d for d in _placement_policies()}
    policy = by_name[("ValidatingAdmissionPolicy", f"offload-dask-placement-{kind}")]
    binding = by_name[("ValidatingAdmissionPolicyBinding", f"offload-dask-placement-{kind}")]
    assert policy["spec"]["paramKind"] == {"apiVersion": "v1", "kind": "Secret"}
    assert policy["spec"]["failurePolicy"] == "Fail"
    ref = binding["spec"]["paramRef"]
    assert ref["selector"]["matchExpressions"] == [{"key": PLACEMENT_LABEL, "operator": "Exists"}]
    # no placement Secret at all: refused, not allowed
    assert ref["parameterNotFoundAction"] == "Deny"
    text = "\n".join(v["expression"] for v in policy["spec"]["validations"] + policy["spec"]["variables"])
    for key in ("pod", "allowed"):
        assert f"'{ANNOTATION_PREFIX}{key}'" in text
    for role in ("worker",) + (("scheduler",) if kind != "daskworkergroups" else ()):
        for key in ("nodeSelector", "tolerations", "annotations"):
            assert f"'{ANNOTATION_PREFIX}{role}.{key}'" in text, (role, key)
        assert f"'{ANNOTATION_PREFIX}{role}.' + r" in text


def test_the_committed_placement_policies_are_the_generated_ones():
    path = POLICY_FILE.parents[1] / "docs" / "gen_dask_placement_policy.py"
    spec = importlib.util.spec_from_file_location("gen_dask_placement_policy", path)
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    current = POLICY_FILE.read_text()
    assert current == generator.generated_file(current), "stale: run python docs/gen_dask_placement_policy.py"
    # the generator keeps the tenant policies above the placement part as they are
    assert generator.generated_file("head\n") == "head\n" + generator.placement_policies()
