"""offload_spawner.hub.config_loader: a jupyterhub_config.py or a Zero-to-JupyterHub
values file, resolved for one Spawner class as traitlets resolves it."""

import textwrap

import pytest
import yaml
from traitlets.config import Config

from offload_spawner.hub.config_loader import ConfigLoadError, config_from_helm_values, load_config, spawner_config
from offload_spawner.pipeline.catalog import build_catalog

CATALOG_KEYS = ("profile_list", "offload_targets", "group_limits", "default_limits")


@pytest.fixture(scope="module")
def OffloadSpawner():
    # importing the spawner needs a kube config: tests/conftest.py points KUBECONFIG at an offline one
    from offload_spawner.hub.spawner import OffloadSpawner

    return OffloadSpawner


def catalog_from(config: Config, cls):
    resolved = spawner_config(config, cls)
    return build_catalog(**{key: resolved.get(key) for key in CATALOG_KEYS})


# --- Zero-to-JupyterHub values ---------------------------------------------------------------


def values_for(contract_config) -> dict:
    """The contract example as an admin writes it in values.yaml."""
    return {
        "hub": {
            "config": {
                "JupyterHub": {"spawner_class": "offload"},
                "OffloadSpawner": {
                    "offload_targets": contract_config["offload_targets"],
                    "group_limits": contract_config["group_limits"],
                },
            }
        },
        "singleuser": {
            "image": {"name": "quay.io/jupyter/scipy-notebook", "tag": "2024-10-07"},
            "cpu": {"limit": 4, "guarantee": 0.5},
            "memory": {"limit": "8G", "guarantee": "1G"},
            "extraEnv": [{"name": "EXPERIMENT", "value": "cms"}, {"name": "EMPTY"}],
            "nodeSelector": {"pool": "users"},
            "profileList": contract_config["profile_list"],
        },
    }


def test_values_file_maps_to_config(tmp_path, contract_config, OffloadSpawner):
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values_for(contract_config)))
    config = load_config(path)
    assert config.JupyterHub.spawner_class == "offload"
    assert config.OffloadSpawner.offload_targets == contract_config["offload_targets"]
    assert config.OffloadSpawner.group_limits == contract_config["group_limits"]
    # the chart sets singleuser.* on KubeSpawner
    assert config.KubeSpawner.profile_list == contract_config["profile_list"]
    assert config.KubeSpawner.image == "quay.io/jupyter/scipy-notebook:2024-10-07"
    assert config.KubeSpawner.cpu_limit == 4
    assert config.KubeSpawner.cpu_guarantee == 0.5
    assert config.KubeSpawner.mem_limit == "8G"
    assert config.KubeSpawner.mem_guarantee == "1G"
    assert config.KubeSpawner.environment == {"EXPERIMENT": "cms", "EMPTY": ""}
    assert config.KubeSpawner.node_selector == {"pool": "users"}


def test_values_file_gives_the_contract_catalog(tmp_path, contract_config, contract_catalog, OffloadSpawner):
    path = tmp_path / "values.yml"
    path.write_text(yaml.safe_dump(values_for(contract_config)))
    catalog = catalog_from(load_config(path), OffloadSpawner)
    assert catalog == contract_catalog


def test_json_values_file(tmp_path, contract_config, OffloadSpawner):
    import json

    path = tmp_path / "values.json"
    path.write_text(json.dumps(values_for(contract_config)))
    assert load_config(path).OffloadSpawner.offload_targets["naples"]["node"] == "vk-naples"


def test_image_without_tag():
    config = config_from_helm_values({"singleuser": {"image": {"name": "jupyter/base-notebook"}}})
    assert config.KubeSpawner.image == "jupyter/base-notebook"


def test_extra_env_as_a_mapping_is_kept():
    config = config_from_helm_values({"singleuser": {"extraEnv": {"A": "1"}}})
    assert config.KubeSpawner.environment == {"A": "1"}


def test_hub_config_wins_over_singleuser_as_in_the_chart():
    values = {"singleuser": {"cpu": {"limit": 2}}, "hub": {"config": {"KubeSpawner": {"cpu_limit": 8}}}}
    assert config_from_helm_values(values).KubeSpawner.cpu_limit == 8


def test_extra_config_runs_after_and_sees_c():
    values = {
        "hub": {
            "config": {"OffloadSpawner": {"group_limits": {"cms": {"cores": 8}}}},
            "extraConfig": {
                "10-limits": "c.OffloadSpawner.group_limits['cms']['cores'] = 16\n",
                "20-default": "c.OffloadSpawner.default_limits = {'cores': 1}\n",
            },
        }
    }
    config = config_from_helm_values(values)
    assert config.OffloadSpawner.group_limits == {"cms": {"cores": 16}}
    assert config.OffloadSpawner.default_limits == {"cores": 1}


def test_extra_config_error_names_the_snippet():
    with pytest.raises(ConfigLoadError) as info:
        config_from_helm_values({"hub": {"extraConfig": {"broken": "1/0"}}}, source="values.yaml")
    message = str(info.value)
    assert "values.yaml" in message
    assert "hub.extraConfig.broken" in message
    assert "ZeroDivisionError" in message


def test_hub_config_must_be_a_mapping():
    with pytest.raises(ConfigLoadError) as info:
        config_from_helm_values({"hub": {"config": ["OffloadSpawner"]}}, source="v.yaml")
    assert "hub.config" in str(info.value)


def test_empty_values_file(tmp_path):
    path = tmp_path / "values.yaml"
    path.write_text("")
    config = load_config(path)
    assert not config._has_section("OffloadSpawner")


def test_values_file_that_is_not_yaml(tmp_path):
    path = tmp_path / "values.yaml"
    path.write_text("hub: [unclosed\n")
    with pytest.raises(ConfigLoadError) as info:
        load_config(path)
    assert str(path) in str(info.value)
    assert "YAML" in str(info.value)


def test_values_file_that_is_not_a_mapping(tmp_path):
    path = tmp_path / "values.yaml"
    path.write_text("- a\n- b\n")
    with pytest.raises(ConfigLoadError) as info:
        load_config(path)
    assert "mapping" in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigLoadError) as info:
        load_config(tmp_path / "nope.py")
    assert "no such file" in str(info.value)


# --- jupyterhub_config.py ----------------------------------------------------------------------


def test_python_config_file(tmp_path, contract_catalog, OffloadSpawner):
    from conftest import EXAMPLE_CONFIG

    path = tmp_path / "jupyterhub_config.py"
    path.write_text(EXAMPLE_CONFIG.read_text())
    config = load_config(path)
    assert config.JupyterHub.spawner_class == "offload"
    assert catalog_from(config, OffloadSpawner) == contract_catalog


def test_python_config_error_names_the_file(tmp_path):
    path = tmp_path / "jupyterhub_config.py"
    path.write_text("c.OffloadSpawner.offload_targets = undefined_name\n")
    with pytest.raises(ConfigLoadError) as info:
        load_config(path)
    assert "jupyterhub_config.py" in str(info.value)
    assert "NameError" in str(info.value)


# --- spawner_config: sections merged along the MRO -------------------------------------------------


def test_section_names_follow_the_mro(OffloadSpawner):
    names = OffloadSpawner.section_names()
    assert names.index("Spawner") < names.index("KubeSpawner") < names.index("OffloadSpawner")


def test_most_specific_section_wins(OffloadSpawner):
    config = Config()
    config.Spawner.cpu_limit = 1.0
    config.KubeSpawner.cpu_limit = 2.0
    config.OffloadSpawner.cpu_limit = 3.0
    config.Spawner.mem_limit = "1G"
    config.KubeSpawner.mem_limit = "2G"
    config.Spawner.default_url = "/lab"
    resolved = spawner_config(config, OffloadSpawner)
    assert resolved.cpu_limit == 3.0
    assert resolved.mem_limit == "2G"
    assert resolved.default_url == "/lab"


def test_profile_list_on_kubespawner_or_offloadspawner(OffloadSpawner):
    on_kube = Config()
    on_kube.KubeSpawner.profile_list = [{"display_name": "Kube"}]
    assert spawner_config(on_kube, OffloadSpawner).profile_list == [{"display_name": "Kube"}]
    both = Config()
    both.KubeSpawner.profile_list = [{"display_name": "Kube"}]
    both.OffloadSpawner.profile_list = [{"display_name": "Offload"}]
    assert spawner_config(both, OffloadSpawner).profile_list == [{"display_name": "Offload"}]


def test_dict_traits_are_replaced_not_merged(OffloadSpawner):
    # traitlets gives a trait the value of the most specific section, whole
    config = Config()
    config.KubeSpawner.environment = {"A": "1"}
    config.OffloadSpawner.environment = {"B": "2"}
    assert spawner_config(config, OffloadSpawner).environment == {"B": "2"}


def test_other_classes_sections_are_ignored(OffloadSpawner):
    config = Config()
    config.JupyterHub.spawner_class = "offload"
    config.LocalProcessSpawner.cpu_limit = 9.0
    resolved = spawner_config(config, OffloadSpawner)
    assert "spawner_class" not in resolved
    assert "cpu_limit" not in resolved


def test_spawner_config_for_kubespawner_skips_offloadspawner_section():
    from kubespawner import KubeSpawner

    config = Config()
    config.KubeSpawner.cpu_limit = 2.0
    config.OffloadSpawner.cpu_limit = 3.0
    assert spawner_config(config, KubeSpawner).cpu_limit == 2.0


def test_spawner_config_does_not_touch_the_input(OffloadSpawner):
    config = Config()
    config.KubeSpawner.cpu_limit = 2.0
    config.OffloadSpawner.cpu_limit = 3.0
    spawner_config(config, OffloadSpawner)
    assert config.KubeSpawner.cpu_limit == 2.0


def test_python_config_with_helper_functions(tmp_path, OffloadSpawner):
    path = tmp_path / "jupyterhub_config.py"
    path.write_text(
        textwrap.dedent(
            """
            def target(name, node):
                return {"display_name": name, "backend": "slurm", "node": node}

            c.OffloadSpawner.offload_targets = {"a": target("A", "vk-a")}
            """
        )
    )
    catalog = catalog_from(load_config(path), OffloadSpawner)
    assert catalog.offload_targets["a"].node == "vk-a"
