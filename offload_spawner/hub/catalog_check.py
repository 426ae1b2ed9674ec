"""The start-up check of the catalog traits, apart from the spawner class so that
``offload-spawner check`` runs it without importing JupyterHub (KubeSpawner's
traits are read only to check ``kubespawner_override`` keys)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..availability.auto_target import ranking_problems
from ..pipeline.catalog import DEFAULT_DASK_HUB_SCOPES, Catalog, CatalogError, build_catalog
from ..pipeline.reachability import port_problems
from .config_checks import override_problems

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
    problems += unknown_scope_problems(catalog)
    if problems:
        raise CatalogError(problems)
    return catalog


def unknown_scope_problems(catalog: Catalog) -> list[str]:
    """``path: message`` lines for each target's ``tokens.dask_hub_scopes`` that
    JupyterHub does not know (jupyterhub/scopes.py ``_check_scopes_exist``: the
    scope names and filters JupyterHub knows; too broad scopes the catalog
    refuses itself)."""
    named = {slug: target.tokens.dask_hub_scopes for slug, target in catalog.offload_targets.items()}
    if all(list(scopes) == list(DEFAULT_DASK_HUB_SCOPES) for scopes in named.values()):
        return []
    # Imported here, not at the top: `offload-spawner check` loads JupyterHub only
    # when a target names its own scopes (as it loads KubeSpawner only for overrides).
    from jupyterhub.scopes import ScopeNotFound, _check_scopes_exist

    problems: list[str] = []
    for slug, scopes in named.items():
        for scope in scopes:
            try:
                _check_scopes_exist([scope])
            except ScopeNotFound as e:
                reason = e.args[0] if e.args else str(e)
                problems.append(
                    f"offload_targets.{slug}.tokens.dask_hub_scopes: {reason}; see JupyterHub's list of scopes"
                )
    return problems
