"""The start-up check of the catalog traits, apart from the spawner class so that
``offload-spawner check`` runs it without importing KubeSpawner and JupyterHub."""

from __future__ import annotations

from .catalog import Catalog, CatalogError, build_catalog
from .reachability import port_problems


def check_catalog(config_values: dict) -> Catalog:
    """Validate the catalog traits as resolved from a config (used at hub start and by the CLI)."""
    profile_list = config_values.get("profile_list")
    if callable(profile_list):
        profile_list = []
    catalog = build_catalog(
        profile_list,
        config_values.get("offload_targets"),
        config_values.get("group_limits"),
        config_values.get("default_limits"),
    )
    problems = port_problems(catalog, config_values.get("port"))
    if problems:
        raise CatalogError(problems)
    return catalog
