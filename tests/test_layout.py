"""The package's folders follow the design, and its imports point one way.

Read from the source with ``ast`` (nothing is imported):

* each part of ``offload_spawner`` (a subpackage or a root module) imports only
  the parts ``MAY_IMPORT`` lists for it: the pure pipeline nothing of the hub
  edge, the hub edge whatever it wires together;
* the pure pipeline and the backends import no JupyterHub, KubeSpawner, tornado,
  traitlets or jinja2 (Kubernetes model classes are plain data and allowed);
* (that the imports form no cycle and hide none in a function is
  tests/test_imports.py's check);
* every subpackage says what it holds (a docstring) and is in setup.cfg's
  ``packages``.
"""

from __future__ import annotations

import ast
import configparser

from package_imports import HUB_LIBRARIES, ROOT, SOURCE, imports, modules, own

#: which other parts each part may import. A part is a subpackage of
#: offload_spawner or a module at its root. A new part needs a line here.
MAY_IMPORT: dict[str, set[str]] = {
    "_version": set(),
    # the mixins' base class (a typing device) and the hub's metrics, which the
    # spawner's parts in every folder note
    "spawner_base": set(),
    "metrics": {"pipeline", "availability", "spawner_base"},
    "spawn_errors": {"metrics"},
    "pipeline": {"backends"},
    "backends": {"pipeline"},
    "identity": {"pipeline", "backends", "spawn_errors", "spawner_base", "metrics"},
    "availability": {"pipeline", "backends", "spawn_errors", "spawner_base", "metrics"},
    "remote": {"pipeline", "backends", "spawn_errors", "spawner_base", "metrics"},
    "dask": {"pipeline", "backends", "identity", "spawn_errors", "spawner_base"},
    "hub": {
        "pipeline",
        "backends",
        "identity",
        "availability",
        "remote",
        "dask",
        "spawn_errors",
        "spawner_base",
        "metrics",
    },
    "entrypoint": {"hub"},
    "__init__": {"_version", "entrypoint"},
}

#: parts that must stay pure: plain data in and out, nothing of the hub edge
PURE = {"pipeline", "backends"}


MODULES = modules()


def part_of(dotted: str) -> str:
    parts = dotted.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_part_has_an_import_rule():
    parts = {part_of(m) for m in MODULES}
    assert parts - set(MAY_IMPORT) == set(), "add a MAY_IMPORT rule for these parts of the package"


def test_imports_point_the_declared_way():
    wrong = []
    for module, name, node, _ in imports(MODULES, False) + imports(MODULES, True):
        target = own(name, MODULES)
        if target is None:
            continue
        source_part, target_part = part_of(module), part_of(target)
        if target_part != source_part and target_part not in MAY_IMPORT.get(source_part, set()):
            wrong.append(f"{module} (line {node.lineno}) imports {target}: {source_part} may not import {target_part}")
    assert not wrong, "\n".join(wrong)


def test_the_pure_parts_import_nothing_of_the_hub():
    wrong = []
    for module, name, node, _ in imports(MODULES, False) + imports(MODULES, True):
        if part_of(module) in PURE and name.split(".")[0] in HUB_LIBRARIES:
            wrong.append(f"{module} (line {node.lineno}) imports {name}")
        if (
            part_of(module) in PURE
            and name.startswith("kubernetes_asyncio")
            and not name.startswith("kubernetes_asyncio.client.models")
        ):
            wrong.append(f"{module} (line {node.lineno}) imports {name}")
    assert not wrong, "\n".join(wrong)


def test_every_subpackage_says_what_it_holds_and_is_installed():
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    listed = set(config["options"]["packages"].split())
    for init in sorted(SOURCE.rglob("__init__.py")):
        if "__pycache__" in init.parts:
            continue
        dotted = ".".join(init.parent.relative_to(ROOT).parts)
        assert ast.get_docstring(ast.parse(init.read_text())), f"{init.relative_to(ROOT)} needs a docstring"
        assert dotted in listed, f"add {dotted} to setup.cfg's packages"


def test_the_public_paths_stay():
    import importlib

    import offload_spawner
    from offload_spawner.hub.spawner import OffloadSpawner

    assert offload_spawner.OffloadSpawner is OffloadSpawner
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    entry_points = config["options.entry_points"]
    assert "offload = offload_spawner.entrypoint:OffloadSpawner" in entry_points["jupyterhub.spawners"]
    for group in entry_points:
        for line in entry_points[group].split("\n"):
            if "=" in line:
                module, _, attribute = line.partition("=")[2].strip().partition(":")
                assert getattr(importlib.import_module(module), attribute), line
