"""A user's ceiling: what their groups allow, capped by a target.

The rules (documented in docs/admin-guide.md):

* cores and memory: the most generous value among the user's groups whose
  ``group_limits`` entry sets it; if none sets it, ``default_limits``; if that
  does not set it either, groups do not cap it.
* accelerators, per resource: the most generous count among the user's groups
  that list it; else ``default_limits``; else **zero when any group_limits entry
  names the resource** (naming an accelerator in a group reserves it to the
  groups that name it), otherwise groups do not cap it.
* a target caps cores and memory only when its ``limits`` set them, and offers
  only the accelerators its ``limits.accelerators`` lists.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TypeVar, overload

from .catalog import Catalog, Limits, Target

#: cores (float) or memory / accelerator counts (int)
_N = TypeVar("_N", int, float)


@dataclass(frozen=True)
class Ceiling:
    """Upper bounds; ``None`` means "not capped here"."""

    cores: float | None = None
    memory: int | None = None
    #: explicit accelerator counts, per extended resource
    accelerators: dict[str, int] = field(default_factory=dict)
    #: True when a resource missing from ``accelerators`` is not allowed at all
    closed: bool = False
    #: resources reserved to other groups (count 0 for this user)
    withheld: frozenset[str] = frozenset()

    def accelerator_cap(self, resource: str) -> int | None:
        if resource in self.accelerators:
            return self.accelerators[resource]
        if self.closed or resource in self.withheld:
            return 0
        return None


def user_ceiling(catalog: Catalog, groups: Iterable[str]) -> Ceiling:
    """The user's own ceiling from ``group_limits`` / ``default_limits``."""
    entries = [catalog.group_limits[g] for g in groups if g in catalog.group_limits]
    default = catalog.default_limits or Limits()

    def most(values: list[_N]) -> _N | None:
        return max(values) if values else None

    cores = most([e.cores for e in entries if e.cores is not None])
    memory = most([e.memory for e in entries if e.memory is not None])

    granted: dict[str, int] = {}
    for entry in entries:
        for resource, count in (entry.accelerators or {}).items():
            granted[resource] = max(count, granted.get(resource, 0))
    for resource, count in (default.accelerators or {}).items():
        granted.setdefault(resource, count)
    governed = _governed(catalog.group_limits)
    return Ceiling(
        cores=default.cores if cores is None else cores,
        memory=default.memory if memory is None else memory,
        accelerators=granted,
        closed=default.accelerators is not None,
        withheld=governed - set(granted),
    )


_governed_memo: tuple[dict[str, Limits], frozenset[str]] | None = None


def _governed(group_limits: dict[str, Limits]) -> frozenset[str]:
    """The resources some group_limits entry names. Remembered for the last
    catalog's entries (kept referenced, so identity is safe): a hub with
    hundreds of groups asks on every menu build."""
    global _governed_memo
    if _governed_memo is None or _governed_memo[0] is not group_limits:
        resources = frozenset(r for entry in group_limits.values() for r in (entry.accelerators or {}))
        _governed_memo = (group_limits, resources)
    return _governed_memo[1]


@overload
def _min(a: _N, b: _N | None) -> _N: ...
@overload
def _min(a: _N | None, b: _N | None) -> _N | None: ...
def _min(a: _N | None, b: _N | None) -> _N | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


def target_ceiling(ceiling: Ceiling, target: Target) -> Ceiling:
    """Cap a user's ceiling by what a target offers (only its listed accelerators)."""
    limits = target.limits
    return Ceiling(
        cores=_min(ceiling.cores, limits.cores),
        memory=_min(ceiling.memory, limits.memory),
        accelerators={
            resource: _min(count, ceiling.accelerator_cap(resource))
            for resource, count in (limits.accelerators or {}).items()
        },
        closed=True,
    )
