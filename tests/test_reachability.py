"""Reachability of offloaded servers: the network field, port 8080, the hub_api_url warning."""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest

from offload_spawner.hub.spawner import check_catalog
from offload_spawner.pipeline.catalog import CatalogError, build_catalog
from offload_spawner.pipeline.reachability import catalog_warnings, port_problems


def test_the_contract_example_passes_with_a_warning_for_leonardo(contract_config):
    catalog = check_catalog(contract_config)
    warnings = catalog_warnings(catalog)
    assert len(warnings) == 1
    assert warnings[0].startswith("offload_targets.leonardo: ")
    assert "hub_api_url" in warnings[0] and "mesh" in warnings[0]


@pytest.mark.parametrize("fix", [{"hub_api_url": "https://hub.example.org/hub/api"}, {"network": "mesh"}])
def test_hub_api_url_or_mesh_silences_the_warning(contract_config, fix):
    contract_config["offload_targets"]["leonardo"].update(fix)
    assert catalog_warnings(check_catalog(contract_config)) == []


def test_wstunnel_without_hub_api_url_still_warns(contract_config):
    contract_config["offload_targets"]["leonardo"]["network"] = "wstunnel"
    assert len(catalog_warnings(check_catalog(contract_config))) == 1


def test_a_session_target_the_hub_cannot_reach_is_an_error(contract_config):
    contract_config["offload_targets"]["leonardo"]["network"] = "none"
    with pytest.raises(CatalogError) as e:
        check_catalog(contract_config)
    assert len(e.value.problems) == 1
    assert e.value.problems[0].startswith("offload_targets.leonardo: network 'none': the hub could not reach")


def test_network_none_is_fine_when_only_dask_goes_there(contract_config):
    contract_config["offload_targets"]["naples"]["network"] = "none"
    check_catalog(contract_config)


def test_network_value_and_place_are_checked(contract_config):
    bad = copy.deepcopy(contract_config)
    bad["offload_targets"]["leonardo"]["network"] = "vpn"
    with pytest.raises(CatalogError) as e:
        check_catalog(bad)
    assert e.value.problems[0].startswith("offload_targets.leonardo.network: ")
    contract_config["offload_targets"]["cluster"]["network"] = "mesh"
    with pytest.raises(CatalogError) as e:
        check_catalog(contract_config)
    assert e.value.problems == [
        "offload_targets.cluster: 'network' and 'pod_shape' are for virtual-node targets, not kubernetes"
    ]


def test_port_8080_is_refused_for_session_targets(contract_config):
    with pytest.raises(CatalogError) as e:
        check_catalog({**contract_config, "port": 8080})
    assert e.value.problems[0].startswith("port: 8080 is reserved for interLink's tunnel")
    assert "leonardo" in e.value.problems[0]
    check_catalog({**contract_config, "port": 8888})


def test_port_8080_in_an_override_is_refused(contract_config):
    choices = contract_config["profile_list"][0]["profile_options"]["image"]["choices"]
    choices["alma9"]["kubespawner_override"]["port"] = 8080
    with pytest.raises(CatalogError) as e:
        check_catalog(contract_config)
    assert e.value.problems == [
        "profile_list[0].profile_options.image.choices.alma9.kubespawner_override.port: "
        "8080 is reserved for interLink's tunnel on session-offload targets (targets leonardo)"
    ]


def test_port_8080_is_fine_without_session_targets(contract_config):
    contract_config["profile_list"][0]["targets"] = ["cluster", "naples"]
    contract_config["profile_list"][0]["kubespawner_override"] = {"port": 8080}
    assert port_problems(build_catalog(**contract_config)) == []


def test_check_prints_the_warning_and_exits_0(tmp_path):
    from conftest import EXAMPLE_CONFIG

    path = tmp_path / "jupyterhub_config.py"
    path.write_text(EXAMPLE_CONFIG.read_text())
    r = subprocess.run(
        [sys.executable, "-m", "offload_spawner.hub.cli", "check", "-f", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert "WARNING: offload_targets.leonardo: " in r.stdout
