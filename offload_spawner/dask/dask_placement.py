"""Where a server's Dask pods may go: the allowance the admission policy reads.

``helm-values/rbac-dask-tenant-policy.yaml`` lets each user server manage only
its own Dask objects. Its placement part compares the pod specs inside them
(node selector, tolerations, the pod annotations the site's plugin reads,
cpu/memory and no other resource) with what this server's selection allows.
The policy reads that allowance from a per-server Secret (its ``paramKind``;
Zero-to-JupyterHub's hub Role may create Secrets, not ConfigMaps), chosen by
the :data:`PLACEMENT_LABEL` label, and each such Secret constrains only the
requests made with a token bound to its own server pod (``pod`` entry). The
allowance is in the Secret's annotations, under :data:`ANNOTATION_PREFIX`, not
in its data: the policy's CEL sees Secret data base64-encoded, and the CEL of
Kubernetes' admission policies has no base64 decoder. Nothing in it is secret.

The allowance is read off the DaskCluster the server's own Dask configuration
describes (:func:`offload_spawner.dask.dask_config.cluster_spec`, which takes the
placement from :func:`offload_spawner.pipeline.plan.target_placement` and the sizes from
:func:`offload_spawner.dask.dask_config.dask_pod_size`), so the policy accepts
exactly what the spawner would write and nothing the selection does not allow.
A server whose target has no Dask settings gets an allowance of nothing.

Everything is a text line the policy's CEL rebuilds from the request the same
way (``key=value``; a toleration as ``key|operator|value|effect|seconds``): CEL
in an admission policy cannot parse JSON or YAML.

Pure: plain data in, plain data out.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: Label that makes a Secret one of the placement policy's parameters.
PLACEMENT_LABEL = "offload-spawner.io/dask-placement"
#: Prefix of the annotations that hold the allowance (``<prefix>worker.cpu``, ...).
ANNOTATION_PREFIX = "dask-placement.offload-spawner.io/"
#: The pod roles of a DaskCluster; a DaskWorkerGroup's and a DaskJob's runner pod count as workers.
ROLES = ("worker", "scheduler")
#: The only resources a Dask pod may ask for (so: no accelerator).
RESOURCES = ("cpu", "memory")
_SUFFIX = "-dask-placement"


def placement_secret_name(pod_name: str) -> str:
    """The name of a server's placement Secret (a pod name is at most 63 characters)."""
    return pod_name + _SUFFIX


def toleration_line(toleration: Mapping[str, Any]) -> str:
    """A toleration as the policy's CEL writes it: ``key|operator|value|effect|seconds``.

    An absent operator is ``Equal``, as Kubernetes defaults it (core/v1 Toleration)."""
    seconds = toleration.get("tolerationSeconds")
    return "|".join(
        [
            str(toleration.get("key") or ""),
            str(toleration.get("operator") or "Equal"),
            str(toleration.get("value") or ""),
            str(toleration.get("effect") or ""),
            "" if seconds is None else str(int(seconds)),
        ]
    )


def _pairs(mapping: Mapping[str, Any] | None) -> str:
    return "\n".join(sorted(f"{key}={value}" for key, value in (mapping or {}).items()))


def allowed_placement(pod_name: str, cluster: Mapping[str, Any] | None) -> dict[str, str]:
    """The allowance of server ``pod_name`` as Secret text: from ``cluster``, the
    DaskCluster its Dask configuration describes (None: no Dask pods at all)."""
    data = {"pod": pod_name, "allowed": "true" if cluster else "false"}
    if not cluster:
        return data
    for role in ROLES:
        part = cluster["spec"][role]
        spec = part["spec"]
        (container,) = spec["containers"]
        limits = container["resources"]["limits"]
        data[f"{role}.nodeSelector"] = _pairs(spec.get("nodeSelector"))
        data[f"{role}.tolerations"] = "\n".join(toleration_line(t) for t in spec.get("tolerations") or ())
        data[f"{role}.annotations"] = _pairs((part.get("metadata") or {}).get("annotations"))
        for resource in RESOURCES:
            data[f"{role}.{resource}"] = str(limits[resource])
    return data


def placement_secret(
    pod_name: str,
    cluster: Mapping[str, Any] | None,
    labels: Mapping[str, str] | None = None,
    owner: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The placement Secret of server ``pod_name``, owned by ``owner`` (its pod) when given."""
    allowance = allowed_placement(pod_name, cluster)
    metadata: dict[str, Any] = {
        "name": placement_secret_name(pod_name),
        "labels": {**(labels or {}), PLACEMENT_LABEL: "server"},
        "annotations": {ANNOTATION_PREFIX + key: value for key, value in sorted(allowance.items())},
    }
    if owner is not None:
        metadata["ownerReferences"] = [dict(owner)]
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": metadata}


__all__ = [
    "ANNOTATION_PREFIX",
    "PLACEMENT_LABEL",
    "RESOURCES",
    "ROLES",
    "allowed_placement",
    "placement_secret",
    "placement_secret_name",
    "toleration_line",
]
