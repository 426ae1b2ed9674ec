"""The menu: what one user may choose, computed from the catalog and their groups.

Only what is in a :class:`Menu` may reach the user's browser, and only what is
in it is accepted back (see :mod:`offload_spawner.pipeline.selection`).  A menu holds
no kubespawner_override, environment, selector or annotation: those stay in
the catalog and are applied by the pod plan.
"""

from __future__ import annotations

import hashlib
import string
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from .catalog import (
    Catalog,
    Choice,
    CoresOption,
    MemoryOption,
    Profile,
    ProfileOption,
    Target,
    accelerator_model_label,
)
from .limits import Ceiling, target_ceiling, user_ceiling
from .storage import StorageLine, storage_lines


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
        # A range (no choices) has both min and max (see _bounds).
        return self.min is not None and self.max is not None and self.min <= value <= self.max


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
    #: the volumes this user may have and whether this target mounts each
    storage: tuple[StorageLine, ...] = ()

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
    #: digests (:func:`free_text_digest`) of free text that would give what a
    #: choice hidden from this user gives: refused, so that free text is no way
    #: around a choice's allowed_groups. Digests, not values: the menu reaches
    #: the form template, and a hidden choice's image must not.
    refused: frozenset[str] = field(default=frozenset(), repr=False)


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


def _bounds(option: CoresOption | MemoryOption | None, cap: float | None) -> Bounds | Literal[False] | None:
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
    low, top = option.min, option.max
    if low is None or top is None:  # the catalog model's validator requires both when there are no choices
        raise ValueError("a range needs both 'min' and 'max'")
    high = top
    if cap is not None and cap < high:
        high = cap
    if high < low:
        return False
    default = option.default if option.default is not None else low
    default = min(max(default, low), high)
    cut = cap if high < top else None
    return Bounds(choices=None, min=low, max=high, default=default, cap=cut)


def _menu_target(
    slug: str | None, target: Target | None, profile: Profile, ceiling: Ceiling, storage: tuple[StorageLine, ...] = ()
) -> MenuTarget | None:
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
                    model_label=accelerator_model_label(resource, offer),
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
        cores=cores,
        memory=memory,
        accelerators=tuple(accelerators),
        ceiling=ceiling,
        storage=storage,
    )


_DOCKER_HUB_PREFIXES = ("docker.io/", "index.docker.io/", "registry-1.docker.io/")


def normalise_free_text(text: str) -> str:
    """Free text as compared with hidden choices: the same image written another way
    is the same image. NFKC (full-width letters), case, surrounding space, Docker
    Hub's implicit registry and ``library/`` namespace and the ``:latest`` tag."""
    text = unicodedata.normalize("NFKC", text).strip().casefold()
    for prefix in _DOCKER_HUB_PREFIXES:
        if text.startswith(prefix):
            text = text[len(prefix) :]
            break
    text = text.removeprefix("library/")
    if text.endswith(":latest") and "@" not in text:
        text = text[: -len(":latest")]
    return text


def free_text_digest(text: str) -> str:
    return hashlib.sha256(normalise_free_text(text).encode("utf-8", "surrogatepass")).hexdigest()


def _template_ends(template: object) -> tuple[str, str] | None:
    """(prefix, suffix) around the one plain ``{value}`` of a string template, else None.

    Mirrors :func:`offload_spawner.pipeline.plan.fill_value`: other fields stay literal.
    """
    if not isinstance(template, str):
        return None
    before: list[str] = []
    after: list[str] = []
    seen = 0
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError:
        return None
    for literal, name, spec, _conversion in parts:
        (after if seen else before).append(literal)
        if name == "value":
            if spec:
                return None
            seen += 1
        elif name is not None:
            (after if seen else before).append("{" + name + "}")
    return ("".join(before), "".join(after)) if seen == 1 else None


def _free_text_for(choice: Choice, templates: dict[str, tuple[str, str]]) -> set[str]:
    """The free texts that would set a key the way ``choice`` sets it."""
    out = set()
    for key, (prefix, suffix) in templates.items():
        value = choice.kubespawner_override.get(key)
        if isinstance(value, str) and value.startswith(prefix) and value.endswith(suffix):
            text = value[len(prefix) : len(value) - len(suffix)]
            if text:
                out.add(text)
    return out


def _refused_free_text(option: ProfileOption, groups: frozenset[str]) -> frozenset[str]:
    templates = {}
    for key, template in option.unlisted_choice.kubespawner_override.items():
        ends = _template_ends(template)
        if ends is not None:
            templates[key] = ends
    hidden: set[str] = set()
    offered: set[str] = set()
    for choice in option.choices.values():
        texts = {free_text_digest(t) for t in _free_text_for(choice, templates)}
        (offered if _visible(choice.allowed_groups, groups) else hidden).update(texts)
    return frozenset(hidden - offered)


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
                refused=_refused_free_text(option, groups),
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
                    entry = _menu_target(
                        slug, target, profile, target_ceilings[slug], storage_lines(catalog, slug, groups)
                    )
                    if entry is not None:
                        targets.append(entry)
            if not targets:
                continue
        else:
            entry = _menu_target(None, None, profile, ceiling, storage_lines(catalog, None, groups))
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
