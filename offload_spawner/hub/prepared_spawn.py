"""What one spawn is prepared into, before KubeSpawner creates anything.

:meth:`OffloadSpawner.load_user_options <offload_spawner.hub.spawner.OffloadSpawner.load_user_options>`
(the first step of KubeSpawner's ``_start``) takes the user's options and the
spawner's configuration and makes a :class:`PreparedSpawn`, in its steps'
order; the spawner's parts read it from then on (``_prepared``) rather than
attributes each of them sets:

=================  =====================================================  ====================================
field              made by                                                read by
=================  =====================================================  ====================================
``selection``      the user's options checked against their menu          admission (what it reserves)
``plan``           :func:`offload_spawner.pipeline.plan.build_plan` (or the auto    the pod manifest, env, token policy,
                   target's choice)                                       remote-failure watch, fresh login
``site_uid``       the user's login (``pod_shape.run_as_user_claim``)     the pod's ``runAsUser``
``dask``           :func:`offload_spawner.dask.dask_config.dask_config`         the env, and ``server_files`` (the
                                                                          per-server Secret's files)
=================  =====================================================  ====================================

The tokens the per-server Secret delivers are not part of it: they are read
(refreshed if needed) when the pod is created, and again when rotated, by
:class:`~offload_spawner.identity.token_delivery.TokenDeliveryMixin`.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..dask.dask_config import DaskServerConfig
from ..pipeline.plan import PodPlan
from ..pipeline.selection import Selection


@dataclass(frozen=True)
class PreparedSpawn:
    """One spawn's checked selection and what was derived from it (see module doc)."""

    #: the user's options, checked against their menu
    selection: Selection
    #: what the pod must carry
    plan: PodPlan
    #: the user's UID at the site, when the target asks for one (else None)
    site_uid: int | None = None
    #: the server's Dask files and env (None: no Dask settings in force)
    dask: DaskServerConfig | None = None


__all__ = ["PreparedSpawn"]
