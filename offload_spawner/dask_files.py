"""Spawner side of Dask offloading: the server's Dask files and env, computed
by the pure :func:`offload_spawner.dask_config.dask_config`."""

from __future__ import annotations

from .dask_config import DaskServerConfig, dask_config
from .limits import target_ceiling, user_ceiling
from .plan import PodPlan
from .spawner_base import SpawnerBase


class DaskFilesMixin(SpawnerBase):
    """The Dask configuration of this server's target (``_dask``) and the
    ``server_files`` hook that delivers it through the per-server Secret.

    Must come before :class:`~offload_spawner.token_delivery.TokenDeliveryMixin`
    in the bases: its ``server_files`` replaces that mixin's default hook (no
    files), so it does not call ``super()``. Uses what
    :class:`~offload_spawner.spawner.OffloadSpawner` defines: ``_plan``,
    ``get_catalog`` and ``user_groups`` (its ``load_user_options`` sets
    ``_dask`` and its ``get_env`` adds ``_dask.env``); and the spawner's
    ``image``, ``namespace``, ``pod_name``, ``user`` and ``hub``."""

    _dask: DaskServerConfig | None = None
    # OffloadSpawner's attribute (declared there)
    _plan: PodPlan | None

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

        Known once ``load_user_options`` has run (KubeSpawner calls it first in
        ``_start``); before that there is no plan and no file."""
        if self._plan is None:
            return {}
        if self._dask is None:
            self._dask = await self._dask_config_for(self._plan)
        return dict(self._dask.files) if self._dask is not None else {}


__all__ = ["DaskFilesMixin"]
