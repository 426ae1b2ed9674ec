"""The backends: one module each, found here.

A backend is one module of this package (like OAuthenticator's one module per
provider) that defines ``BACKEND``, an instance of a
:class:`~offload_spawner.backends.base.BackendAdapter` subclass: the plugin's
settings model, its annotations, tolerations and request format, and its help
line. This registry imports every module of the package (``base`` and names
starting with ``_`` aside) and turns them into what the rest reads: the
``backend`` choice and the ``Target`` settings fields of the catalog
(:mod:`offload_spawner.pipeline.catalog`), the ``backend`` help text of
``OffloadSpawner.offload_targets``, the reference (docs/gen_reference.py) and
the JSON schema. Adding a backend is adding a module (and its test module).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable
from enum import Enum

from .base import BackendAdapter

#: modules of this package that are not backends
_NOT_BACKENDS = frozenset({"base"})


class BackendRegistryError(ImportError):
    """A backend module is malformed (no ``BACKEND``, a name or field taken twice)."""


def _discover(package: str, path: Iterable[str]) -> dict[str, BackendAdapter]:
    found: dict[str, BackendAdapter] = {}
    fields: dict[str, str] = {}
    for module_info in sorted(pkgutil.iter_modules(list(path)), key=lambda m: m.name):
        if module_info.name.startswith("_") or module_info.name in _NOT_BACKENDS:
            continue
        # By name, not by import statements: a new module needs no line anywhere else.
        module = importlib.import_module(f"{package}.{module_info.name}")
        adapter = getattr(module, "BACKEND", None)
        if not isinstance(adapter, BackendAdapter):
            raise BackendRegistryError(f"{module.__name__} defines no BACKEND (a BackendAdapter instance)")
        if adapter.name in found:
            raise BackendRegistryError(f"{module.__name__}: backend {adapter.name!r} is defined twice")
        field = adapter.settings_field
        if field is not None:
            if adapter.settings_model is None:
                raise BackendRegistryError(f"{module.__name__}: settings_field {field!r} needs a settings_model")
            if field in fields:
                raise BackendRegistryError(f"{module.__name__}: settings field {field!r} is also {fields[field]!r}'s")
            fields[field] = adapter.name
        found[adapter.name] = adapter
    ordered = sorted(found.values(), key=lambda a: (a.order, a.name))
    return {adapter.name: adapter for adapter in ordered}


#: backend name -> adapter, in the order of the ``backend`` choice (``kubernetes`` first)
ADAPTERS: dict[str, BackendAdapter] = _discover(__name__, __path__)


def adapter_for(backend: str | Enum) -> BackendAdapter:
    """The adapter of a backend name or of a member of the catalog's ``Backend``
    (a ``str`` enum whose values are these names)."""
    return ADAPTERS[str(backend.value) if isinstance(backend, Enum) else backend]


def settings_adapters() -> list[BackendAdapter]:
    """The backends that take settings, each with its target field."""
    return [adapter for adapter in ADAPTERS.values() if adapter.settings_field is not None]


def backend_choice_help() -> str:
    """The ``backend`` values and what each one is, "; "-separated (help text, reference)."""
    return "; ".join(f"`{name}`: {adapter.summary}" for name, adapter in ADAPTERS.items())


__all__ = [
    "ADAPTERS",
    "BackendAdapter",
    "BackendRegistryError",
    "adapter_for",
    "backend_choice_help",
    "settings_adapters",
]
