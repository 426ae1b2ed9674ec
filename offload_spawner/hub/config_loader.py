"""Read hub configuration the way the hub does: a ``jupyterhub_config.py`` or a
Zero-to-JupyterHub values file, resolved for one Spawner class.

The hub start check and the ``offload-spawner`` command line both use
:func:`spawner_config`, so a trait set on ``c.Spawner``, ``c.KubeSpawner`` or
``c.OffloadSpawner`` resolves exactly as traitlets resolves it for the spawner.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import yaml
from traitlets.config import Config
from traitlets.config.loader import PyFileConfigLoader


class ConfigLoadError(ValueError):
    """The configuration file cannot be read."""


#: Zero-to-JupyterHub ``singleuser.*`` keys and the KubeSpawner traits the
#: chart's jupyterhub_config.py sets from them (the common subset).
_SINGLEUSER_TRAITS = {
    ("profileList",): "profile_list",
    ("cpu", "limit"): "cpu_limit",
    ("cpu", "guarantee"): "cpu_guarantee",
    ("memory", "limit"): "mem_limit",
    ("memory", "guarantee"): "mem_guarantee",
    ("extraTolerations",): "tolerations",
    ("nodeSelector",): "node_selector",
    ("extraEnv",): "environment",
    ("extraLabels",): "extra_labels",
    ("extraAnnotations",): "extra_annotations",
    ("extraResource", "limits"): "extra_resource_limits",
    ("extraResource", "guarantees"): "extra_resource_guarantees",
    ("initContainers",): "init_containers",
    ("extraContainers",): "extra_containers",
    ("extraPodConfig",): "extra_pod_config",
    ("defaultUrl",): "default_url",
    ("startTimeout",): "start_timeout",
    ("uid",): "uid",
    ("fsGid",): "fs_gid",
    ("serviceAccountName",): "service_account",
    ("cmd",): "cmd",
    ("lifecycleHooks",): "lifecycle_hooks",
    ("networkTools", "image"): None,  # used only through the chart's init container
}


def load_config(path: str | Path) -> Config:
    """Load a ``jupyterhub_config.py`` or a Zero-to-JupyterHub values file (.yaml/.yml/.json)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigLoadError(f"{path}: no such file")
    if path.suffix in (".yaml", ".yml", ".json"):
        try:
            values = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigLoadError(f"{path}: not valid YAML: {e}") from None
        if not isinstance(values, dict):
            raise ConfigLoadError(f"{path}: expected a mapping of chart values")
        return config_from_helm_values(values, source=str(path))
    loader = PyFileConfigLoader(path.name, path=str(path.parent.resolve()))
    try:
        config: Config = loader.load_config()
    except Exception as e:  # noqa: BLE001 - the admin's Python raised: say where
        raise ConfigLoadError(f"{path}: {type(e).__name__}: {e}") from None
    return config


def config_from_helm_values(values: dict[str, Any], source: str = "values") -> Config:
    """Turn chart values into traitlets config, as the chart's hub does.

    ``hub.config`` is passed through; the common ``singleuser`` keys become
    KubeSpawner traits; ``hub.extraConfig`` snippets are executed with ``c``
    (as the chart does) after that.
    """
    config = Config()
    singleuser = values.get("singleuser") or {}
    image = singleuser.get("image") or {}
    if image.get("name"):
        config.KubeSpawner.image = f"{image['name']}:{image['tag']}" if image.get("tag") else image["name"]
    for keys, trait in _SINGLEUSER_TRAITS.items():
        if trait is None:
            continue
        value: Any = singleuser
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        if value is None:
            continue
        if trait == "environment" and isinstance(value, list):
            value = {e["name"]: e.get("value", "") for e in value if isinstance(e, dict) and "name" in e}
        config.KubeSpawner[trait] = value
    hub_config = (values.get("hub") or {}).get("config") or {}
    if not isinstance(hub_config, dict):
        raise ConfigLoadError(f"{source}: hub.config must be a mapping")
    config.merge(Config(hub_config))
    for name, snippet in sorted(((values.get("hub") or {}).get("extraConfig") or {}).items()):
        try:
            # The admin's own snippet, run as the chart's jupyterhub_config.py runs it.
            code = compile(snippet, f"{source}:hub.extraConfig.{name}", "exec")
            exec(code, {"c": config, "get_config": lambda: config})  # noqa: S102
        except Exception as e:  # noqa: BLE001 - the admin's snippet raised: say which
            raise ConfigLoadError(f"{source}: hub.extraConfig.{name}: {type(e).__name__}: {e}") from None
    return config


class HasSections(Protocol):
    """A Configurable class, or the CLI's stand-in for OffloadSpawner's (cli.SpawnerSettings)."""

    def section_names(self) -> list[str]: ...


def spawner_config(config: Config, cls: HasSections) -> Config:
    """The config one Spawner class sees: its sections merged along its MRO."""
    merged = Config()
    for name in cls.section_names():
        if config._has_section(name):
            merged.merge(config[name])
    return merged
