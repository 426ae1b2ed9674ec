"""Creating and deleting a server's pod ride out a short Kubernetes API outage.

KubeSpawner retries its pod create and delete requests (``exponential_backoff``
up to ``k8s_api_request_retry_timeout``) only when a request times out; a
connection the API server refuses or drops (kube-apiserver restarting: aiohttp's
``ClientConnectorError``, ``ServerDisconnectedError``) raises at once. For a
stop that is the worst case: JupyterHub forgets the server whatever ``stop()``
raised (jupyterhub/user.py, ``User.stop``: its ``finally`` clears the server and
the spawner's state), so the pod keeps running unseen, and so does its token
Secret, which the garbage collector removes only with the pod.

:class:`ApiOutageMixin` sits right before KubeSpawner in
:class:`~offload_spawner.spawner.OffloadSpawner`'s bases and makes such a
connection failure count as "not yet", as KubeSpawner's own timeout does: the
request is tried again until ``k8s_api_request_retry_timeout`` (KubeSpawner's
trait, 30 s by default), and only then does the start or stop fail. A create
whose answer was lost after the API server stored the pod is tried again and
meets HTTP 409, which KubeSpawner answers by deleting that pod and creating it
anew.
"""

from __future__ import annotations

from typing import Any

import aiohttp

#: What a refused, reset or dropped connection to the API server raises.
API_UNREACHABLE: tuple[type[BaseException], ...] = (aiohttp.ClientConnectionError, ConnectionError)


class ApiOutageMixin:
    """Retry the pod create/delete while the Kubernetes API cannot be reached (see module doc)."""

    log: Any
    namespace: str

    async def _make_create_pod_request(self, pod: Any, request_timeout: float) -> bool:
        try:
            created: bool = await super()._make_create_pod_request(pod, request_timeout)  # type: ignore[misc]
        except API_UNREACHABLE as e:
            self.log.warning(
                "Creating pod %s/%s: the Kubernetes API cannot be reached (%s); trying again",
                self.namespace, pod.metadata.name, type(e).__name__,
            )
            return False
        return created

    async def _make_delete_pod_request(
        self, pod_name: str, delete_options: Any, grace_seconds: int, request_timeout: float
    ) -> bool:
        try:
            deleted: bool = await super()._make_delete_pod_request(  # type: ignore[misc]
                pod_name, delete_options, grace_seconds, request_timeout
            )
        except API_UNREACHABLE as e:
            self.log.warning(
                "Deleting pod %s/%s: the Kubernetes API cannot be reached (%s); trying again",
                self.namespace, pod_name, type(e).__name__,
            )
            return False
        return deleted


__all__ = ["API_UNREACHABLE", "ApiOutageMixin"]
