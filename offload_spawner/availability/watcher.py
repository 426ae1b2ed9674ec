"""The I/O edge of availability: keep the virtual nodes and their pods in memory.

KubeSpawner's reflector machinery (:class:`kubespawner.reflector.ResourceReflector`:
list, then watch, restart, back off) keeps

* the Nodes (cluster-scoped; needs the opt-in ClusterRole, see
  ``helm-values/rbac-availability.yaml``), and
* per node the pods bound to it (``spec.nodeName=<node>``): in all namespaces
  when the hub may list and watch pods cluster-wide, else only in the hub's
  namespace (what the Zero-to-JupyterHub hub Role allows),

so that forms and the availability endpoint render from memory: no
Kubernetes API call per form render. Without node access the watcher makes
one probe, logs one warning, and availability stays "unknown" (spawns are
not blocked).

The watcher lives in ``KubeSpawner.reflectors`` (keyed by namespace) next to
KubeSpawner's own pod and event reflectors, so it shares their lifetime
(one per hub process; ``KubeSpawner._stop_all_reflectors`` stops it too).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Iterable
from typing import Any

from kubernetes_asyncio.client.exceptions import ApiException
from kubespawner.clients import shared_client
from kubespawner.reflector import MultiNamespaceResourceReflector, NamespacedResourceReflector

from .availability import ClusterView, Demand, cluster_view

#: retry a failed start (API server unreachable) at most this often
RETRY_SECONDS = 30.0
#: look again whether node access was granted (RBAC applied after hub start) this often
FORBIDDEN_RETRY_SECONDS = 300.0


def _with_namespace(obj: Any) -> None:
    if isinstance(obj, dict) and isinstance(obj.get("metadata"), dict):
        obj["metadata"].setdefault("namespace", "")


class _ClusterScopedResponse:
    """A list or watch response whose objects carry ``metadata.namespace = ""``.

    ResourceReflector keys what it holds by ``namespace/name``; Nodes have no
    namespace, so their key would fail. This adds an empty one as the bytes
    pass, and changes nothing else.
    """

    def __init__(self, response: Any) -> None:
        self._response = response
        self.content = self  # the watch reads response.content.readline()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._response, name)

    async def read(self) -> bytes:
        body = json.loads(await self._response.read())
        for item in body.get("items") or []:
            _with_namespace(item)
        return json.dumps(body).encode()

    async def json(self) -> Any:
        return json.loads(await self._response.read())

    async def readline(self) -> bytes:
        line: bytes = await self._response.content.readline()
        if not line.strip():
            return line
        event = json.loads(line)
        if (event.get("object") or {}).get("kind") == "Node":
            _with_namespace(event["object"])
        return json.dumps(event).encode() + b"\n"


class _NodeApi:
    """``list_node`` for the reflector, with :class:`_ClusterScopedResponse` answers."""

    def __init__(self, core: Any) -> None:
        self._core = core

    async def list_node(self, **kwargs: Any) -> Any:
        return _ClusterScopedResponse(await self._core.list_node(**kwargs))


class NodeReflector(MultiNamespaceResourceReflector):
    kind = "nodes"
    list_method_name = "list_node"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The reflector lists nodes through this wrapper of its CoreV1Api (set by the base class).
        self.api: Any = _NodeApi(self.api)


class NodePodsReflector(MultiNamespaceResourceReflector):
    """Pods bound to one node, in every namespace."""

    kind = "pods"


class NamespaceNodePodsReflector(NamespacedResourceReflector):
    """Pods bound to one node, in the hub's namespace only."""

    kind = "pods"


class AvailabilityWatcher:
    """Nodes named by the targets and the pods bound to them, kept in memory."""

    def __init__(self, node_names: Iterable[str], namespace: str, log: logging.Logger | Any) -> None:
        self.node_names = tuple(sorted(set(node_names)))
        self.namespace = namespace
        self.log = log
        #: "idle", "starting", "running", "forbidden" (no node access) or "failed"
        self.state = "idle"
        self.nodes: NodeReflector | None = None
        self.pods: dict[str, Any] = {}
        #: in-flight spawns: "namespace/pod" -> what it will take (see AdmissionMixin._admit)
        self.reservations: dict[str, Demand] = {}
        #: the catalog of the spawner that last used this watcher (for the capacity metrics)
        self.catalog: Any = None
        self._start_task: asyncio.Task[None] | None = None
        self._view: tuple[frozenset[tuple[Any, Any]], ClusterView] | None = None
        self._failed_at = 0.0
        self._warned = False
        # KubeSpawner waits on this for its own reflectors; keep the interface.
        self.loop = asyncio.get_event_loop()
        self.first_load_future: asyncio.Future[None] = self.loop.create_future()

    # --- lifecycle -----------------------------------------------------------------

    def ensure_started(self) -> asyncio.Task[None] | None:
        """Start watching in the background (once; again after a failure, at most every 30 s)."""
        if self.state in ("running", "starting"):
            return self._start_task
        waited = time.monotonic() - self._failed_at
        if self.state == "forbidden" and waited < FORBIDDEN_RETRY_SECONDS:
            return self._start_task
        if self.state == "failed" and waited < RETRY_SECONDS:
            return None
        self.state = "starting"
        self._start_task = asyncio.ensure_future(self._start())
        return self._start_task

    async def ready(self, timeout: float) -> None:
        """Wait up to ``timeout`` s for the first load (never raises)."""
        task = self.ensure_started()
        if task is not None and not task.done():
            # A timeout or a failed first load: the view then says what is not known.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(task), timeout)

    async def _start(self) -> None:
        core = shared_client("CoreV1Api")
        await self._stop_reflectors()  # what a failed earlier run left
        try:
            try:
                await core.list_node(limit=1)
            except ApiException as e:
                if e.status in (401, 403):
                    self.state = "forbidden"
                    self._failed_at = time.monotonic()
                    if not self._warned:
                        self._warned = True
                        self.log.warning(
                            "offload_spawner: the hub may not list nodes (HTTP %s), so target availability is "
                            "unknown and spawns are not checked against it. Bind the ClusterRole in "
                            "helm-values/rbac-availability.yaml to the hub's ServiceAccount to enable it.",
                            e.status,
                        )
                    return
                raise
            all_namespaces = True
            try:
                await core.list_pod_for_all_namespaces(limit=1, field_selector="spec.nodeName=" + self.node_names[0])
            except ApiException as e:
                if e.status not in (401, 403):
                    raise
                all_namespaces = False
                self.log.info(
                    "offload_spawner: the hub may not list pods in all namespaces; availability counts only "
                    "the pods in namespace %s on the virtual nodes.",
                    self.namespace,
                )
            self.nodes = NodeReflector(parent=None, on_failure=self._on_failure)
            await self.nodes.start()
            for name in self.node_names:
                if all_namespaces:
                    reflector = NodePodsReflector(fields={"spec.nodeName": name}, on_failure=self._on_failure)
                else:
                    reflector = NamespaceNodePodsReflector(
                        fields={"spec.nodeName": name}, namespace=self.namespace, on_failure=self._on_failure
                    )
                await reflector.start()
                self.pods[name] = reflector
            self.state = "running"
            if not self.first_load_future.done():
                self.first_load_future.set_result(None)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - the API server is unreachable or answers oddly: retry later
            self._failed_at = time.monotonic()
            self.state = "failed"
            self.log.warning("offload_spawner: cannot watch nodes for availability (%s); retrying later", e)
            await self._stop_reflectors()

    def _on_failure(self) -> None:
        # A reflector gave up (e.g. the ClusterRole binding was removed): unknown from now on.
        self.state = "failed"
        self._failed_at = time.monotonic()
        self.log.warning("offload_spawner: lost the watch on nodes; availability is unknown until it restarts")

    async def _stop_reflectors(self) -> None:
        reflectors = [r for r in [self.nodes, *self.pods.values()] if r is not None]
        self.nodes, self.pods = None, {}
        for reflector in reflectors:
            await reflector.stop()

    async def stop(self) -> None:
        if self._start_task is not None and not self._start_task.done():
            self._start_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._start_task
        await self._stop_reflectors()
        self.state = "idle"

    # --- what the logic reads -----------------------------------------------------------

    def view(self) -> ClusterView:
        """The cluster state from memory (no API call)."""
        if self.state != "running" or self.nodes is None:
            note = {
                # Users' words: the form shows these as they are.
                "forbidden": "this site does not publish its free capacity to this hub",
                "failed": "this site's free capacity cannot be read right now",
            }.get(self.state, "this site's free capacity is still being read")
            return ClusterView(known=False, note=note)
        wanted = set(self.node_names)
        nodes = [n for n in list(self.nodes.resources.values()) if (n.get("metadata") or {}).get("name") in wanted]
        pods = [p for reflector in list(self.pods.values()) for p in list(reflector.resources.values())]
        # Rebuild only when something changed: every stored object version has its
        # own resourceVersion, so the set of them names the state.
        version = frozenset(
            ((o.get("metadata") or {}).get("uid"), (o.get("metadata") or {}).get("resourceVersion"))
            for o in nodes + pods
        )
        if self._view is None or self._view[0] != version:
            objects: list[Any] = [{**n, "kind": "Node"} for n in nodes] + [{**p, "kind": "Pod"} for p in pods]
            self._view = (version, cluster_view(objects, self.node_names))
        return self._view[1]


__all__ = ["AvailabilityWatcher"]
