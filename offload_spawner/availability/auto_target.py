"""Automatic target choice ("Any available"): rank the targets a user may use
and pick the first one where the selection fits what is free now.

Pure logic, plain data in and out. The candidates are only the targets of
the chosen profile in the user's :class:`~offload_spawner.pipeline.menu.Menu` (so
never a target the user may not use); each is validated by the one validator
(:func:`~offload_spawner.pipeline.selection.select`), planned by
:func:`~offload_spawner.pipeline.plan.build_plan`, and checked against its
availability by :func:`~offload_spawner.availability.availability.plan_refusal` (the
same check admission makes at spawn).

Ranking: an admin's list of target slugs (first = preferred) or a mapping
``{slug: weight}`` (higher = preferred); targets it does not name come after,
in the profile's own (admin) order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeGuard

from ..pipeline.catalog import Catalog
from ..pipeline.menu import Menu, MenuProfile
from ..pipeline.plan import PodPlan, build_plan
from ..pipeline.selection import Selection, SelectionError, select
from .availability import TargetAvailability, plan_refusal

#: the ``target`` value that asks the hub to choose
AUTO = "auto"
DEFAULT_LABEL = "Any available"

#: the user_options keys whose bounds differ per target (menu.MenuTarget)
_PER_TARGET_FIELDS = frozenset({"target", "cores", "memory", "accelerator", "accelerator_count"})

Ranking = Sequence[str] | Mapping[str, float] | None


def is_auto(user_options: object) -> TypeGuard[Mapping[str, Any]]:
    return isinstance(user_options, Mapping) and user_options.get("target") == AUTO


def ranking_problems(ranking: Ranking, catalog: Catalog) -> list[str]:
    """What is wrong with an admin's ranking (unknown targets, bad weights)."""
    if ranking is None:
        return []
    problems = []
    names = list(ranking)
    for slug in names:
        if slug not in catalog.offload_targets:
            problems.append(f"offload_auto_target_ranking: {str(slug)[:60]!r} is not one of offload_targets")
    if isinstance(ranking, Mapping):
        for slug, weight in ranking.items():
            if isinstance(weight, bool) or not isinstance(weight, (int, float)):
                problems.append(f"offload_auto_target_ranking.{str(slug)[:60]}: the weight must be a number")
    elif len(set(names)) != len(names):
        problems.append("offload_auto_target_ranking: a target is listed twice")
    return problems


def ranked(profile: MenuProfile, ranking: Ranking) -> list[str]:
    """The profile's target slugs, best first (only targets of this user's menu)."""
    slugs = [t.slug for t in profile.targets if t.slug is not None]
    position = {slug: i for i, slug in enumerate(slugs)}
    if isinstance(ranking, Mapping):
        return sorted(slugs, key=lambda s: (-float(ranking.get(s, 0)), position[s]))
    order = {slug: i for i, slug in enumerate(ranking or ())}
    return sorted(slugs, key=lambda s: (order.get(s, len(order)), position[s]))


@dataclass(frozen=True)
class Candidate:
    slug: str
    display_name: str
    #: None: fits (or availability unknown); else why not, in words a user understands
    refusal: str | None
    selection: Selection | None = None
    plan: PodPlan | None = None


@dataclass(frozen=True)
class AutoChoice:
    """The outcome: ``chosen`` is None when no target fits."""

    candidates: tuple[Candidate, ...]

    @property
    def fitting(self) -> list[Candidate]:
        return [c for c in self.candidates if c.refusal is None]

    @property
    def chosen(self) -> Candidate | None:
        return next(iter(self.fitting), None)

    def chosen_plan(self) -> tuple[Selection, PodPlan] | None:
        """The chosen target's selection and plan (a fitting candidate has both); None when none fits."""
        chosen = self.chosen
        if chosen is None or chosen.selection is None or chosen.plan is None:
            return None
        return chosen.selection, chosen.plan

    def next_after(self, slug: str) -> Candidate | None:
        """The next fitting target after ``slug`` (for a failover)."""
        fitting = self.fitting
        for i, c in enumerate(fitting):
            if c.slug == slug:
                return fitting[i + 1] if i + 1 < len(fitting) else None
        return fitting[0] if fitting else None

    def message(self, label: str = DEFAULT_LABEL) -> str:
        """One line for the spawn page and the CLI."""
        chosen = self.chosen
        # The better-ranked targets passed over (all of them when none fits).
        before = self.candidates[: self.candidates.index(chosen)] if chosen is not None else self.candidates
        skipped = [f"{c.display_name}: {c.refusal}" for c in before]
        if chosen is None:
            return f"{label}: no target you may use has room now. " + " ".join(skipped)
        text = f"{label}: your server runs on {chosen.display_name}"
        if skipped:
            text += " (not: " + "; ".join(s.rstrip(".") for s in skipped) + ")"
        return text + "."


def choose_target(
    catalog: Catalog,
    menu: Menu,
    user_options: Mapping[str, Any],
    availability: Mapping[str, TargetAvailability],
    ranking: Ranking = None,
    exclude: Iterable[str] = (),
    username_slug: str | None = None,
) -> AutoChoice:
    """Rank the chosen profile's targets and check each; raises SelectionError when
    the profile itself is refused (the target is not what is wrong then).

    Each candidate's plan is the one a spawn on that target gets: for the menu's
    groups and ``username_slug`` (see :func:`offload_spawner.pipeline.plan.build_plan`)."""
    rest = {k: v for k, v in user_options.items() if k != "target"}
    slug = rest.get("profile") or menu.default_profile
    profile = menu.profile(slug) if isinstance(slug, str) else None
    if profile is None:
        select(menu, rest)  # raises the validator's own refusal for this profile
        raise SelectionError("There is no profile you can start.", "profile")
    excluded = set(exclude)
    candidates = []
    for slug in ranked(profile, ranking):
        menu_target = profile.target(slug)  # one of the profile's own (ranked)
        display_name = menu_target.display_name if menu_target is not None else slug
        if slug in excluded:
            continue
        try:
            selection = select(menu, {**rest, "target": slug})
        except SelectionError as e:
            if e.field not in _PER_TARGET_FIELDS:
                raise  # the profile's options or an unknown key: refused whatever the target
            candidates.append(Candidate(slug, display_name, e.message))
            continue
        plan = build_plan(catalog, selection, menu.groups, username_slug)
        a = availability.get(slug)
        why = plan_refusal(a, plan, selection) if a is not None else None
        candidates.append(Candidate(slug, display_name, why, selection, plan))
    return AutoChoice(tuple(candidates))


__all__ = ["AUTO", "DEFAULT_LABEL", "AutoChoice", "Candidate", "choose_target", "is_auto", "ranked", "ranking_problems"]
