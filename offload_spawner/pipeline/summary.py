"""A human summary of a catalog, for ``offload-spawner check`` and the hub log."""

from __future__ import annotations

from .catalog import Catalog, Limits
from .reachability import catalog_warnings
from .units import format_memory


def _limits(limits: Limits | None) -> str:
    if limits is None:
        return "no ceiling"
    parts = []
    if limits.cores is not None:
        parts.append(f"{limits.cores:g} cores")
    if limits.memory is not None:
        parts.append(format_memory(limits.memory))
    for resource, count in (limits.accelerators or {}).items():
        parts.append(f"{count} x {resource}")
    return ", ".join(parts) or "no ceiling"


def _groups(groups: list[str] | None) -> str:
    return "everyone" if groups is None else ("nobody" if not groups else ", ".join(groups))


def summarize(catalog: Catalog) -> str:
    lines = [
        f"{len(catalog.profile_list)} profile(s), {len(catalog.offload_targets)} target(s), "
        f"{len(catalog.group_limits)} group limit(s)"
    ]
    for profile in catalog.profile_list:
        targets = ", ".join(catalog.profile_targets(profile)) or "-"
        lines.append(
            f"  profile {profile.resolved_slug}: {profile.display_name!r} for {_groups(profile.allowed_groups)}; targets: {targets}"
        )
    for slug, target in catalog.offload_targets.items():
        where = f"node {target.node}, offload {target.offload}" if target.is_virtual else "in this cluster"
        lines.append(
            f"  target {slug}: {target.backend.value} ({where}) for {_groups(target.allowed_groups)}; limits: {_limits(target.limits)}"
        )
    for group, limits in catalog.group_limits.items():
        lines.append(f"  group {group}: {_limits(limits)}")
    if catalog.default_limits is not None:
        lines.append(f"  default limits: {_limits(catalog.default_limits)}")
    lines.extend(f"WARNING: {warning}" for warning in catalog_warnings(catalog))
    return "\n".join(lines)
