"""The package's modules import each other one way, in the open.

Read from the source with ``ast`` (nothing is imported):

* the module-level imports between the package's modules form no cycle
  (a package's ``__init__`` counts: importing ``a.b`` runs ``a/__init__`` first);
* no module imports one of the package's modules inside a function or a class
  (the way to hide an import cycle), except where ``FUNCTION_LEVEL_ALLOWED``
  says why an import stays lazy;
(that the pure parts, the pipeline and the backends, import nothing of the hub
edge is tests/test_layout.py's check).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from package_imports import PACKAGE, ROOT, SOURCE, imports, modules, own

#: (file, function) where a function-level import of the package is allowed, and why
FUNCTION_LEVEL_ALLOWED = {
    # PEP 562 lazy attribute: `offload_spawner.OffloadSpawner` without making
    # every `import offload_spawner.<pure module>` load KubeSpawner and JupyterHub.
    ("offload_spawner/__init__.py", "__getattr__"),
    # `offload-spawner check` reads the spawner's settings from a cache and so
    # starts without KubeSpawner and JupyterHub (seconds of imports, measured
    # by benchmarks/); the class is imported when the cache is stale and for
    # `render` and `form`. Nothing imports cli, so this hides no cycle.
    ("offload_spawner/hub/cli.py", "offload_spawner_class"),
}


def function_level_imports(source: Path = SOURCE) -> list[str]:
    known = modules(source)
    return [
        f"{known[module].relative_to(source.parent).as_posix()}:{node.lineno} in {scope}() imports {name}"
        for module, name, node, scope in imports(known, function_level=True)
        if own(name, known) is not None
        and (known[module].relative_to(source.parent).as_posix(), scope) not in FUNCTION_LEVEL_ALLOWED
    ]


def import_cycle(source: Path = SOURCE) -> list[str] | None:
    """One cycle of module-level imports between the package's modules, or None."""
    known = modules(source)
    graph: dict[str, set[str]] = {m: set() for m in known}
    for module, name, _, _ in imports(known, function_level=False):
        target = own(name, known)
        if target is not None and target != module:
            graph[module].add(target)
            # importing a.b.c runs a/__init__ and a/b/__init__ first, unless the
            # importing module is inside that package (then it already runs)
            parts = target.split(".")
            parents = (".".join(parts[:i]) for i in range(1, len(parts)))
            graph[module].update(p for p in parents if not (module == p or module.startswith(p + ".")))
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for succ in sorted(graph[node]):
            if state.get(succ) == 1:
                return [*stack[stack.index(succ) :], succ]
            if succ not in state:
                found = visit(succ)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_module_imports_form_no_cycle():
    cycle = import_cycle()
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_no_function_level_import_of_the_package():
    hidden = function_level_imports()
    assert not hidden, "import these at the top of the module; if that makes a cycle, break it:\n" + "\n".join(hidden)


# --- the checks find what they look for -------------------------------------------------


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    source = tmp_path / PACKAGE
    for name, text in {"__init__.py": "", **files}.items():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_text(text)
    return source


def test_a_cycle_hidden_behind_a_function_level_import_is_found(tmp_path):
    # the shape the package had (flat, before its folders): admission -> startup ->
    # handlers -> spawner -> admission, closed by imports inside functions
    source = _package(
        tmp_path,
        {
            "admission.py": "def f():\n    from .startup import g\n",
            "startup.py": "from .handlers import h\n",
            "handlers.py": "def h():\n    from .spawner import S\n",
            "spawner.py": "from .admission import f\n",
        },
    )
    assert sorted(function_level_imports(source)) == [
        "offload_spawner/admission.py:2 in f() imports offload_spawner.startup",
        "offload_spawner/handlers.py:2 in h() imports offload_spawner.spawner",
    ]
    assert import_cycle(source) is None  # hidden: that is why the function-level rule exists
    # lifted to the top, the cycle shows
    (source / "admission.py").write_text("from .startup import g\n")
    (source / "handlers.py").write_text("from .spawner import S\n")
    assert import_cycle(source) == [
        "offload_spawner.admission",
        "offload_spawner.startup",
        "offload_spawner.handlers",
        "offload_spawner.spawner",
        "offload_spawner.admission",
    ]


def test_a_cycle_through_a_package_init_is_found(tmp_path):
    source = _package(
        tmp_path,
        {
            "catalog.py": "from .backends import REGISTRY\n",
            "backends/__init__.py": "from .slurm import SlurmAdapter\n",
            "backends/slurm.py": (
                "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..catalog import Target\n"
            ),
        },
    )
    assert import_cycle(source) is not None


@pytest.mark.parametrize(
    "module", ["offload_spawner.hub.spawner", "offload_spawner.entrypoint", "offload_spawner.hub.cli"]
)
def test_the_modules_import_on_their_own(module):
    # a fresh interpreter: no earlier import of the package hides an order problem
    subprocess.run([sys.executable, "-c", f"import {module}"], cwd=ROOT, check=True)
