"""Spawner side of the Dask placement allowance: the per-server placement Secret.

:class:`DaskPlacementMixin` sits between
:class:`~offload_spawner.identity.token_delivery.TokenDeliveryMixin` and KubeSpawner.
For every server whose pod holds a ServiceAccount (``service_account`` set:
only such a server can talk to the Kubernetes API and so create Dask objects)
it creates the Secret :func:`offload_spawner.dask.dask_placement.placement_secret`
describes: where this server's Dask pods may go, or nowhere when its target
has no Dask settings. The admission policy in
``helm-values/rbac-dask-tenant-policy.yaml`` reads it.

* **Ordering**: the Secret is owned by the pod (so Kubernetes deletes it with
  the pod), and so is created right after the pod, before the token Secret.
  The server's container cannot start before the token Secret exists (its
  env refers to it), so no code of the user runs before the allowance is in
  place. A stale Secret of the same name is deleted before the pod is created.
  A failure stops the server (its Dask pods would be unconstrained).
* **Stop**: deleted after KubeSpawner has deleted the pod, never while the
  pod can still make requests.
* The Secret is never replaced while the server runs: an allowance missing
  for a moment would let that server's requests through.

Uses the Secret requests of :class:`~offload_spawner.identity.token_delivery.TokenDeliveryMixin`
(``_create_secret``, ``_delete_secret``, ``_pod_uid``: raw responses, nothing logged).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ..identity.tokens import owner_reference
from .dask_placement import placement_secret, placement_secret_name

if TYPE_CHECKING:
    from .dask_config import DaskServerConfig


class DaskPlacementError(Exception):
    """The placement Secret could not be created; the message holds names only."""


class DaskPlacementMixin:
    """Create and delete the server's Dask placement Secret (see module doc)."""

    if TYPE_CHECKING:
        # What KubeSpawner, DaskFilesMixin and TokenDeliveryMixin provide.
        pod_name: str
        log: logging.Logger
        service_account: str | None

        @property
        def _dask(self) -> DaskServerConfig | None: ...

        async def _delete_secret(self, name: str) -> None: ...
        async def _create_secret(self, body: dict[str, Any]) -> None: ...
        async def _pod_uid(self) -> str: ...

    def _holds_service_account(self) -> bool:
        return bool(self.service_account)

    def _dask_cluster(self) -> dict[str, Any] | None:
        return self._dask.cluster if self._dask is not None else None

    async def _make_create_pod_request(self, pod: Any, request_timeout: Any) -> Any:
        if not self._holds_service_account():
            return await super()._make_create_pod_request(pod, request_timeout)  # type: ignore[misc]
        name = placement_secret_name(self.pod_name)
        await self._delete_secret(name)
        created = await super()._make_create_pod_request(pod, request_timeout)  # type: ignore[misc]
        if not created:
            return created
        try:
            uid = await self._pod_uid()
            body = placement_secret(
                self.pod_name,
                self._dask_cluster(),
                owner=owner_reference(self.pod_name, uid),
            )
            await self._create_secret(body)
        except Exception as e:  # noqa: BLE001 - whatever failed, the server's Dask pods would be unconstrained
            self.log.error("Creating the Dask placement Secret of %s failed: %s", self.pod_name, type(e).__name__)
            await self.stop(True)
            raise DaskPlacementError(f"could not create the Dask placement Secret of {self.pod_name}") from None
        return created

    async def stop(self, now: bool = False) -> Any:
        try:
            return await super().stop(now)  # type: ignore[misc]
        finally:
            if self._holds_service_account():
                try:
                    await self._delete_secret(placement_secret_name(self.pod_name))
                except Exception as e:  # noqa: BLE001 - the garbage collector removes it with the pod anyway
                    self.log.warning(
                        "Deleting the Dask placement Secret of %s failed: %s", self.pod_name, type(e).__name__
                    )


__all__ = ["DaskPlacementError", "DaskPlacementMixin"]
