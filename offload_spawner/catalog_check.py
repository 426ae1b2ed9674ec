"""The start-up check of the catalog traits, apart from the spawner class so that
``offload-spawner check`` runs it without importing JupyterHub (KubeSpawner's
traits are read only to check ``kubespawner_override`` keys)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .auto_target import ranking_problems
from .catalog import Catalog, CatalogError, build_catalog
from .config_checks import override_problems
from .reachability import port_problems

if TYPE_CHECKING:
    from traitlets import HasTraits


def check_catalog(config_values: dict[str, Any], spawner_class: type[HasTraits] | None = None) -> Catalog:
    """Validate the catalog traits as resolved from a config (used at hub start and by the CLI).

    ``kubespawner_override`` keys are checked against ``spawner_class``'s traits
    (default: KubeSpawner's), so an admin's subclass may add its own."""
    profile_list = config_values.get("profile_list")
    if callable(profile_list):
        profile_list = []
    catalog = build_catalog(
        profile_list,
        config_values.get("offload_targets"),
        config_values.get("group_limits"),
        config_values.get("default_limits"),
        config_values.get("storage"),
        config_values.get("reservations"),
    )
    problems = port_problems(catalog, config_values.get("port")) + override_problems(catalog, spawner_class)
    problems += ranking_problems(config_values.get("offload_auto_target_ranking"), catalog)
    if problems:
        raise CatalogError(problems)
    return catalog
