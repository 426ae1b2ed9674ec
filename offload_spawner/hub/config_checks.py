"""Checks of admin configuration that need more than the catalog's own models.

* (Raw annotations may not set those typed settings own: the catalog checks
  that itself, with :mod:`offload_spawner.pipeline.owned_annotations`.)
* ``kubespawner_override`` keys must be KubeSpawner traits, and their values
  must pass the trait's own validation, so a typo (``imgae``) or a wrong type
  (``cpu_limit: "lots"``) stops the hub at start (or ``offload-spawner check``)
  instead of being ignored or raising at a user's spawn.

Problems are ``path: message`` lines, like :class:`~offload_spawner.pipeline.catalog.CatalogError`'s.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from traitlets import HasTraits

from ..pipeline.owned_annotations import owned_annotation, owned_annotation_message
from ..pipeline.unlisted_value import fill_value

# --- kubespawner_override ---------------------------------------------------------


def _override_sites(catalog: Any) -> Iterator[tuple[str, Mapping[str, Any], bool]]:
    """(key path, override dict, is_unlisted_template) for every override in the catalog."""
    for index, profile in enumerate(catalog.profile_list):
        base = f"profile_list[{index}]"
        yield f"{base}.kubespawner_override", profile.kubespawner_override, False
        for key, option in profile.profile_options.items():
            for choice_key, choice in option.choices.items():
                yield (
                    f"{base}.profile_options.{key}.choices.{choice_key}.kubespawner_override",
                    choice.kubespawner_override,
                    False,
                )
            yield (
                f"{base}.profile_options.{key}.unlisted_choice.kubespawner_override",
                option.unlisted_choice.kubespawner_override,
                True,
            )


def _sample(template: Any) -> Any:
    """An unlisted template as it is after filling in a typical free text."""
    return fill_value(template, "x")


def override_problems(catalog: Any, spawner_class: type[HasTraits] | None = None) -> list[str]:
    """Unknown keys and values a KubeSpawner trait refuses, in every kubespawner_override."""
    sites = [site for site in _override_sites(catalog) if site[1]]
    if not sites:
        return []  # nothing to check: `offload-spawner check` then skips KubeSpawner's import
    if spawner_class is None:
        from kubespawner import KubeSpawner

        spawner_class = KubeSpawner
    traits = spawner_class.class_traits()
    problems = []
    for path, override, is_template in sites:
        for key, value in override.items():
            where = f"{path}.{key}"
            trait = traits.get(key) if isinstance(key, str) else None
            if trait is None:
                close = difflib.get_close_matches(str(key), list(traits), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                problems.append(f"{where}: not a KubeSpawner setting{hint}")
                continue
            if callable(value):
                continue  # called at spawn, with the spawner (KubeSpawner's semantics)
            if key == "extra_annotations" and isinstance(value, Mapping):
                for annotation in value:
                    if isinstance(annotation, str) and owned_annotation(annotation):
                        problems.append(f"{where}.{annotation}: {owned_annotation_message(annotation)}")
            problem = _trait_problem(trait, _sample(value) if is_template else value)
            if problem:
                problems.append(f"{where}: {problem}")
    return problems


def _trait_problem(trait: Any, value: Any) -> str | None:
    """What the trait says about ``value`` (None: it accepts it), without a spawner
    instance: a copy of the trait on a bare HasTraits class validates it. Checks
    in the spawner's own ``@validate`` methods are not run here."""
    import copy

    from traitlets import HasTraits, TraitError

    probe = type("Probe", (HasTraits,), {"setting": copy.copy(trait)})()
    try:
        probe.setting = value
    except TraitError as e:
        text = str(e).split("\n")[0]
        text = text.replace("The 'setting' trait of a Probe instance", "the setting")
        return text[:300]
    except (TypeError, ValueError) as e:
        return f"{type(e).__name__}: {e}"[:300]
    return None
