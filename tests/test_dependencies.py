"""Every third-party module offload_spawner imports comes from a distribution
setup.cfg declares in install_requires (the wheel's own dependencies)."""

from __future__ import annotations

import ast
import configparser
import re
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _imported_top_level_modules() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in (ROOT / "offload_spawner").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top != "offload_spawner":
                    found.setdefault(top, set()).add(path.name)
    return found


def _declared() -> set[str]:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    lines = [line.strip() for line in config["options"]["install_requires"].splitlines() if line.strip()]
    return {re.split(r"[<>=!~\[; ]", line, maxsplit=1)[0].lower().replace("_", "-") for line in lines}


def undeclared(declared: set[str]) -> dict[str, tuple[list[str], list[str]]]:
    """Imported modules no declared distribution provides: module -> (its distributions, our files)."""
    providers = packages_distributions()
    missing = {}
    for module, files in _imported_top_level_modules().items():
        dists = {d.lower().replace("_", "-") for d in providers.get(module, [])}
        if not dists & declared:
            missing[module] = (sorted(dists), sorted(files))
    return missing


def test_every_third_party_import_is_declared():
    assert undeclared(_declared()) == {}, "imported but not in setup.cfg's install_requires"


def test_the_check_sees_an_undeclared_import():
    assert "tornado" in undeclared(_declared() - {"tornado"})
