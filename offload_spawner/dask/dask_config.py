"""Dask configuration for a server: where its Dask clusters go, as files Dask reads.

For a target with ``offload: dask`` (or a target whose ``dask`` settings are
enabled), the server receives one YAML file under :data:`DASK_CONFIG_DIR`
(Dask reads every YAML file there) holding

* ``kubernetes.custom-cluster-spec``: a DaskCluster (dask-kubernetes
  operator) whose scheduler and worker PodSpecs carry the target's placement
  (:func:`offload_spawner.pipeline.plan.target_placement`, the one the server's plan
  uses; its annotations and labels go on the pod metadata, which the operator
  copies from ``scheduler.metadata`` / ``worker.metadata`` onto the pods),
  resources sized by :func:`dask_pod_size`, and the user's tokens **by
  reference** as the target's token policy delivers them to the server
  (:func:`offload_spawner.identity.tokens.dask_token_references`: ``valueFrom.secretKeyRef``
  and Secret volumes of the per-server Secret);
* ``labextension.factory``: dask-labextension's "New cluster" button builds a
  dask-kubernetes ``KubeCluster``, which reads the spec above.

Pure: plain data in, plain data out; no token value is ever an input. The
YAML is written with ``yaml.safe_dump``, so no value (image, user name) is
ever parsed as YAML or formatted into a string template.
"""

from __future__ import annotations

import hashlib
import math
import posixpath
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from ..backends import adapter_for
from ..identity.server_secret import secret_name
from ..identity.tokens import TokenReferences, dask_token_references
from ..pipeline.catalog import DaskSettings, Target
from ..pipeline.limits import Ceiling
from ..pipeline.plan import Placement, target_placement
from ..pipeline.selection import Selection

#: Dask reads every YAML file in DASK_ROOT_CONFIG (default /etc/dask).
DASK_CONFIG_DIR = "/etc/dask"
DASK_CONFIG_FILE = posixpath.join(DASK_CONFIG_DIR, "offload-spawner.yaml")
#: dask-kubernetes: a DaskCluster's name plus "-scheduler" must fit a 63-character name.
MAX_CLUSTER_NAME_LEN = 63 - len("-scheduler")
_CLUSTER_SUFFIX = "-dask"
_NAME_RE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")

SCHEDULER_PORT = 8786
SCHEDULER_DASHBOARD_PORT = 8787
WORKER_DASHBOARD_PORT = 8788


@dataclass(frozen=True)
class DaskPodSize:
    cores: float
    memory: int


@dataclass(frozen=True)
class DaskServerConfig:
    """What a server receives for Dask: files (absolute path -> text) and env."""

    files: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    cluster_name: str = ""
    #: the DaskCluster the files describe (the admission policy's placement allowance is read off it)
    cluster: dict[str, Any] | None = None


def _cap(value: float, *caps: float | None) -> float:
    return min([value, *[c for c in caps if c is not None]])


def dask_pod_size(settings: DaskSettings, ceiling: Ceiling, *, scheduler: bool = False) -> DaskPodSize:
    """One Dask pod's cores and memory.

    A worker gets ``worker_cores``/``worker_memory``, capped by
    ``max_worker_cores``/``max_worker_memory`` and by the user's ceiling on the
    target (``target_ceiling(user_ceiling(...), target)``): no single Dask pod
    is larger than a server this user could start there. The scheduler gets
    ``scheduler_cores``/``scheduler_memory``, capped by the same user ceiling.
    """
    if scheduler:
        return DaskPodSize(
            cores=_cap(settings.scheduler_cores, ceiling.cores),
            memory=int(_cap(settings.scheduler_memory, ceiling.memory)),
        )
    return DaskPodSize(
        cores=_cap(settings.worker_cores, settings.max_worker_cores, ceiling.cores),
        memory=int(_cap(settings.worker_memory, settings.max_worker_memory, ceiling.memory)),
    )


def cluster_name(pod_name: str) -> str:
    """The DaskCluster's name for a server: ``<pod name>-dask``, shortened with a
    hash when too long, always a valid dask-kubernetes cluster name."""
    base = re.sub(r"[^a-z0-9-]+", "-", pod_name.lower()).strip("-") or "server"
    name = base + _CLUSTER_SUFFIX
    if len(name) > MAX_CLUSTER_NAME_LEN or not _NAME_RE.fullmatch(name):
        digest = hashlib.sha256(pod_name.encode()).hexdigest()[:8]
        keep = MAX_CLUSTER_NAME_LEN - len(_CLUSTER_SUFFIX) - len(digest) - 1
        name = f"{base[:keep].rstrip('-')}-{digest}{_CLUSTER_SUFFIX}"
    return name


def _cpu(value: float) -> str:
    return f"{value:g}"


def _resources(size: DaskPodSize, target: Target) -> dict[str, dict[str, str]]:
    fraction = target.request_fraction
    cores, memory = size.cores * fraction, int(size.memory * fraction)
    requests = adapter_for(target.backend).requests(cores, memory) if target.is_virtual else None
    return {
        "limits": {"cpu": _cpu(size.cores), "memory": str(size.memory)},
        # The plugin's own form where it needs one (HTCondor: whole cores and Mi).
        "requests": requests or {"cpu": _cpu(cores), "memory": str(memory)},
    }


def _env(tokens: TokenReferences, user_name: str, hub_api_url: str | None) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [{"name": "JUPYTERHUB_USER", "value": user_name}, *tokens.env]
    if hub_api_url:
        env.append({"name": "JUPYTERHUB_API_URL", "value": hub_api_url})
    return env


def _placement(target_slug: str, target: Target, size: DaskPodSize) -> Placement:
    """One Dask pod's placement: the target's, for a pod of this size (no accelerator)."""
    selection = Selection(profile=None, target=target_slug, cores=size.cores, memory=size.memory)
    return target_placement(target_slug, target, selection)


def _pod_spec(container: dict[str, Any], placement: Placement, tokens: TokenReferences) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "containers": [container],
        # Dask pods never talk to the Kubernetes API.
        "automountServiceAccountToken": False,
    }
    if tokens.volumes:
        container["volumeMounts"] = list(tokens.volume_mounts)
        spec["volumes"] = list(tokens.volumes)
    if placement.tolerations:
        spec["tolerations"] = list(placement.tolerations)
    if placement.node_selector:
        spec["nodeSelector"] = dict(placement.node_selector)
    return spec


def _metadata(placement: Placement) -> dict[str, Any]:
    return {"annotations": dict(placement.annotations), "labels": dict(placement.labels)}


def cluster_spec(
    *,
    name: str,
    target_slug: str,
    target: Target,
    settings: DaskSettings,
    ceiling: Ceiling,
    image: str,
    secret: str,
    user_name: str,
    hub_api_url: str | None = None,
) -> dict[str, Any]:
    """The DaskCluster resource (kubernetes.dask.org/v1) for this server."""
    image = settings.image or image
    # The target's token policy decides what the Dask pods receive (limited to tokens.dask_pods).
    tokens = dask_token_references(target.site_tokens, secret)  # the Dask pods run on the site

    worker = dask_pod_size(settings, ceiling)
    worker_placement = _placement(target_slug, target, worker)
    worker_container = {
        "name": "worker",
        "image": image,
        "args": [
            "dask-worker",
            "--name",
            "$(DASK_WORKER_NAME)",
            "--dashboard",
            "--dashboard-address",
            str(WORKER_DASHBOARD_PORT),
            # Batch slots often show the whole machine: size the worker from its limits.
            "--nthreads",
            str(max(1, math.floor(worker.cores))),
            "--memory-limit",
            str(worker.memory),
        ],
        "env": _env(tokens, user_name, hub_api_url),
        "resources": _resources(worker, target),
        "ports": [{"name": "http-dashboard", "containerPort": WORKER_DASHBOARD_PORT, "protocol": "TCP"}],
    }

    scheduler = dask_pod_size(settings, ceiling, scheduler=True)
    scheduler_placement = _placement(target_slug, target, scheduler)
    scheduler_container = {
        "name": "scheduler",
        "image": image,
        # Inside its own pod: workers and the server reach it through its Service.
        "args": ["dask-scheduler", "--host", "0.0.0.0"],  # noqa: S104
        "env": _env(tokens, user_name, hub_api_url),
        "resources": _resources(scheduler, target),
        "ports": [
            {"name": "tcp-comm", "containerPort": SCHEDULER_PORT, "protocol": "TCP"},
            {"name": "http-dashboard", "containerPort": SCHEDULER_DASHBOARD_PORT, "protocol": "TCP"},
        ],
        "readinessProbe": {
            "httpGet": {"port": "http-dashboard", "path": "/health"},
            "initialDelaySeconds": 0,
            "periodSeconds": 1,
            "timeoutSeconds": 300,
        },
        "livenessProbe": {
            "httpGet": {"port": "http-dashboard", "path": "/health"},
            "initialDelaySeconds": 15,
            "periodSeconds": 20,
        },
    }
    return {
        "apiVersion": "kubernetes.dask.org/v1",
        "kind": "DaskCluster",
        "metadata": {"name": name},
        "spec": {
            "idleTimeout": settings.idle_timeout,
            "worker": {
                "replicas": settings.workers,
                "metadata": _metadata(worker_placement),
                "spec": _pod_spec(worker_container, worker_placement, tokens),
            },
            "scheduler": {
                "metadata": _metadata(scheduler_placement),
                "spec": _pod_spec(scheduler_container, scheduler_placement, tokens),
                "service": {
                    "type": "ClusterIP",
                    "selector": {"dask.org/cluster-name": name, "dask.org/component": "scheduler"},
                    "ports": [
                        {"name": "tcp-comm", "protocol": "TCP", "port": SCHEDULER_PORT, "targetPort": "tcp-comm"},
                        {
                            "name": "http-dashboard",
                            "protocol": "TCP",
                            "port": SCHEDULER_DASHBOARD_PORT,
                            "targetPort": "http-dashboard",
                        },
                    ],
                },
            },
        },
    }


def dask_config(
    *,
    target_slug: str,
    target: Target,
    ceiling: Ceiling,
    image: str,
    namespace: str,
    pod_name: str,
    user_name: str,
    hub_api_url: str | None = None,
) -> DaskServerConfig:
    """The Dask files and env for a server on ``target`` (empty when the target
    has no Dask settings in force). ``ceiling`` is the user's ceiling on the
    target; ``image`` the server's image; ``pod_name`` the server's pod."""
    settings = target.dask_settings
    if settings is None:
        return DaskServerConfig()
    name = cluster_name(pod_name)
    spec = cluster_spec(
        name=name,
        target_slug=target_slug,
        target=target,
        settings=settings,
        ceiling=ceiling,
        image=image,
        secret=secret_name(pod_name),
        user_name=user_name,
        hub_api_url=hub_api_url,
    )
    config: dict[str, Any] = {
        "kubernetes": {
            "namespace": namespace,
            "idle-timeout": settings.idle_timeout,
            "custom-cluster-spec": spec,
        },
        "labextension": {
            "factory": {
                "module": "dask_kubernetes.operator",
                "class": "KubeCluster",
                "args": [],
                "kwargs": {"namespace": namespace},
            },
        },
    }
    if settings.max_workers is not None:
        config["distributed"] = {"adaptive": {"maximum": settings.max_workers}}
    header = (
        f"# Dask configuration for this server, written by offload-spawner (target {target_slug}).\n"
        "# Values in ~/.config/dask override it. Tokens are referenced from a Secret, never written here.\n"
    )
    text = header + yaml.safe_dump(config, sort_keys=False, default_flow_style=False)
    return DaskServerConfig(
        files={DASK_CONFIG_FILE: text},
        # Dask reads the directory above whatever the image sets.
        env={"DASK_ROOT_CONFIG": DASK_CONFIG_DIR},
        cluster_name=name,
        cluster=spec,
    )


__all__ = [
    "DASK_CONFIG_DIR",
    "DASK_CONFIG_FILE",
    "DaskPodSize",
    "DaskServerConfig",
    "cluster_name",
    "cluster_spec",
    "dask_config",
    "dask_pod_size",
]
