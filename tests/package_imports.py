"""What the package's modules import, read from the source with ``ast``
(nothing is imported): shared by tests/test_imports.py (no cycle, none hidden
in a function) and tests/test_layout.py (the folders' import directions)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "offload_spawner"
SOURCE = ROOT / PACKAGE
#: what the pure parts may not import
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


def package_of(dotted: str, path: Path) -> str:
    return dotted if path.name == "__init__.py" else dotted.rpartition(".")[0]


def imported(dotted: str, path: Path, node: ast.Import | ast.ImportFrom, known: dict[str, Path]) -> list[str]:
    """The absolute names an import statement loads (the package's modules resolved)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:
        base = package_of(dotted, path).split(".")
        base = base[: len(base) - (node.level - 1)]
        module = ".".join(base + ([node.module] if node.module else []))
    else:
        module = node.module or ""
    # `from package import module` loads the module too
    return [module] + [f"{module}.{a.name}" for a in node.names if f"{module}.{a.name}" in known]


def own(name: str, known: dict[str, Path]) -> str | None:
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
    type checkers and for the folder layout check (tests/test_layout.py) alike."""
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
            found.extend((dotted, name, child, inner) for name in imported(dotted, path, child, known))
        found.extend(_imports_below(child, inner, dotted, path, known, function_level))
    return found
