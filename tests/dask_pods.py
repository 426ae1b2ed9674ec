"""A server's Dask files as Dask and dask-kubernetes see them, and the pods
dask-kubernetes' operator makes from the DaskCluster, built with the
operator's own functions (no operator runs in these tests).

The operator turns a DaskCluster into a scheduler Deployment and a default
DaskWorkerGroup whose worker Deployments carry the pods; the pod template of
each Deployment is what reaches Kubernetes. Here those templates become Pods
directly (a Deployment controller would add only a generated name suffix).
"""

from __future__ import annotations

import asyncio
import copy
import sys
from pathlib import Path
from typing import Any

import dask.config

from offload_spawner.dask.dask_config import DASK_CONFIG_DIR, dask_config
from offload_spawner.pipeline.catalog import build_catalog
from offload_spawner.pipeline.limits import target_ceiling, user_ceiling


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
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": copy.deepcopy(template["metadata"]),
            "spec": copy.deepcopy(template["spec"]),
        }

    return {"scheduler": pod(scheduler_deployment), "worker": pod(worker_deployment)}


def load_with_dask(files: dict[str, str], tmp_path: Path) -> dict:
    """Place the files as the pod would see them and collect them with dask.config."""
    root = tmp_path / "etc-dask"
    for path, text in files.items():
        assert path.startswith(DASK_CONFIG_DIR + "/")
        local = root / path.removeprefix(DASK_CONFIG_DIR + "/")
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_text(text)
    return dask.config.collect(paths=[str(root)], env={})


async def kubecluster_spec_async(config: dict) -> tuple[str, str, dict]:
    """What dask-kubernetes' KubeCluster takes from this config (name, namespace,
    the DaskCluster it would create), without contacting a cluster."""
    from dask_kubernetes.operator import KubeCluster
    from tornado.ioloop import IOLoop

    # As in the server: dask-kubernetes' defaults (set on import), then the files.
    merged = dask.config.merge(dask.config.config, config)
    with dask.config.set(merged):
        # A KubeCluster made inside a running loop with asynchronous=True
        # does not start until awaited; its constructor reads the config.
        cluster = KubeCluster(asynchronous=True, loop=IOLoop.current(), quiet=True)
    KubeCluster._instances.discard(cluster)
    return cluster.name, cluster.namespace, cluster._custom_cluster_spec


def kubecluster_spec(config: dict) -> tuple[str, str, dict]:
    """:func:`kubecluster_spec_async` outside an event loop."""
    return asyncio.run(kubecluster_spec_async(config))


async def operator_pods_for(
    target_slug: str, target_settings: dict[str, Any], *, server_pod: str, user_name: str, tmp_path: Path
) -> tuple[str, str, dict[str, dict[str, Any]]]:
    """The cluster name, namespace and pods (scheduler, worker) the dask-kubernetes
    operator builds from the Dask file a server on ``target_slug`` gets."""
    catalog = build_catalog(offload_targets={target_slug: target_settings})
    target = catalog.offload_targets[target_slug]
    result = dask_config(
        target_slug=target_slug,
        target=target,
        ceiling=target_ceiling(user_ceiling(catalog, []), target),
        image="ghcr.io/org/offload:1.0",
        namespace="jhub",
        pod_name=server_pod,
        user_name=user_name,
        hub_api_url=target.hub_api_url,
    )
    name, namespace, spec = await kubecluster_spec_async(load_with_dask(result.files, tmp_path))
    return name, namespace, operator_pods(spec, namespace)


async def offloaded_worker_pod(
    target_slug: str,
    target_settings: dict[str, Any],
    *,
    server_pod: str,
    user_name: str,
    scheduler_port: int,
    worker_name: str,
    tmp_path: Path,
) -> dict[str, Any]:
    """The worker pod the dask-kubernetes operator builds from a server's Dask file
    for ``target_slug``, its command a real ``dask worker`` that joins the scheduler
    on loopback ``scheduler_port`` as ``worker_name`` (workers on a virtual node reach
    a scheduler only with interLink mesh networking, which loopback stands in for here)."""
    name, _, pods = await operator_pods_for(
        target_slug, target_settings, server_pod=server_pod, user_name=user_name, tmp_path=tmp_path
    )
    worker = pods["worker"]
    worker["metadata"]["name"] = f"{name}-worker"
    container = worker["spec"]["containers"][0]
    container["command"] = [
        str(Path(sys.executable).with_name("dask")),
        "worker",
        f"tcp://127.0.0.1:{scheduler_port}",
        "--nthreads",
        "1",
        "--no-dashboard",
        "--name",
        worker_name,
        "--host",
        "127.0.0.1",
    ]
    container["args"] = []
    container.pop("readinessProbe", None)
    container.pop("livenessProbe", None)
    worker["spec"]["restartPolicy"] = "Never"
    return worker
