"""Nodes reserved to groups: who tolerates them, and who prefers them.

A reserved node carries a taint (``reserved=<group>:NoSchedule`` on the AI_INFN
platform) and a label. The catalog's ``reservations`` list maps each such
taint to the groups it is reserved for. Pure logic: for a user's groups it
gives the tolerations and the preferred node affinity their servers carry;
everyone else's servers get neither, so the scheduler keeps them off those
nodes, and availability (:mod:`offload_spawner.availability.availability`) counts a
reserved virtual node as closed to them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .catalog import Reservation


def _member(reservation: Reservation, groups: frozenset[str]) -> bool:
    return not groups.isdisjoint(reservation.groups)


def reservation_tolerations(reservations: Iterable[Reservation], groups: Iterable[str]) -> list[dict[str, Any]]:
    """The tolerations of the reserved nodes this user's groups may use."""
    groups = frozenset(groups)
    return [
        {"key": r.key, "operator": "Equal", "value": r.value, "effect": r.effect}
        for r in reservations
        if _member(r, groups)
    ]


def reservation_affinity(reservations: Iterable[Reservation], groups: Iterable[str]) -> list[dict[str, Any]]:
    """Preferred scheduling terms (nodeAffinity) towards this user's reserved nodes."""
    groups = frozenset(groups)
    terms = []
    for r in reservations:
        if not _member(r, groups):
            continue
        labels = r.node_label or {r.key: r.value}
        terms.append(
            {
                "weight": r.weight,
                "preference": {
                    "matchExpressions": [
                        {"key": key, "operator": "In", "values": [value]} for key, value in sorted(labels.items())
                    ]
                },
            }
        )
    return terms


def reserved_for(reservations: Iterable[Reservation], taint: Mapping[str, Any]) -> tuple[str, ...] | None:
    """The groups a node taint reserves the node for (None: not a reservation's taint)."""
    for r in reservations:
        if taint.get("key") == r.key and (taint.get("value") or "") == r.value and taint.get("effect") == r.effect:
            return tuple(r.groups)
    return None
