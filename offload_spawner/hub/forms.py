"""The spawn form: HTML out of a :class:`Menu`, user_options out of form data.

Field names follow KubeSpawner: ``profile`` and
``profile-option-{profile}--{key}`` (``...--image--unlisted-choice`` for free
text).  The template is rendered with autoescaping and receives only the
menu, never the catalog, so no override, env, selector or annotation can reach
the browser.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping
from importlib.resources import files
from typing import Any, cast

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, select_autoescape

from ..availability.auto_target import AUTO, is_auto
from ..availability.availability import TargetAvailability
from ..pipeline.browser_pattern import html_pattern, literal_prefix
from ..pipeline.menu import Bounds, Menu, MenuProfile, MenuTarget
from ..pipeline.selection import UNLISTED_SUFFIX, SelectionError, select
from ..pipeline.units import format_cores, format_memory

FIELD_PREFIX = "profile-option-"
#: form value of an option's select meaning "use the free-text field"
OTHER = "__other__"
#: fields JupyterHub itself adds to the form
HUB_FIELDS = frozenset({"_xsrf"})


def field_name(profile: str, key: str) -> str:
    return f"{FIELD_PREFIX}{profile}--{key}"


def user_options_from_form(formdata: Mapping[str, list[str]]) -> dict[str, Any]:
    """Form data (dict of lists of strings) -> user_options (KubeSpawner's field names).

    Fields of profiles other than the chosen one are dropped (the form holds
    every profile's fields); any other unknown field is refused.
    """
    unknown = sorted(k for k in formdata if k not in HUB_FIELDS and k != "profile" and not k.startswith(FIELD_PREFIX))
    if unknown:
        raise SelectionError(f"Unknown form field {unknown[0][:60]!r}.", unknown[0][:60])
    values = formdata.get("profile") or [""]
    profile = values[0]
    if not profile:
        return {}
    options: dict[str, Any] = {"profile": profile}
    prefix = field_name(profile, "")
    for key, value in formdata.items():
        if key.startswith(prefix):
            options[key[len(prefix) :]] = value[0] if len(value) == 1 else value
    # The select decides between a listed choice and the free-text field.
    for key in [k for k in options if k.endswith(UNLISTED_SUFFIX)]:
        base = key[: -len(UNLISTED_SUFFIX)]
        if options.get(base) == OTHER:
            del options[base]
            if not options[key]:
                # "Other..." was picked: an empty text must not fall back to the default choice.
                raise SelectionError("Enter a value of your own, or pick one from the list.", key)
        elif options.get(base):
            del options[key]
    if options.get("accelerator") == "none":
        options.pop("accelerator")
        options.pop("accelerator_count", None)
    return options


def options_from_link(query: Mapping[str, list[Any]]) -> dict[str, str]:
    """What a spawn link (``GET /hub/spawn/<user>?...``) asks for, as user_options
    to pre-fill the form with; never free text.

    Takes the form's field names (``profile-option-<profile>--cores``) or plain
    user_options keys (``cores``, as JupyterHub passes ``opt-cores``). Free
    text (``...--unlisted-choice``, the "Other..." choice) is dropped: anyone
    can send a user a link, and a link's text would reach the user's server.
    """
    values = {k: v[-1] for k, v in query.items() if isinstance(v, list) and v and isinstance(v[-1], str)}
    profile = values.get("profile", "")
    prefix = field_name(profile, "") if profile else None
    out: dict[str, str] = {}
    for key, value in values.items():
        if prefix and key.startswith(prefix):
            key = key[len(prefix) :]
        elif key.startswith(FIELD_PREFIX) or key in HUB_FIELDS:
            continue
        if key.endswith(UNLISTED_SUFFIX) or value == OTHER or not value:
            continue
        out[key] = value
    return out


def _environment(template_paths: Iterable[str]) -> Environment:
    # One environment per set of paths: Jinja keeps compiled templates in it
    # (and re-reads a template whose file changed), so a form render does not
    # recompile the template.
    return _cached_environment(tuple(template_paths))


@functools.lru_cache(maxsize=8)
def _cached_environment(template_paths: tuple[str, ...]) -> Environment:
    loader = ChoiceLoader(
        [FileSystemLoader(list(template_paths)), FileSystemLoader(str(files("offload_spawner.templates")))]
    )
    env = Environment(loader=loader, autoescape=select_autoescape(default=True, default_for_string=True))
    env.policies["json.dumps_kwargs"] = {"sort_keys": False}
    return env


def _lowest(bounds: Bounds) -> float:
    # A range's Bounds has min and max; a list's has choices.
    return cast(float, bounds.min) if bounds.choices is None else min(bounds.choices)


def _highest(bounds: Bounds) -> float:
    return cast(float, bounds.max) if bounds.choices is None else max(bounds.choices)


def _union(bounds: list[Bounds]) -> Bounds | None:
    """What a form without JavaScript offers: every target's values (the server checks)."""
    if not bounds:
        return None
    if all(b.choices is not None for b in bounds):
        choices = tuple(sorted({c for b in bounds for c in b.choices or ()}))
        return Bounds(choices=choices, min=None, max=None, default=bounds[0].default)
    lows = [_lowest(b) for b in bounds]
    highs = [_highest(b) for b in bounds]
    return Bounds(choices=None, min=min(lows), max=max(highs), default=bounds[0].default)


def _profile_view(
    profile: MenuProfile, availability: Mapping[str, TargetAvailability], auto_label: str | None = None
) -> dict[str, Any]:
    """Template data for one profile: only what the user may choose (and, with
    ``auto_label``, the automatic choice among its targets)."""
    targets = [t for t in profile.targets]
    cores = _union([t.cores for t in targets if t.cores is not None])
    memory = _union([t.memory for t in targets if t.memory is not None])
    accelerators: dict[str, dict[str, Any]] = {}
    for target in targets:
        for acc in target.accelerators:
            entry = accelerators.setdefault(acc.resource, {"display_name": acc.display_name, "models": [], "max": 0})
            entry["models"] += [m for m in acc.models if m not in entry["models"]]
            entry["max"] = max(entry["max"], acc.max)
    per_target = {
        t.slug or "": {
            "offload": t.offload,
            # vars(), not dataclasses.asdict: Bounds holds only numbers and a tuple,
            # and asdict's deep copy was a quarter of a large form's render.
            "cores": dict(vars(t.cores)) if t.cores else None,
            "memory": dict(vars(t.memory)) if t.memory else None,
            "accelerators": {a.resource: {"models": list(a.models), "max": a.max} for a in t.accelerators},
            "availability": availability[t.slug].to_json() if t.slug is not None and t.slug in availability else None,
        }
        for t in targets
    }
    choices = [t for t in targets if t.slug is not None]
    auto = auto_label if len(choices) > 1 else None
    if auto:
        # Any of the targets may be chosen: the form offers what any of them allows.
        per_target[AUTO] = {
            "offload": "auto",
            "cores": dict(vars(cores)) if cores else None,
            "memory": dict(vars(memory)) if memory else None,
            "accelerators": {r: {"models": a["models"], "max": a["max"]} for r, a in accelerators.items()},
            "availability": None,
        }
    down = {
        t.slug
        for t in targets
        if t.slug is not None and t.slug in availability and availability[t.slug].status == "down"
    }
    default_target = profile.default_target
    if default_target in down:
        default_target = next((t.slug for t in targets if t.slug not in down), default_target)
    return {
        "auto_label": auto,
        "limits_text": {t.slug: _limits_text(t) for t in targets},
        "max_count": max((entry["max"] for entry in accelerators.values()), default=0),
        "default_target": default_target,
        "down": down,
        "unavailable_models": _unavailable_models(profile, availability),
        "profile": profile,
        "targets": [t for t in targets if t.slug is not None],
        "cores": cores,
        "memory": memory,
        "accelerators": accelerators,
        "per_target": per_target,
    }


def _limits_text(target: MenuTarget) -> str:
    """ "up to 8 cores, 32 GB memory, 2 × NVIDIA GPU": the user's limits on a target
    (built here, not in the template: per profile and target, Jinja's filters
    were a third of a large form's render)."""
    parts = []
    if target.cores:
        parts.append("up to " + format_cores(_highest(target.cores)))
    if target.memory:
        # Memory bounds hold the catalog's ints of bytes.
        parts.append(format_memory(int(_highest(target.memory))) + " memory")
    parts += [f"{a.max} × {a.display_name}" for a in target.accelerators]
    return ", ".join(parts)


def _unavailable_models(profile: MenuProfile, availability: Mapping[str, TargetAvailability]) -> dict[str, str]:
    """``resource:model`` -> why no target of this profile can provide one now.

    A model stays enabled while any target offering it has one free or is of
    unknown availability (the server checks again at spawn).
    """
    out: dict[str, str] = {}
    offering: dict[str, list[str | None]] = {}
    for target in profile.targets:
        for acc in target.accelerators:
            for model in acc.models:
                offering.setdefault(f"{acc.resource}:{model}", []).append(target.slug)
    for key, slugs in offering.items():
        # An in-cluster target (no slug) has no availability: unknown.
        states = [availability.get(slug) if slug is not None else None for slug in slugs]
        if not states or any(a is None or a.status == "unknown" for a in states):
            continue
        resource, _, model = key.rpartition(":")
        counts = [a.model(resource, model) for a in states if a is not None and a.status == "up"]
        if any(m is not None and m.available > 0 for m in counts):
            continue
        totals = sum(m.total for m in counts if m is not None)
        out[key] = f"all {totals} in use" if totals else "none available now"
    return out


def render_form(
    menu: Menu,
    user_options: Mapping[str, Any] | None = None,
    error: SelectionError | None = None,
    template_paths: Iterable[str] = (),
    availability: Mapping[str, TargetAvailability] | None = None,
    notice: str | None = None,
    auto_label: str | None = None,
) -> str:
    """The spawn form HTML for one user.

    ``availability`` (per target slug, from :func:`offload_spawner.availability.availability.menu_availability`)
    fills the availability lines and disables what cannot start now; None: unknown.

    ``user_options`` pre-selects choices: the saved options of the last spawn,
    or what was just posted when ``error`` refused it.  Saved options that no
    longer validate (JupyterHub also stores options the REST API refused)
    fall back to the defaults, with a notice; ``notice`` is shown as given.

    ``auto_label``: offer the automatic target choice under this name (the
    hub's ``offload_auto_target``), in profiles with more than one target.
    """
    current: dict[str, Any] = {}
    if user_options and isinstance(user_options, Mapping):
        if error is not None or (auto_label and is_auto(user_options)):
            current = dict(user_options)  # "auto" is checked, and a target chosen, at spawn
        else:
            try:
                current = select(menu, user_options).to_user_options()
            except SelectionError as e:
                notice = f"Your last choices are no longer available ({e.message}); the defaults are selected."
            except Exception:  # noqa: BLE001 - stored options must never make the spawn page fail
                notice = "Your last choices are no longer available; the defaults are selected."
    if not current.get("profile") and menu.default_profile:
        current["profile"] = menu.default_profile
    views = [_profile_view(p, availability or {}, auto_label) for p in menu.profiles]
    template = _environment(template_paths).get_template("form.html")
    return template.render(
        menu=menu,
        profiles=views,
        availability=availability or {},
        current={k: str(v) for k, v in current.items() if isinstance(v, (str, int, float))},
        error=error,
        notice=notice,
        field_name=field_name,
        other=OTHER,
        unlisted_suffix=UNLISTED_SUFFIX,
        show_cores=format_cores,
        show_memory=format_memory,
        html_pattern=html_pattern,
        literal_prefix=literal_prefix,
        bounds_json=lambda view: json.dumps(view["per_target"]),
    )
