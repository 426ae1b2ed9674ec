"""OffloadSpawner's mixins: every one of them still runs, in the intended order.

Several mixins override the same KubeSpawner methods; one that forgot
``super()`` (or sat on the wrong side of TokenDeliveryMixin) would silently
switch another block off, e.g. a stop that no longer deletes the token Secret.
"""

from __future__ import annotations

import inspect

from kubespawner import KubeSpawner

from offload_spawner.availability.admission import AdmissionMixin
from offload_spawner.dask.dask_files import DaskFilesMixin
from offload_spawner.dask.dask_hub_token import DaskHubTokenMixin
from offload_spawner.dask.dask_placement_secret import DaskPlacementMixin
from offload_spawner.hub.api_outage import ApiOutageMixin
from offload_spawner.hub.auto_spawn import AutoTargetMixin
from offload_spawner.hub.spawner import OffloadSpawner
from offload_spawner.identity.fresh_login import FreshLoginMixin
from offload_spawner.identity.job_refresh_spawner import JobRefreshMixin
from offload_spawner.identity.token_delivery import TokenDeliveryMixin
from offload_spawner.metrics import SpawnMetricsMixin
from offload_spawner.remote.remote_session import RemoteSessionMixin

#: KubeSpawner methods OffloadSpawner replaces on purpose: the catalog's plan
#: is applied instead of KubeSpawner's profile_list handling, and a spawn link
#: pre-fills the form instead of starting a server (docs/security.md).
REPLACED = {("OffloadSpawner", "load_user_options"), ("OffloadSpawner", "options_from_query")}


def _overrides_without_super(cls: type) -> list[tuple[str, str]]:
    """(class, method) for each method of a class before KubeSpawner in ``cls``'s
    MRO that overrides a KubeSpawner method without calling ``super()``."""
    missing = []
    for klass in cls.__mro__[: cls.__mro__.index(KubeSpawner)]:
        for name, value in vars(klass).items():
            if inspect.isfunction(value) and hasattr(KubeSpawner, name) and "super()" not in inspect.getsource(value):
                missing.append((klass.__name__, name))
    return missing


def test_every_override_of_a_kubespawner_method_calls_super():
    assert set(_overrides_without_super(OffloadSpawner)) == REPLACED


def test_the_check_finds_an_override_without_super():
    class Forgetful(AdmissionMixin, KubeSpawner):
        async def poll(self):
            return None

    assert ("Forgetful", "poll") in _overrides_without_super(Forgetful)


def test_mixin_order_keeps_token_delivery_next_to_kubespawner():
    mro = OffloadSpawner.__mro__
    assert mro[: mro.index(KubeSpawner) + 1] == (
        OffloadSpawner,
        SpawnMetricsMixin,
        AdmissionMixin,
        AutoTargetMixin,
        RemoteSessionMixin,
        FreshLoginMixin,
        JobRefreshMixin,
        DaskFilesMixin,
        DaskHubTokenMixin,
        TokenDeliveryMixin,
        DaskPlacementMixin,
        ApiOutageMixin,
        KubeSpawner,
    )
    # The placement Secret is created right after the pod, before the token Secret.
    # The refresh-aware auth_state, the Dask pods' scoped hub token and the spawner's own
    # server_files (the Dask files and the job refresher's) replace TokenDeliveryMixin's
    # default hooks, by name, not by base order.
    assert OffloadSpawner.dask_hub_token is DaskHubTokenMixin.dask_hub_token
    assert OffloadSpawner.fresh_auth_state is FreshLoginMixin.fresh_auth_state
    assert "server_files" in vars(OffloadSpawner)


def test_mixins_add_no_config_section():
    # Plain mixins: c.OffloadSpawner.<trait> stays the only section besides KubeSpawner's.
    names = OffloadSpawner.section_names()
    assert names[-2:] == ["KubeSpawner", "OffloadSpawner"]
    assert {"offload_availability", "offload_availability_wait"} <= set(OffloadSpawner.class_own_traits(config=True))
