"""The demo's hub configuration (demo/jupyterhub_config.py) as the hub reads it.

Run on the test bed (DEMO_TESTBED set, as demo/run.py does) its session sites
are reachable both ways (the servers are local processes), which the config
declares, so the hub prints no "may not reach the hub's internal API" warning
there; without the test bed the same targets keep the warning.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from offload_spawner.hub.config_loader import load_config, spawner_config
from offload_spawner.hub.spawner import OffloadSpawner, check_catalog
from offload_spawner.pipeline.reachability import catalog_warnings

DEMO_CONFIG = Path(__file__).resolve().parents[1] / "demo" / "jupyterhub_config.py"


def demo_catalog():
    return check_catalog(spawner_config(load_config(DEMO_CONFIG), OffloadSpawner))


def test_on_the_test_bed_the_demo_config_is_reachable_and_says_so(monkeypatch):
    monkeypatch.setenv("DEMO_TESTBED", "1")
    assert catalog_warnings(demo_catalog()) == []


def test_the_warning_is_still_given_where_nothing_says_the_site_reaches_the_hub(monkeypatch):
    monkeypatch.delenv("DEMO_TESTBED", raising=False)
    warnings = catalog_warnings(demo_catalog())
    assert [w.split(":")[0] for w in warnings] == ["offload_targets.leonardo", "offload_targets.docker"]


@pytest.mark.parametrize("testbed", ["1", None])
def test_the_demo_lands_in_jupyterlab_only_on_the_test_bed(monkeypatch, testbed):
    if testbed:
        monkeypatch.setenv("DEMO_TESTBED", testbed)
    else:
        monkeypatch.delenv("DEMO_TESTBED", raising=False)
    config = spawner_config(load_config(DEMO_CONFIG), OffloadSpawner)
    assert config.get("default_url") == ("/lab" if testbed else None)


def test_with_the_real_interlink_stack_the_slurm_target_is_its_node(monkeypatch):
    """demo/run.py passes the real stack's node and SLURM's size: the SLURM target moves
    there, offers what that SLURM has, and asks for GPUs with --gres (the test bed's
    plugin has no flavors)."""
    for name, value in {
        "DEMO_TESTBED": "1",
        "DEMO_SLURM_NODE": "vk-slurm",
        "DEMO_SLURM_CPUS": "2",
        "DEMO_SLURM_MEMORY_MB": "8192",
        "DEMO_SERVER_PORT": "40123",
    }.items():
        monkeypatch.setenv(name, value)
    catalog = demo_catalog()
    leonardo = catalog.offload_targets["leonardo"]
    assert leonardo.node == "vk-slurm"
    assert leonardo.slurm.flavor is None and leonardo.can_request_gpus
    assert leonardo.limits.cores == 2 and leonardo.limits.accelerators == {"nvidia.com/gpu": 2}
    assert catalog_warnings(catalog) == []
    config = spawner_config(load_config(DEMO_CONFIG), OffloadSpawner)
    assert (config["ip"], config["port"]) == ("127.0.0.1", 40123)
