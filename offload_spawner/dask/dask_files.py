"""Spawner side of Dask offloading: the server's Dask files and env, computed
by the pure :func:`offload_spawner.dask.dask_config.dask_config`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..pipeline.limits import target_ceiling, user_ceiling
from ..pipeline.plan import PodPlan
from ..spawner_base import SpawnerBase
from .dask_config import DaskServerConfig, dask_config


class DaskFilesMixin(SpawnerBase):
    """The Dask configuration of this server's target and the ``server_files``
    hook that delivers it through the per-server Secret.

    :class:`~offload_spawner.hub.spawner.OffloadSpawner` names this mixin's
    ``server_files`` as its answer to TokenDeliveryMixin's hook (so it does not
    call ``super()``). Uses what OffloadSpawner defines: ``get_catalog``,
    ``user_groups`` and ``_dask`` (this spawn's Dask files and env, which its
    ``load_user_options`` prepares with :meth:`_dask_config_for` and its
    ``get_env`` adds); and the spawner's ``image``, ``namespace``,
    ``pod_name``, ``user`` and ``hub``."""

    # OffloadSpawner's attribute (declared there)
    if TYPE_CHECKING:  # OffloadSpawner's read-only view of its PreparedSpawn

        @property
        def _dask(self) -> DaskServerConfig | None: ...

    async def _dask_config_for(self, plan: PodPlan) -> DaskServerConfig | None:
        """The Dask files/env for this server's target (None: no Dask settings in force).

        Called after the plan's overrides are applied, so ``self.image`` is the
        server's own image (the Dask pods' default)."""
        if plan.target is None:
            return None
        catalog = await self.get_catalog()
        target = catalog.offload_targets[plan.target]
        if target.dask_settings is None:
            return None
        return dask_config(
            target_slug=plan.target,
            target=target,
            ceiling=target_ceiling(user_ceiling(catalog, self.user_groups()), target),
            image=self.image,
            namespace=self.namespace,
            pod_name=self.pod_name,
            user_name=self.user.name,
            # Dask pods on a virtual node reach the hub at the target's address.
            hub_api_url=target.hub_api_url or self.hub.api_url,
        )

    async def server_files(self) -> dict[str, str]:
        """Non-secret files this server receives (absolute path -> text), delivered
        through the per-server Secret: its Dask configuration, if any.

        Known once ``load_user_options`` has prepared the spawn (KubeSpawner
        calls it first in ``_start``); before that there is no file."""
        dask = self._dask
        return dict(dask.files) if dask is not None else {}


__all__ = ["DaskFilesMixin"]
