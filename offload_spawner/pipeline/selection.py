"""The one validator: user_options in, a :class:`Selection` out (or a refusal).

The spawn form, the REST API and the command line all come through
:func:`select`.  It accepts only what the user's :class:`~offload_spawner.pipeline.menu.Menu`
offers; every refusal is a :class:`SelectionError` whose message a user
understands ("8 cores is above your limit of 4 on INFN Naples") and whose
``field`` names the user_options key at fault, so the form can show it there.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from .catalog import RESERVED_KEYS
from .menu import Bounds, Menu, MenuOption, MenuProfile, MenuTarget, free_text_digest
from .units import (
    QuantityError,
    format_cores,
    format_memory,
    parse_count,
    parse_memory,
    parse_number,
)

UNLISTED_SUFFIX = "--unlisted-choice"
MAX_TEXT = 512
# Free text may not carry braces (KubeSpawner expands them with str.format),
# control characters, or whitespace.
_UNSAFE_TEXT = re.compile(r"[{}\s\x00-\x1f\x7f]")
#: Unicode categories refused in free text whatever the admin's regex: controls
#: (C0 and C1, e.g. the CSI ``\x9b`` terminals obey), format characters
#: (U+202E right-to-left override, U+200B zero-width space), line and
#: paragraph separators, and private-use characters. None of them belongs in an
#: image name or path, and each can make what a log or an admin reads differ
#: from what runs.
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Co"})


def _has_invisible(text: str) -> bool:
    return any(unicodedata.category(ch) in _INVISIBLE_CATEGORIES for ch in text)


class SelectionError(ValueError):
    """A refused selection. ``field`` is the user_options key at fault, if any."""

    def __init__(self, message: str, field: str | None = None):
        self.message = message
        self.field = field
        super().__init__(message)


@dataclass(frozen=True)
class OptionPick:
    """One profile option: a listed choice key, or unlisted free text."""

    choice: str | None = None
    unlisted: str | None = None


@dataclass(frozen=True)
class Selection:
    profile: str | None
    target: str | None
    options: dict[str, OptionPick] = field(default_factory=dict)
    cores: float | None = None
    memory: int | None = None
    accelerator: str | None = None  # extended resource, e.g. nvidia.com/gpu
    accelerator_model: str | None = None
    accelerator_count: int = 0
    #: the offered volumes the user ticked (None: the defaults, all of them)
    storage: tuple[str, ...] | None = None

    def to_user_options(self) -> dict[str, Any]:
        """The canonical user_options (the keys the form and the REST API share) for this selection."""
        out: dict[str, Any] = {}
        if self.profile is not None:
            out["profile"] = self.profile
        for key, pick in self.options.items():
            if pick.unlisted is not None:
                out[key + UNLISTED_SUFFIX] = pick.unlisted
            else:
                out[key] = pick.choice
        if self.cores is not None:
            out["cores"] = self.cores if self.cores != int(self.cores) else int(self.cores)
        if self.memory is not None:
            out["memory"] = format_memory(self.memory)
        if self.accelerator is not None:
            out["accelerator"] = f"{self.accelerator}:{self.accelerator_model}"
            out["accelerator_count"] = self.accelerator_count
        if self.target is not None:
            out["target"] = self.target
        if self.storage is not None:
            out["storage"] = list(self.storage)
        return out


def _text(value: object, key: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise SelectionError(f"{key} must be a single value.", key)
    return str(value).strip() if isinstance(value, str) else str(value)


def _where(target: MenuTarget) -> str:
    return f" on {target.display_name}" if target.display_name else ""


def select(menu: Menu, user_options: Mapping[str, Any] | None) -> Selection:
    """Validate ``user_options`` against what ``menu`` offers."""
    if user_options is None:
        user_options = {}
    if not isinstance(user_options, Mapping):
        raise SelectionError("Server options must be a JSON object.")
    if not menu.profiles:
        raise SelectionError("There is no server configuration you are allowed to start. Ask your hub admin.")

    profile = _pick_profile(menu, user_options)
    _reject_unknown_keys(profile, user_options)
    target = _pick_target(profile, user_options)
    options = {option.key: _pick_option(option, user_options) for option in profile.options}
    cores = _pick_number(
        target.cores, user_options, "cores", "Cores", lambda v: parse_number(v, "Cores"), format_cores, target
    )
    memory = _pick_number(target.memory, user_options, "memory", "Memory", _parse_memory, format_memory, target)
    accelerator, model, count = _pick_accelerator(target, user_options)
    storage = _pick_storage(target, user_options)
    return Selection(
        profile=profile.slug,
        target=target.slug,
        options=options,
        cores=cores,
        # Memory bounds and parse_memory give the ints of bytes.
        memory=cast("int | None", memory),
        accelerator=accelerator,
        accelerator_model=model,
        accelerator_count=count,
        storage=storage,
    )


def _pick_profile(menu: Menu, user_options: Mapping[str, Any]) -> MenuProfile:
    slug = user_options.get("profile")
    if slug in (None, ""):
        default = menu.profile(menu.default_profile)
        if default is None:  # not reached: a menu with profiles has a default one
            raise SelectionError("Please choose a profile.", "profile")
        return default
    slug = _text(slug, "profile")
    profile = menu.profile(slug)
    if profile is None:
        # Same words whether the profile is hidden or does not exist at all.
        raise SelectionError(f"There is no profile {slug[:60]!r} you can start.", "profile")
    return profile


def _reject_unknown_keys(profile: MenuProfile, user_options: Mapping[str, Any]) -> None:
    known = set(RESERVED_KEYS)
    for option in profile.options:
        known.add(option.key)
        known.add(option.key + UNLISTED_SUFFIX)
    for key in user_options:
        if key not in known:
            shown = str(key)[:60]
            raise SelectionError(f"Unknown option {shown!r} for profile {profile.display_name!r}.", str(key)[:60])


def _pick_target(profile: MenuProfile, user_options: Mapping[str, Any]) -> MenuTarget:
    slug = user_options.get("target")
    if slug in (None, ""):
        default = profile.target(profile.default_target)
        if default is None:  # not reached: a profile's menu has its default target
            raise SelectionError("Please choose a target.", "target")
        return default
    slug = _text(slug, "target")
    target = profile.target(slug)
    if target is None or target.slug is None:
        offered = [t.display_name for t in profile.targets if t.slug]
        if not offered:
            raise SelectionError("This hub has no offload targets to choose from.", "target")
        raise SelectionError(
            f"You cannot run {profile.display_name!r} on {slug[:60]!r}; choose one of: {', '.join(offered)}.",
            "target",
        )
    return target


def _pick_option(option: MenuOption, user_options: Mapping[str, Any]) -> OptionPick:
    unlisted_key = option.key + UNLISTED_SUFFIX
    unlisted = user_options.get(unlisted_key)
    choice = user_options.get(option.key)
    if unlisted not in (None, ""):
        text = _text(unlisted, unlisted_key)
        if option.unlisted is None:
            raise SelectionError(f"{option.display_name} does not accept a value of your own.", unlisted_key)
        if len(text) > MAX_TEXT:
            raise SelectionError(f"{option.display_name} is longer than {MAX_TEXT} characters.", unlisted_key)
        if _UNSAFE_TEXT.search(text) or _has_invisible(text):
            raise SelectionError(
                f"{option.display_name} may not contain braces, spaces, control or invisible characters.",
                unlisted_key,
            )
        regex = option.unlisted.validation_regex
        if regex and not re.fullmatch(regex, text):
            message = option.unlisted.validation_message or f"{text!r} is not an allowed {option.display_name}."
            raise SelectionError(message, unlisted_key)
        if free_text_digest(text) in option.unlisted.refused:
            # The same value as a choice the user's groups do not offer them:
            # free text must not be a way around a choice's allowed_groups.
            # Same words as for any value not offered, and the choice is not named.
            raise SelectionError(f"{option.display_name}: this value is not available to you.", unlisted_key)
        return OptionPick(unlisted=text)
    if choice in (None, ""):
        if option.default is None:
            raise SelectionError(f"Please enter a value for {option.display_name}.", unlisted_key)
        return OptionPick(choice=option.default)
    key = _text(choice, option.key)
    if option.choice(key) is None:
        offered = ", ".join(c.display_name for c in option.choices)
        raise SelectionError(
            f"{key[:60]!r} is not a choice for {option.display_name}"
            + (f"; choose one of: {offered}." if offered else "."),
            option.key,
        )
    return OptionPick(choice=key)


def _parse_memory(value: object) -> int:
    # A bare number means gigabytes, as in the form's number input ("8" == "8G").
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        parse_number(value, "Memory")  # bounded first: str() of a huge int is slow or refused
        value = f"{value}G"
    elif isinstance(value, str) and re.fullmatch(r"\s*\d+(\.\d+)?\s*", value):
        value = value.strip() + "G"
    return parse_memory(value)


def _pick_number(
    bounds: Bounds | None,
    user_options: Mapping[str, Any],
    key: str,
    label: str,
    parse: Callable[[object], float],
    show: Callable[[Any], str],
    target: MenuTarget,
) -> float | None:
    raw = user_options.get(key)
    if bounds is None:
        if raw not in (None, ""):
            raise SelectionError(f"{label} cannot be chosen for this profile.", key)
        return None
    if raw in (None, ""):
        return bounds.default
    try:
        value = parse(raw)
    except QuantityError as e:
        raise SelectionError(f"{label}: {e}." if label not in str(e) else f"{e}.", key) from None
    if bounds.allows(value):
        return value
    # A range's Bounds (no choices) has both min and max.
    limit = cast(float, bounds.max) if bounds.choices is None else max(bounds.choices)
    if value > limit:
        # When the user's or the target's ceiling removed choices, it is *their* limit.
        whose = "your limit" if bounds.cap is not None else "the maximum"
        raise SelectionError(f"{show(value)} is above {whose} of {show(limit)}{_where(target)}.", key)
    if bounds.choices is None:
        raise SelectionError(f"{show(value)} is below the minimum of {show(bounds.min)}{_where(target)}.", key)
    offered = ", ".join(show(c) for c in bounds.choices)
    raise SelectionError(f"{show(value)} is not one of the choices: {offered}.", key)


def _pick_accelerator(target: MenuTarget, user_options: Mapping[str, Any]) -> tuple[str | None, str | None, int]:
    raw = user_options.get("accelerator")
    raw_count = user_options.get("accelerator_count")
    if raw in (None, "", "none"):
        if raw_count not in (None, "", 0, "0"):
            try:
                parse_count(raw_count, "accelerator_count")
            except QuantityError as e:
                raise SelectionError(f"{e}.", "accelerator_count") from None
            raise SelectionError("Choose an accelerator before asking for a number of them.", "accelerator")
        return None, None, 0
    text = _text(raw, "accelerator")
    resource, _, model = text.rpartition(":")
    offer = target.accelerator(resource) if resource else None
    if offer is None or model not in offer.models:
        offered = [f"{a.display_name} {m}" for a in target.accelerators for m in a.models]
        where = _where(target) or " here"
        raise SelectionError(
            f"{text[:60]!r} is not available to you{where}"
            + (f"; choose one of: {', '.join(offered)}." if offered else "; no accelerators are offered to you there."),
            "accelerator",
        )
    if raw_count in (None, ""):
        count = 1
    else:
        try:
            count = parse_count(raw_count, "accelerator_count")
        except QuantityError as e:
            raise SelectionError(f"{e}.", "accelerator_count") from None
    if count < 1:
        raise SelectionError(
            f"Ask for at least one {offer.display_name}, or choose no accelerator.", "accelerator_count"
        )
    if count > offer.max:
        raise SelectionError(
            f"{count} × {offer.display_name} is above your limit of {offer.max}{_where(target)}.", "accelerator_count"
        )
    return resource, model, count


def _pick_storage(target: MenuTarget, user_options: Mapping[str, Any]) -> tuple[str, ...] | None:
    """The offered volumes ticked (a list, or one name); a required volume the target lacks refuses it."""
    raw = user_options.get("storage")
    chosen: tuple[str, ...] | None = None
    if raw is not None:
        names = [raw] if isinstance(raw, str) else raw
        if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
            raise SelectionError("storage must be a list of volume names.", "storage")
        offered = {line.name: line for line in target.storage if line.offered}
        # The form posts an empty marker so that "none ticked" differs from "not asked".
        names = [n for n in names if n != ""]
        for name in names:
            if name not in offered:
                choices = ", ".join(line.display_name for line in offered.values()) or "none"
                raise SelectionError(f"{name[:60]!r} is not a volume you can choose (offered: {choices}).", "storage")
        chosen = tuple(name for name in offered if name in names)
    for line in target.storage:
        wanted = not line.offered or chosen is None or line.name in chosen
        if line.required and wanted and not line.available:
            raise SelectionError(
                f"Your {line.display_name} cannot be mounted{_where(target)}; choose another target.", "target"
            )
    return chosen
