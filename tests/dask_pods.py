"""The pods dask-kubernetes' operator makes from a DaskCluster, built with the
operator's own functions (no operator runs in these tests).

The operator turns a DaskCluster into a scheduler Deployment and a default
DaskWorkerGroup whose worker Deployments carry the pods; the pod template of
each Deployment is what reaches Kubernetes. Here those templates become Pods
directly (a Deployment controller would add only a generated name suffix).
"""

from __future__ import annotations

import copy
from typing import Any


def operator_pods(cluster: dict[str, Any], namespace: str) -> dict[str, dict[str, Any]]:
    """{"scheduler": Pod, "worker": Pod} as the operator would create them."""
    from dask_kubernetes.operator.controller.controller import (
        build_default_worker_group_spec,
        build_scheduler_deployment_spec,
        build_worker_deployment_spec,
    )

    cluster = copy.deepcopy(cluster)
    name = cluster["metadata"]["name"]
    spec = cluster["spec"]

    # daskcluster_create_components: the DaskCluster's metadata, then scheduler.metadata.
    scheduler = spec["scheduler"]
    meta = scheduler.get("metadata", {})
    scheduler_deployment = build_scheduler_deployment_spec(
        name, scheduler["spec"], dict(meta.get("annotations", {})), dict(meta.get("labels", {}))
    )

    # ... the default worker group, and daskworkergroup_replica_update: worker.metadata.
    group = build_default_worker_group_spec(name, spec["worker"], {}, {})
    worker = group["spec"]["worker"]
    meta = worker.get("metadata", {})
    worker_deployment = build_worker_deployment_spec(
        worker_group_name=group["metadata"]["name"],
        namespace=namespace,
        cluster_name=name,
        uuid="0123456789",
        pod_spec=worker["spec"],
        annotations=dict(meta.get("annotations", {})),
        labels=dict(meta.get("labels", {})),
    )

    def pod(deployment: dict[str, Any]) -> dict[str, Any]:
        template = deployment["spec"]["template"]
        return {"apiVersion": "v1", "kind": "Pod", "metadata": copy.deepcopy(template["metadata"]),
                "spec": copy.deepcopy(template["spec"])}

    return {"scheduler": pod(scheduler_deployment), "worker": pod(worker_deployment)}
