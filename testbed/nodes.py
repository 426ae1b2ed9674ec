"""interLink-style virtual nodes (and one ordinary node) for the test bed.

Why: placement is decided by the real kube-scheduler from what the nodes
advertise, so the nodes must look like the ones interLink registers:

* taint ``virtual-node.interlink/no-schedule=true:NoSchedule`` (only pods
  with the interLink toleration may land there);
* exactly the labels interLink's virtual kubelet sets (NewProviderConfig in
  interLink/pkg/virtualkubelet/virtualkubelet.go): ``kubernetes.io/hostname``,
  ``kubernetes.io/os=virtual-kubelet``, ``kubernetes.io/role=agent``,
  ``virtual-node.interlink/type=virtual-kubelet``, the two load-balancer
  exclusions, the configured ``NodeLabels`` (``labels`` here) and one model
  label per configured accelerator, only for ``nvidia.com/gpu``
  (``nvidia-gpu-type``), ``xilinx.com/fpga`` (``xilinx-fpga-type``) and
  ``intel.com/fpga`` (``intel-fpga-type``); no ``kubernetes.io/arch``;
* ``capacity == allocatable`` for cpu, memory, pods and extended resources
  (``nvidia.com/gpu``, ``xilinx.com/fpga``);
* a ``Ready`` condition with reason ``InterlinkPingSuccessful`` and the last
  ping in the ``interlink.virtual-kubelet.io/ping-response`` annotation;
* kept alive like a kubelet: a Lease in ``kube-node-lease`` renewed every
  few seconds and periodic status heartbeats, so kube-controller-manager's
  node-lifecycle controller removes the ``not-ready`` taint the apiserver puts
  on new nodes and never marks them unreachable.

The ordinary node ``node-local`` (label ``hub.jupyter.org/node-purpose=user``,
no taint) stands for the hub cluster's own user nodes.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

INTERLINK_TAINT: dict[str, str] = {
    "key": "virtual-node.interlink/no-schedule",
    "value": "true",
    "effect": "NoSchedule",
}
#: The only accelerator model labels interLink sets (NewProviderConfig).
INTERLINK_MODEL_LABELS = {
    "nvidia.com/gpu": "nvidia-gpu-type",
    "xilinx.com/fpga": "xilinx-fpga-type",
    "intel.com/fpga": "intel-fpga-type",
}
PING_ANNOTATION = "interlink.virtual-kubelet.io/ping-response"
LEASE_NAMESPACE = "kube-node-lease"
LEASE_SECONDS = 40
KUBELET_VERSION = "v1.35.4-testbed"
MERGE_PATCH = "application/merge-patch+json"


@dataclass(frozen=True)
class NodeSpec:
    """One node: ``backend`` names the interLink plugin (None for an ordinary node)."""

    name: str
    cpu: str
    memory: str
    pods: str = "1000"
    backend: str | None = None
    extended: dict[str, str] = field(default_factory=dict)
    #: a virtual node's ``NodeLabels`` (interLink config); an ordinary node's labels
    labels: dict[str, str] = field(default_factory=dict)
    #: a virtual node's accelerator models by resource (interLink's Resources.Accelerators)
    models: dict[str, str] = field(default_factory=dict)

    @property
    def virtual(self) -> bool:
        return self.backend is not None

    def all_labels(self) -> dict[str, str]:
        if not self.virtual:
            return {
                "kubernetes.io/hostname": self.name,
                "kubernetes.io/arch": "amd64",
                "kubernetes.io/os": "linux",
                **self.labels,
            }
        # As interLink/pkg/virtualkubelet/virtualkubelet.go (NewProviderConfig) builds them.
        labels = {
            "alpha.service-controller.kubernetes.io/exclude-balancer": "true",
            "kubernetes.io/os": "virtual-kubelet",
            "kubernetes.io/hostname": self.name,
            "kubernetes.io/role": "agent",
            "node.kubernetes.io/exclude-from-external-load-balancers": "true",
            "virtual-node.interlink/type": "virtual-kubelet",
        }
        labels.update(self.labels)
        for resource, model in self.models.items():
            label = INTERLINK_MODEL_LABELS.get(resource.lower())
            if label:  # interLink only warns about any other accelerator type
                labels[label] = model
        return labels

    def resources(self) -> dict[str, str]:
        return {"cpu": self.cpu, "memory": self.memory, "pods": self.pods, **self.extended}

    def manifest(self) -> dict[str, Any]:
        annotations = {}
        if self.virtual:
            annotations[PING_ANNOTATION] = self.ping_response()
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": self.name, "labels": self.all_labels(), "annotations": annotations},
            "spec": {"taints": [dict(INTERLINK_TAINT)] if self.virtual else []},
            "status": self.status(),
        }

    def ping_response(self) -> str:
        return json.dumps({"status": "ok", "plugin": self.backend, "node": self.name})

    def conditions(self, now: str, since: str) -> list[dict[str, str]]:
        if self.virtual:
            ready = ("InterlinkPingSuccessful", "interLink API server and plugin answered the ping")
        else:
            ready = ("KubeletReady", "kubelet is posting ready status")
        out = [
            {"type": kind, "status": "False", "reason": reason, "message": message}
            for kind, reason, message in (
                ("MemoryPressure", "KubeletHasSufficientMemory", "no memory pressure"),
                ("DiskPressure", "KubeletHasNoDiskPressure", "no disk pressure"),
                ("PIDPressure", "KubeletHasSufficientPID", "no PID pressure"),
                ("NetworkUnavailable", "RouteCreated", "loopback network"),
            )
        ]
        out.append({"type": "Ready", "status": "True", "reason": ready[0], "message": ready[1]})
        for condition in out:
            condition["lastHeartbeatTime"] = now
            condition["lastTransitionTime"] = since
        return out

    def status(self, since: str | None = None) -> dict[str, Any]:
        """The Node status; ``since`` is when the conditions last changed (registration)."""
        now = _now()
        since = since or now
        return {
            "capacity": self.resources(),
            "allocatable": self.resources(),
            "conditions": self.conditions(now, since),
            "addresses": [
                {"type": "InternalIP", "address": "127.0.0.1"},
                {"type": "Hostname", "address": self.name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "machineID": self.name,
                "systemUUID": self.name,
                "bootID": self.name,
                "kernelVersion": "",
                "osImage": f"interLink {self.backend} plugin" if self.virtual else "testbed",
                "containerRuntimeVersion": f"interlink://{self.backend}" if self.virtual else "testbed://local",
                "kubeletVersion": KUBELET_VERSION,
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": "virtual-kubelet" if self.virtual else "amd64",
            },
        }


#: The default node set for the tests and the demo.
DEFAULT_NODES: tuple[NodeSpec, ...] = (
    NodeSpec("vk-naples", cpu="96", memory="180Gi", backend="htcondor"),
    NodeSpec(
        "vk-leonardo",
        cpu="32",
        memory="480Gi",
        backend="slurm",
        extended={"nvidia.com/gpu": "4"},
        models={"nvidia.com/gpu": "a100"},
    ),
    NodeSpec(
        "vk-docker",
        cpu="16",
        memory="64Gi",
        backend="docker",
        extended={"xilinx.com/fpga": "2"},
        models={"xilinx.com/fpga": "u55c"},
    ),
    NodeSpec("node-local", cpu="16", memory="64Gi", pods="110", labels={"hub.jupyter.org/node-purpose": "user"}),
)


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _now_micro() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


async def register(api: client.ApiClient, spec: NodeSpec, since: str | None = None) -> str:
    """Create (or refresh) the Node and its status, as a virtual kubelet does at start; return its uid."""
    core = client.CoreV1Api(api)
    manifest = spec.manifest()
    try:
        node = await core.create_node(manifest)
    except ApiException as e:
        if e.status != 409:
            raise
        # Re-registration: our labels/annotations; keep foreign taints, ensure ours.
        current = await core.read_node(spec.name)
        taints = [api.sanitize_for_serialization(t) for t in (current.spec.taints or [])]
        for taint in manifest["spec"]["taints"]:
            if not any(t.get("key") == taint["key"] for t in taints):
                taints.append(taint)
        node = await core.patch_node(
            spec.name,
            {
                "metadata": {
                    "labels": manifest["metadata"]["labels"],
                    "annotations": manifest["metadata"]["annotations"],
                },
                "spec": {"taints": taints},
            },
            _content_type=MERGE_PATCH,
        )
    await core.patch_node_status(spec.name, {"status": spec.status(since)}, _content_type=MERGE_PATCH)
    return node.metadata.uid


async def renew_lease(api: client.ApiClient, spec: NodeSpec, node_uid: str) -> None:
    """Create or renew ``kube-node-lease/<node>`` (what the node-lifecycle controller watches)."""
    coordination = client.CoordinationV1Api(api)
    body = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": spec.name,
            "namespace": LEASE_NAMESPACE,
            "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": spec.name, "uid": node_uid}],
        },
        "spec": {"holderIdentity": spec.name, "leaseDurationSeconds": LEASE_SECONDS, "renewTime": _now_micro()},
    }
    try:
        await coordination.patch_namespaced_lease(
            spec.name, LEASE_NAMESPACE, {"spec": body["spec"]}, _content_type=MERGE_PATCH
        )
    except ApiException as e:
        if e.status != 404:
            raise
        await coordination.create_namespaced_lease(LEASE_NAMESPACE, body)


async def post_status(api: client.ApiClient, spec: NodeSpec, since: str) -> None:
    """A status heartbeat: conditions with a fresh lastHeartbeatTime, capacity re-sent."""
    core = client.CoreV1Api(api)
    await core.patch_node_status(spec.name, {"status": spec.status(since)}, _content_type=MERGE_PATCH)


class NodeKeeper:
    """Registers nodes and keeps them alive (lease every ``lease_every`` s, status every ``status_every`` s)."""

    def __init__(
        self,
        api: client.ApiClient,
        specs: tuple[NodeSpec, ...] | list[NodeSpec],
        lease_every: float = 10.0,
        status_every: float = 30.0,
    ) -> None:
        self.api = api
        self.specs = tuple(specs)
        self.lease_every = lease_every
        self.status_every = status_every
        self.uids: dict[str, str] = {}
        self.since = _now()

    async def register_all(self) -> None:
        for spec in self.specs:
            self.uids[spec.name] = await register(self.api, spec, self.since)
            await renew_lease(self.api, spec, self.uids[spec.name])

    async def run(self) -> None:
        """Heartbeat forever (cancel to stop); errors are logged and retried, like a kubelet."""
        since_status = 0.0
        while True:
            await asyncio.sleep(self.lease_every)
            since_status += self.lease_every
            for spec in self.specs:
                try:
                    await renew_lease(self.api, spec, self.uids[spec.name])
                    if since_status >= self.status_every:
                        await post_status(self.api, spec, self.since)
                except (TimeoutError, ApiException, OSError, aiohttp.ClientError) as e:
                    print(f"virtual-kubelet: heartbeat for {spec.name} failed: {e}", flush=True)
            if since_status >= self.status_every:
                since_status = 0.0
