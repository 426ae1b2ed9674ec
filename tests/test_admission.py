"""Admission in the spawner: reservations are taken before anything is created,
refuse what would overbook, and are given back when a spawn fails.

The real OffloadSpawner and its real watcher object, whose two reflectors
(nodes, and the pods bound to vk-leonardo) are stood in by their in-memory
``resources`` dicts, since there is no API server here; and ``_start`` stops
right after ``load_user_options`` (where KubeSpawner would next create the
pod). tests/e2e/test_availability_e2e.py runs the same path on the control
plane with real reflectors, real pods and 20 concurrent spawns.
"""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest
from jupyterhub.objects import Hub
from jupyterhub.spawner import SpawnException
from kubespawner import KubeSpawner
from traitlets.config import Config

from offload_spawner.availability.watcher import AvailabilityWatcher
from offload_spawner.hub.cli import CliGroup, CliUser
from offload_spawner.hub.spawner import OffloadSpawner
from test_availability import GPU_USER, node, pod

GPU = {"profile": "analysis", "target": "leonardo", "accelerator": "nvidia.com/gpu:a100", "accelerator_count": 1}
FULL = "All 4 NVIDIA GPU a100 on CINECA Leonardo (SLURM) are in use; try again later or pick another target."


class StopsBeforeCreating(OffloadSpawner):
    """``_start`` = KubeSpawner's first step (load_user_options), then success or a failure."""

    fail = False

    async def _start(self):
        await self.load_user_options()
        if self.fail:
            raise RuntimeError("the pod could not be created")
        return "http://127.0.0.1:1"


@pytest.fixture
async def leonardo_pods():
    """The watcher for vk-leonardo (3 of its 4 a100 in use), as the spawners will find it."""
    watcher = AvailabilityWatcher(["vk-leonardo", "vk-naples"], "jhub", logging.getLogger("test"))
    pods = {"jhub/busy": pod("busy", gpus=3)}
    watcher.nodes = SimpleNamespace(
        resources={
            "/vk-leonardo": node(),
            "/vk-naples": node("vk-naples", gpus=None, labels={}),
        }
    )
    watcher.pods = {"vk-leonardo": SimpleNamespace(resources=pods)}
    watcher.state = "running"
    KubeSpawner.reflectors[("offload-availability", "jhub")] = watcher
    yield pods
    KubeSpawner.reflectors.pop(("offload-availability", "jhub"), None)


def spawner(contract_config, name: str, fail: bool = False) -> StopsBeforeCreating:
    config = Config()
    config.OffloadSpawner.update({**contract_config, "namespace": "jhub"})
    s = StopsBeforeCreating(
        user=CliUser(name, [CliGroup(g) for g in GPU_USER]),
        hub=Hub(ip="hub", port=8081, base_url="/hub/"),
        config=config,
    )
    s.fail = fail
    s.user_options = dict(GPU)
    return s


async def test_reservation_refuses_the_second_and_counts_once_bound(contract_config, leonardo_pods):
    watcher = KubeSpawner.reflectors[("offload-availability", "jhub")]
    carol, dave = spawner(contract_config, "carol"), spawner(contract_config, "dave")

    assert await carol.start() == "http://127.0.0.1:1"
    assert set(watcher.reservations) == {"jhub/jupyter-carol"}
    # dave is refused at both steps, with the user's message, and reserves nothing.
    for attempt in (lambda: dave._check_user_options(dave, GPU), dave.start):
        with pytest.raises(SpawnException) as e:
            await attempt()
        assert e.value.status_code == 400 and e.value.jupyterhub_message == FULL
    assert set(watcher.reservations) == {"jhub/jupyter-carol"}
    # The same user checking again is not blocked by their own reservation.
    await carol._check_user_options(carol, GPU)

    # carol's pod is bound: its requests count as used, the reservation no longer does.
    leonardo_pods["jhub/jupyter-carol"] = pod("jupyter-carol", gpus=1)
    a100 = (await dave.availability_json())["targets"]["leonardo"]["accelerators"]["nvidia.com/gpu:a100"]
    assert a100 == {"total": 4, "used": 4, "available": 0}
    # Its pod is gone and the server stopped (stop()/poll() release; called
    # directly here, as KubeSpawner's stop needs the API): the GPU is free again.
    del leonardo_pods["jhub/jupyter-carol"]
    carol._release_reservation()
    assert watcher.reservations == {}
    assert await dave.start() == "http://127.0.0.1:1"
    assert set(watcher.reservations) == {"jhub/jupyter-dave"}


async def test_a_failed_spawn_releases_its_reservation(contract_config, leonardo_pods):
    watcher = KubeSpawner.reflectors[("offload-availability", "jhub")]
    carol, dave = spawner(contract_config, "carol", fail=True), spawner(contract_config, "dave")
    with pytest.raises(RuntimeError):
        await carol.start()
    assert watcher.reservations == {}
    assert await dave.start() == "http://127.0.0.1:1"
