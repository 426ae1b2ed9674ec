"""Generate the placement part of helm-values/rbac-dask-tenant-policy.yaml.

The offload-dask-placement-* ValidatingAdmissionPolicies (one per Dask kind,
each pod spec of the kind checked against the server's placement Secret, see
offload_spawner/dask/dask_placement.py) repeat one check per pod spec; CEL in an
admission policy has no functions, so the check is written out here once.

    python docs/gen_dask_placement_policy.py           # rewrite the file's placement part
    python docs/gen_dask_placement_policy.py --check   # exit 1 if it is stale

tests/test_dask_placement.py compares the committed file with this output.
"""

from __future__ import annotations

import sys
from pathlib import Path

POLICY_FILE = Path(__file__).resolve().parents[1] / "helm-values" / "rbac-dask-tenant-policy.yaml"
#: The placement part starts at this document.
FIRST = "---\napiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingAdmissionPolicy\nmetadata:\n  name: offload-dask-placement-"

POD = """has(request.userInfo.extra) && 'authentication.kubernetes.io/pod-name' in request.userInfo.extra
        && size(request.userInfo.extra['authentication.kubernetes.io/pod-name']) == 1
        ? request.userInfo.extra['authentication.kubernetes.io/pod-name'][0] : ''"""


def lines(role: str, key: str) -> str:
    """The allowance's text lines for ``role``'s ``key`` (an empty text: none)."""
    return (
        f"params.metadata.annotations['dask-placement.offload-spawner.io/{role}.{key}'].split('\\n').filter(l, l != '')"
    )


def tol(t: str) -> str:
    """Toleration ``t`` as offload_spawner.dask.dask_placement.toleration_line writes it."""
    return (
        f"((has({t}.key) ? {t}.key : '') + '|' + (has({t}.operator) && {t}.operator != '' ? {t}.operator : 'Equal') + '|' "
        f"+ (has({t}.value) ? {t}.value : '') + '|' + (has({t}.effect) ? {t}.effect : '') + '|' "
        f"+ (has({t}.tolerationSeconds) ? string({t}.tolerationSeconds) : ''))"
    )


def bounded(role: str, m: str) -> str:
    """Every resource of map ``m`` is cpu or memory, within ``role``'s size."""
    return (
        f"{m}.all(r, r in ['cpu', 'memory'] && isQuantity({m}[r]) "
        f"&& quantity({m}[r]).compareTo(quantity(params.metadata.annotations['dask-placement.offload-spawner.io/{role}.' + r])) <= 0)"
    )


def check(part: str, role: str) -> str:
    """part: CEL path of a {metadata, spec} pair (e.g. object.spec.worker)."""
    s, m = f"{part}.spec", f"{part}.metadata"
    ns, ts, an = lines(role, "nodeSelector"), lines(role, "tolerations"), lines(role, "annotations")
    return " && ".join(
        [
            "params.metadata.annotations['dask-placement.offload-spawner.io/allowed'] == 'true'",
            f"!has({s}.nodeName) && !(has({s}.affinity) && has({s}.affinity.nodeAffinity))",
            f"(!has({s}.schedulerName) || {s}.schedulerName in ['', 'default-scheduler'])",
            f"!has({s}.priorityClassName) && !has({s}.priority) && !has({s}.runtimeClassName) && !has({s}.overhead)",
            f"(has({s}.nodeSelector) ? {s}.nodeSelector.all(k, (k + '=' + {s}.nodeSelector[k]) in {ns}) && size({s}.nodeSelector) == size({ns}) : size({ns}) == 0)",
            f"(!has({s}.tolerations) || {s}.tolerations.all(t, {tol('t')} in {ts}))",
            f"(has({m}) && has({m}.annotations) ? {m}.annotations.all(k, (k + '=' + {m}.annotations[k]) in {an}) && size({m}.annotations) == size({an}) : size({an}) == 0)",
            f"size({s}.containers) == 1 && (!has({s}.initContainers) || size({s}.initContainers) == 0)",
            f"{s}.containers.all(c, has(c.resources) && has(c.resources.limits) && 'cpu' in c.resources.limits && 'memory' in c.resources.limits "
            f"&& {bounded(role, 'c.resources.limits')} && (!has(c.resources.requests) || {bounded(role, 'c.resources.requests')}))",
        ]
    )


KINDS = {
    "daskclusters": [("object.spec.worker", "worker"), ("object.spec.scheduler", "scheduler")],
    "daskworkergroups": [("object.spec.worker", "worker")],
    "daskjobs": [
        ("object.spec.job", "worker"),
        ("object.spec.cluster.spec.worker", "worker"),
        ("object.spec.cluster.spec.scheduler", "scheduler"),
    ],
}

out = []
for kind, parts in KINDS.items():
    validations = []
    for part, role in parts:
        validations.append(f"""    - expression: >-
        !variables.mine || ({check(part, role)})
      messageExpression: >-
        'Dask pods go only where this server\\'s selection allows ({role} placement): ' + '{part.removeprefix("object.")}' + ' asks for another node selector, toleration, pod annotation, size or resource.'
      reason: Forbidden""")
    out.append(f"""---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata:
  name: offload-dask-placement-{kind}
  labels:
    app.kubernetes.io/part-of: offload-spawner
spec:
  failurePolicy: Fail
  paramKind:
    apiVersion: v1
    kind: Secret
  matchConstraints:
    resourceRules:
      - apiGroups: [kubernetes.dask.org]
        apiVersions: ["*"]
        operations: [CREATE, UPDATE]
        resources: [{kind}]
  matchConditions:
    - name: from-a-user-server
      expression: >-
        request.userInfo.username == 'system:serviceaccount:' + request.namespace + ':offload-dask-user'
  variables:
    - name: pod
      expression: >-
        {POD}
    - name: mine
      expression: >-
        has(params.metadata.annotations) && 'dask-placement.offload-spawner.io/pod' in params.metadata.annotations && params.metadata.annotations['dask-placement.offload-spawner.io/pod'] == variables.pod
  validations:
{chr(10).join(validations)}
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata:
  name: offload-dask-placement-{kind}
  labels:
    app.kubernetes.io/part-of: offload-spawner
spec:
  policyName: offload-dask-placement-{kind}
  validationActions: [Deny]
  paramRef:
    selector:
      matchExpressions:
        - key: offload-spawner.io/dask-placement
          operator: Exists
    parameterNotFoundAction: Deny""")
_PLACEMENT = "\n".join(out) + "\n"


def placement_policies() -> str:
    """The placement policies and bindings, as the YAML documents the policy file ends with."""
    return _PLACEMENT


def generated_file(current: str) -> str:
    """``current`` (the policy file) with its placement part regenerated."""
    start = current.find(FIRST)
    kept = current if start < 0 else current[:start]
    return kept + placement_policies()


def main(argv: list[str]) -> int:
    current = POLICY_FILE.read_text()
    wanted = generated_file(current)
    if "--check" in argv:
        if current != wanted:
            print(f"{POLICY_FILE.name} is stale: run python docs/gen_dask_placement_policy.py", file=sys.stderr)
            return 1
        return 0
    POLICY_FILE.write_text(wanted)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
