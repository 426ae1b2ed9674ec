"""The package's modules import each other one way, in the open.

Read from the source with ``ast`` (nothing is imported):

* the module-level imports between the package's modules form no cycle
  (a package's ``__init__`` counts: importing ``a.b`` runs ``a/__init__`` first);
* no module imports one of the package's modules inside a function or a class
  (the way to hide an import cycle), except where ``FUNCTION_LEVEL_ALLOWED``
  says why an import stays lazy;
* the backend modules import nothing of the hub edge (they are pure: settings
  model and adapter, plain data in and out).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "offload_spawner"
SOURCE = ROOT / PACKAGE

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

HUB_LIBRARIES = {"jupyterhub", "kubespawner", "tornado", "traitlets", "jinja2", "oauthenticator"}


def modules(source: Path = SOURCE) -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package."""
    found = {}
    for path in sorted(source.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        parts = list(path.relative_to(source.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _package_of(dotted: str, path: Path) -> str:
    return dotted if path.name == "__init__.py" else dotted.rpartition(".")[0]


def _imported(dotted: str, path: Path, node: ast.Import | ast.ImportFrom, known: dict[str, Path]) -> list[str]:
    """The absolute names an import statement loads (the package's modules resolved)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:
        base = _package_of(dotted, path).split(".")
        base = base[: len(base) - (node.level - 1)]
        module = ".".join(base + ([node.module] if node.module else []))
    else:
        module = node.module or ""
    # `from package import module` loads the module too
    return [module] + [f"{module}.{a.name}" for a in node.names if f"{module}.{a.name}" in known]


def _own(name: str, known: dict[str, Path]) -> str | None:
    """The package module a name refers to (the longest known prefix), if any."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in known:
            return candidate
        parts.pop()
    return None


def imports(known: dict[str, Path], function_level: bool) -> list[tuple[str, str, ast.AST, str | None]]:
    """(module, imported name, node, enclosing function) for each import of the package's files.

    Module level includes ``if TYPE_CHECKING:`` blocks: a cycle there is one for
    type checkers and for the lead's folder layout check alike."""
    found = []
    for dotted, path in known.items():
        found.extend(
            _imports_below(ast.parse(path.read_text(), filename=str(path)), None, dotted, path, known, function_level)
        )
    return found


def _imports_below(node, scope, dotted, path, known, function_level) -> list:
    found = []
    for child in ast.iter_child_nodes(node):
        inner = scope
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda):
            inner = getattr(child, "name", "<lambda>")
        if isinstance(child, ast.Import | ast.ImportFrom) and (inner is not None) == function_level:
            found.extend((dotted, name, child, inner) for name in _imported(dotted, path, child, known))
        found.extend(_imports_below(child, inner, dotted, path, known, function_level))
    return found


def function_level_imports(source: Path = SOURCE) -> list[str]:
    known = modules(source)
    return [
        f"{known[module].relative_to(source.parent).as_posix()}:{node.lineno} in {scope}() imports {name}"
        for module, name, node, scope in imports(known, function_level=True)
        if _own(name, known) is not None
        and (known[module].relative_to(source.parent).as_posix(), scope) not in FUNCTION_LEVEL_ALLOWED
    ]


def import_cycle(source: Path = SOURCE) -> list[str] | None:
    """One cycle of module-level imports between the package's modules, or None."""
    known = modules(source)
    graph: dict[str, set[str]] = {m: set() for m in known}
    for module, name, _, _ in imports(known, function_level=False):
        target = _own(name, known)
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


def test_the_backends_import_nothing_of_the_hub():
    known = modules()
    wrong = [
        f"{module} (line {node.lineno}) imports {name}"
        for module, name, node, _ in imports(known, False) + imports(known, True)
        if module.startswith(f"{PACKAGE}.backends") and name.split(".")[0] in HUB_LIBRARIES
    ]
    assert not wrong, "\n".join(wrong)


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
