"""Can the hub reach an offloaded server, and can the server reach the hub?

Pure checks of a :class:`~offload_spawner.pipeline.catalog.Catalog` (plus the configured
notebook port), run at hub start and by ``offload-spawner check``:

* errors: a session-offload target whose server would listen on 8080, the
  port interLink's wstunnel reserves for itself (``network: none`` on a
  session target is refused by the catalog itself);
* warnings: a session-offload target with neither ``hub_api_url`` nor
  ``network: mesh``: over wstunnel (inward only) the server cannot reach the
  hub's internal API (``hub:8081``), so its activity reports and OAuth
  checks fail. It stays a warning because some sites route the internal
  address (and the contract's own example has such a target).
"""

from __future__ import annotations

from typing import Any

from .catalog import Catalog

#: interLink's wstunnel forwards the pod's declared ports but keeps this one.
RESERVED_TUNNEL_PORT = 8080


def _session_targets(catalog: Catalog, slugs: list[str]) -> list[str]:
    return [s for s in slugs if catalog.offload_targets[s].runs_session_remotely]


def port_problems(catalog: Catalog, configured_port: Any = None) -> list[str]:
    """``path: message`` lines for every way a session target's server would use port 8080."""
    problems: list[str] = []
    reason = f"{RESERVED_TUNNEL_PORT} is reserved for interLink's tunnel on session-offload targets"
    all_session = _session_targets(catalog, list(catalog.offload_targets))
    if configured_port == RESERVED_TUNNEL_PORT and all_session:
        problems.append(f"port: {reason} ({', '.join(all_session)}); choose another notebook port")
    for index, profile in enumerate(catalog.profile_list):
        session = _session_targets(catalog, catalog.profile_targets(profile))
        if not session:
            continue
        where = f"targets {', '.join(session)}"
        if profile.kubespawner_override.get("port") == RESERVED_TUNNEL_PORT:
            problems.append(f"profile_list[{index}].kubespawner_override.port: {reason} ({where})")
        for key, option in profile.profile_options.items():
            for choice_key, choice in option.choices.items():
                if choice.kubespawner_override.get("port") == RESERVED_TUNNEL_PORT:
                    problems.append(
                        f"profile_list[{index}].profile_options.{key}.choices.{choice_key}.kubespawner_override.port: "
                        f"{reason} ({where})"
                    )
    return problems


def catalog_warnings(catalog: Catalog) -> list[str]:
    """Configurations that may work but usually do not (logged at hub start, printed by ``check``)."""
    warnings = []
    for slug, target in catalog.offload_targets.items():
        if target.runs_session_remotely and not target.hub_api_url and target.network != "mesh":
            warnings.append(
                f"offload_targets.{slug}: a server on {target.node} may not reach the hub's internal API "
                "(interLink's tunnel carries traffic inward only); set hub_api_url to an address the site "
                "can reach, or network: mesh"
            )
    return warnings


__all__ = ["RESERVED_TUNNEL_PORT", "catalog_warnings", "port_problems"]
