"""Creating and deleting a server's pod ride out a short Kubernetes API outage.

KubeSpawner retries its pod create and delete requests (``exponential_backoff``
up to ``k8s_api_request_retry_timeout``) only when a request times out; a
connection the API server refuses or drops (kube-apiserver restarting: aiohttp's
``ClientConnectorError``, ``ServerDisconnectedError``) raises at once, and so
does an HTTP error answer. A kube-apiserver that has just started serves
requests before it is ready and answers them with 403 Forbidden until its RBAC
authorizer has loaded the Roles (seen on the test bed's v1.35 for about half a
second after each restart), or with 429/5xx while it is overloaded or not ready.
For a stop that is the worst case: JupyterHub forgets the server whatever ``stop()``
raised (jupyterhub/user.py, ``User.stop``: its ``finally`` clears the server and
the spawner's state), so the pod keeps running unseen, and so does its token
Secret, which the garbage collector removes only with the pod.

:class:`ApiOutageMixin` sits right before KubeSpawner in
:class:`~offload_spawner.hub.spawner.OffloadSpawner`'s bases and makes such a
connection failure, and such an answer, count as "not yet", as KubeSpawner's
own timeout does: the request is tried again until ``k8s_api_request_retry_timeout`` (KubeSpawner's
trait, 30 s by default), and only then does the start or stop fail. A create
whose answer was lost after the API server stored the pod is tried again and
meets HTTP 409, which KubeSpawner answers by deleting that pod and creating it
anew. A create answered 403 is not tried again: a ResourceQuota or an
admission policy refuses with 403 too, and the user should hear it at once; a
delete answered 403 is (the hub's Role allows deleting pods: a 403 there is the
API server's start).
"""

from __future__ import annotations

from typing import Any

import aiohttp
from kubernetes_asyncio.client.exceptions import ApiException

#: What a refused, reset or dropped connection to the API server raises.
API_UNREACHABLE: tuple[type[BaseException], ...] = (aiohttp.ClientConnectionError, ConnectionError)
#: HTTP answers of an API server that is overloaded, starting or stopping.
API_NOT_READY = frozenset({429, 500, 502, 503, 504})
#: ... and, for a delete, the 403 of an API server whose RBAC authorizer has not loaded yet.
DELETE_NOT_READY = API_NOT_READY | {403}
#: What a create or delete may raise that is looked at before giving up.
_MAYBE_TRANSIENT: tuple[type[BaseException], ...] = (*API_UNREACHABLE, ApiException)


def _why(error: BaseException) -> str:
    """For the log: the class of a connection error, the status of an HTTP one (no body)."""
    return f"HTTP {error.status}" if isinstance(error, ApiException) else type(error).__name__


class ApiOutageMixin:
    """Retry the pod create/delete while the Kubernetes API cannot be reached (see module doc)."""

    log: Any
    namespace: str

    async def _make_create_pod_request(self, pod: Any, request_timeout: float) -> bool:
        try:
            created: bool = await super()._make_create_pod_request(pod, request_timeout)  # type: ignore[misc]
        except _MAYBE_TRANSIENT as e:
            if isinstance(e, ApiException) and e.status not in API_NOT_READY:
                raise
            self.log.warning(
                "Creating pod %s/%s: the Kubernetes API cannot answer (%s); trying again",
                self.namespace,
                pod.metadata.name,
                _why(e),
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
        except _MAYBE_TRANSIENT as e:
            if isinstance(e, ApiException) and e.status not in DELETE_NOT_READY:
                raise
            self.log.warning(
                "Deleting pod %s/%s: the Kubernetes API cannot answer (%s); trying again",
                self.namespace,
                pod_name,
                _why(e),
            )
            return False
        return deleted


__all__ = ["API_NOT_READY", "API_UNREACHABLE", "DELETE_NOT_READY", "ApiOutageMixin"]
