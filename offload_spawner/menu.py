"""The menu: what one user may choose, computed from the catalog and their groups.

Only what is in a :class:`Menu` may reach the user's browser, and only what is
in it is accepted back (see :mod:`offload_spawner.selection`).  A menu holds
no kubespawner_override, environment, selector or annotation: those stay in
the catalog and are applied by the pod plan.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .catalog import DEFAULT_MODEL_LABELS, Catalog, CoresOption, MemoryOption, Profile, Target
from .limits import Ceiling, target_ceiling, user_ceiling


@dataclass(frozen=True)
class Bounds:
    """A number the user picks: from ``choices``, or between ``min`` and ``max``."""

    choices: tuple[float, ...] | None
    min: float | None
    max: float | None
    default: float
    #: the ceiling that cut this range (for messages), or None
    cap: float | None = None

    def allows(self, value: float) -> bool:
        if self.choices is not None:
            return value in self.choices
        return self.min <= value <= self.max  # type: ignore[operator]


@dataclass(frozen=True)
class MenuAccelerator:
    resource: str
    display_name: str
    models: tuple[str, ...]
    max: int
    model_label: str


@dataclass(frozen=True)
class MenuTarget:
    """A target as one profile offers it to one user (bounds differ per target)."""

    slug: str | None  # None when the hub configures no offload targets
    display_name: str
    description: str
    backend: str
    offload: str  # "none", "session" or "dask"
    cores: Bounds | None
    memory: Bounds | None
    accelerators: tuple[MenuAccelerator, ...]
    ceiling: Ceiling

    def accelerator(self, resource: str) -> MenuAccelerator | None:
        return next((a for a in self.accelerators if a.resource == resource), None)


@dataclass(frozen=True)
class MenuChoice:
    key: str
    display_name: str
    description: str


@dataclass(frozen=True)
class MenuUnlisted:
    display_name: str
    display_name_in_choices: str
    validation_regex: str | None
    validation_message: str


@dataclass(frozen=True)
class MenuOption:
    key: str
    display_name: str
    choices: tuple[MenuChoice, ...]
    default: str | None
    unlisted: MenuUnlisted | None

    def choice(self, key: str) -> MenuChoice | None:
        return next((c for c in self.choices if c.key == key), None)


@dataclass(frozen=True)
class MenuProfile:
    slug: str
    display_name: str
    description: str
    options: tuple[MenuOption, ...]
    targets: tuple[MenuTarget, ...]
    default_target: str | None

    def option(self, key: str) -> MenuOption | None:
        return next((o for o in self.options if o.key == key), None)

    def target(self, slug: str | None) -> MenuTarget | None:
        return next((t for t in self.targets if t.slug == slug), None)


@dataclass(frozen=True)
class Menu:
    profiles: tuple[MenuProfile, ...]
    default_profile: str | None
    groups: frozenset[str]

    def profile(self, slug: str | None) -> MenuProfile | None:
        return next((p for p in self.profiles if p.slug == slug), None)


def _visible(allowed_groups: list[str] | None, groups: frozenset[str]) -> bool:
    return allowed_groups is None or not groups.isdisjoint(allowed_groups)


def _bounds(option: CoresOption | MemoryOption | None, cap: float | None) -> Bounds | None | bool:
    """Bounds under a cap; None when the profile offers no such choice, False when nothing fits."""
    if option is None:
        return None
    if option.choices is not None:
        choices = tuple(c for c in option.choices if cap is None or c <= cap)
        if not choices:
            return False
        default = option.default if option.default in choices else None
        if default is None:
            default = choices[0] if option.default is None else max(choices)
        cut = cap if len(choices) < len(option.choices) else None
        return Bounds(choices=choices, min=None, max=None, default=default, cap=cut)
    low, high = option.min, option.max
    if cap is not None and cap < high:
        high = cap
    if high < low:
        return False
    default = option.default if option.default is not None else low
    default = min(max(default, low), high)
    cut = cap if high < option.max else None
    return Bounds(choices=None, min=low, max=high, default=default, cap=cut)


def _menu_target(slug: str | None, target: Target | None, profile: Profile, ceiling: Ceiling) -> MenuTarget | None:
    """``ceiling``: the user's, already capped by ``target`` (:func:`target_ceiling`)."""
    cores = _bounds(profile.cores, ceiling.cores)
    memory = _bounds(profile.memory, ceiling.memory)
    if cores is False or memory is False:
        return None  # nothing this user may pick fits on this target
    accelerators = []
    for resource, offer in profile.accelerators.items():
        cap = ceiling.accelerator_cap(resource)
        count = offer.max if cap is None else min(offer.max, cap)
        if count >= 1:
            accelerators.append(
                MenuAccelerator(
                    resource=resource,
                    display_name=offer.display_name,
                    models=tuple(offer.models),
                    max=count,
                    model_label=offer.model_label or _model_label(resource),
                )
            )
    if target is None:
        offload = "none"
    elif target.is_virtual:
        offload = target.offload
    else:
        offload = "none"
    return MenuTarget(
        slug=slug,
        display_name=target.display_name if target else "",
        description=target.description if target else "",
        backend=target.backend.value if target else "kubernetes",
        offload=offload,
        cores=cores,  # type: ignore[arg-type]
        memory=memory,  # type: ignore[arg-type]
        accelerators=tuple(accelerators),
        ceiling=ceiling,
    )


def _model_label(resource: str) -> str:
    if resource in DEFAULT_MODEL_LABELS:
        return DEFAULT_MODEL_LABELS[resource]
    vendor, kind = resource.split("/", 1)
    return f"{vendor.split('.')[0]}-{kind}-type"


def _menu_options(profile: Profile, groups: frozenset[str]) -> tuple[MenuOption, ...] | None:
    options = []
    for key, option in profile.profile_options.items():
        choices = tuple(
            MenuChoice(key=k, display_name=c.display_name, description=c.description)
            for k, c in option.choices.items()
            if _visible(c.allowed_groups, groups)
        )
        unlisted = None
        if option.unlisted_choice.enabled:
            u = option.unlisted_choice
            unlisted = MenuUnlisted(
                display_name=u.display_name or option.display_name,
                display_name_in_choices=u.display_name_in_choices,
                validation_regex=u.validation_regex,
                validation_message=u.validation_message,
            )
        if not choices and unlisted is None:
            return None  # the user could not pick anything for this option
        visible = {c.key for c in choices}
        default = option.default_choice if option.default_choice in visible else None
        if default is None and choices:
            default = choices[0].key
        options.append(
            MenuOption(key=key, display_name=option.display_name, choices=choices, default=default, unlisted=unlisted)
        )
    return tuple(options)


def build_menu(catalog: Catalog, groups: Iterable[str], only_profile: str | None = None) -> Menu:
    """What a member of ``groups`` may choose.

    ``only_profile``: build the menu of that one profile (what checking a
    selection of it needs), not of every profile of a large catalog.
    """
    groups = frozenset(groups)
    ceiling = user_ceiling(catalog, groups)
    # A target caps the user's ceiling the same way for every profile: once per target.
    target_ceilings: dict[str, Ceiling] = {}
    profiles = []
    default_profile = None
    for profile in catalog.profile_list:
        if only_profile is not None and profile.resolved_slug != only_profile:
            continue
        if not _visible(profile.allowed_groups, groups):
            continue
        options = _menu_options(profile, groups)
        if options is None:
            continue
        if catalog.offload_targets:
            targets = []
            for slug in catalog.profile_targets(profile):
                target = catalog.offload_targets[slug]
                if _visible(target.allowed_groups, groups):
                    if slug not in target_ceilings:
                        target_ceilings[slug] = target_ceiling(ceiling, target)
                    entry = _menu_target(slug, target, profile, target_ceilings[slug])
                    if entry is not None:
                        targets.append(entry)
            if not targets:
                continue
        else:
            entry = _menu_target(None, None, profile, ceiling)
            if entry is None:
                continue
            targets = [entry]
        slug = profile.resolved_slug
        profiles.append(
            MenuProfile(
                slug=slug,
                display_name=profile.display_name,
                description=profile.description,
                options=options,
                targets=tuple(targets),
                default_target=targets[0].slug,
            )
        )
        if profile.default and default_profile is None:
            default_profile = slug
    if default_profile is None and profiles:
        default_profile = profiles[0].slug
    return Menu(profiles=tuple(profiles), default_profile=default_profile, groups=groups)
