"""A backend is one module: adding one adds it everywhere, editing nothing else.

The registry (``offload_spawner.backends``) finds the backend modules. The
tests copy the package to a temporary folder, add one module there, and check
in a fresh interpreter that the new backend is in the ``backend`` choice, has
its settings field on ``Target`` (validated by its own model), is in the
``offload_targets`` help text, the JSON schema and the reference, and that the
pods planned for it carry what its adapter writes.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from offload_spawner.backends import ADAPTERS, BackendAdapter, backend_choice_help, settings_adapters
from offload_spawner.pipeline.catalog import Backend, Target
from offload_spawner.pipeline.catalog_help import catalog_json_schema

ROOT = Path(__file__).resolve().parents[1]

#: the whole backend: what "one new module" means
EXAMPLE_BACKEND = '''
"""An example batch plugin, for tests/test_backend_registry.py."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ..pipeline.catalog_types import BatchWord, CatalogModel
from .base import AcceleratorChoice, BackendAdapter, TargetView


class ExampleBatchSettings(CatalogModel):
    """What the example batch plugin reads."""

    queue: BatchWord = Field(description="The queue jobs go to (example-job.vk.io/queue).")


class ExampleBatchAdapter(BackendAdapter):
    name = "example-batch"
    summary = "an example batch plugin (settings: `example_batch`)"
    settings_field = "example_batch"
    settings_model = ExampleBatchSettings
    settings_required = True
    settings_help = "Example batch plugin settings (backend `example-batch` only)."
    owned_annotation_prefixes = ("example-job.vk.io/",)

    def plugin_annotations(self, target: TargetView, selection: AcceleratorChoice) -> dict[str, str]:
        settings = target.backend_settings
        assert isinstance(settings, ExampleBatchSettings)
        return {"example-job.vk.io/queue": settings.queue}

    def tolerations(self, target: TargetView) -> list[dict[str, Any]]:
        return [{"key": "example.org/batch", "operator": "Exists", "effect": "NoSchedule"}]


BACKEND = ExampleBatchAdapter()
'''

#: run in the copy: prints what the rest of the package made of the new module
PROBE = """
import json, sys
sys.path.insert(0, sys.argv[1])  # docs/, for gen_reference's renderers
import offload_spawner
from offload_spawner.pipeline.catalog import Backend, CatalogError, build_catalog
from offload_spawner.pipeline.catalog_help import catalog_json_schema
from offload_spawner.pipeline.menu import build_menu
from offload_spawner.pipeline.plan import build_plan
from offload_spawner.pipeline.selection import select
from offload_spawner.hub.spawner import OffloadSpawner
import gen_reference

target = {"display_name": "Example", "backend": "example-batch", "node": "vk-example",
          "example_batch": {"queue": "short"}}
catalog = build_catalog(profile_list=[{"display_name": "P"}], offload_targets={"ex": target})
plan = build_plan(catalog, select(build_menu(catalog, []), {"target": "ex"}))


def problems(**changes):
    try:
        build_catalog(offload_targets={"ex": {**target, **changes}})
    except CatalogError as e:
        return e.problems
    return []


schema = catalog_json_schema()
print(json.dumps({
    "package": offload_spawner.__file__,
    "choice": [b.value for b in Backend],
    "annotations": plan.annotations,
    "tolerations": list(plan.tolerations),
    "no_settings": problems(example_batch=None),
    "bad_queue": problems(example_batch={"queue": "a b"}),
    "settings_on_slurm": problems(backend="slurm"),
    "raw_owned_annotation": problems(annotations={"example-job.vk.io/queue": "long"}),
    "schema_choice": schema["$defs"]["Backend"]["enum"],
    "schema_field": schema["$defs"]["Target"]["properties"]["example_batch"],
    "schema_settings": schema["$defs"]["ExampleBatchSettings"]["properties"],
    "help": OffloadSpawner.class_traits()["offload_targets"].help,
    "reference": "\\n".join(gen_reference.render_models(schema)),
}))
"""


def _copy_package(tmp_path: Path) -> Path:
    """This checkout's package, copied: the test edits the copy only."""
    shutil.copytree(
        ROOT / "offload_spawner", tmp_path / "offload_spawner", ignore=shutil.ignore_patterns("__pycache__")
    )
    return tmp_path / "offload_spawner"


def _probe(tmp_path: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(ROOT / "docs")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def test_a_new_backend_module_is_the_whole_backend(tmp_path):
    package = _copy_package(tmp_path)
    (package / "backends" / "example_batch.py").write_text(textwrap.dedent(EXAMPLE_BACKEND))
    seen = _probe(tmp_path)
    assert seen["package"] == str(package / "__init__.py")  # the copy, not this checkout
    # the backend choice, in the registry's order (kubernetes first, generic last)
    assert "example-batch" in seen["choice"]
    assert seen["choice"][0] == "kubernetes" and seen["choice"][-1] == "generic"
    assert seen["schema_choice"] == seen["choice"]
    # its settings: a Target field checked by its own model, only for its backend
    assert any("needs 'example_batch.queue'" in p for p in seen["no_settings"]), seen["no_settings"]
    assert any("example_batch.queue" in p for p in seen["bad_queue"]), seen["bad_queue"]
    assert any("'example_batch' settings need backend 'example-batch'" in p for p in seen["settings_on_slurm"])
    assert any("written from the typed settings" in p for p in seen["raw_owned_annotation"])
    # the plan carries what the adapter writes
    assert seen["annotations"]["example-job.vk.io/queue"] == "short"
    assert {"key": "example.org/batch", "operator": "Exists", "effect": "NoSchedule"} in seen["tolerations"]
    # the help text, the schema and the reference
    assert "example-batch" in seen["help"] and "``example_batch``" in seen["help"]
    assert seen["schema_field"]["description"] == "Example batch plugin settings (backend `example-batch` only)."
    assert seen["schema_settings"]["queue"]["description"].startswith("The queue jobs go to")
    assert "### ExampleBatchSettings" in seen["reference"]
    assert "| `example_batch` | [ExampleBatchSettings](#examplebatchsettings)" in seen["reference"]


def test_a_module_without_backend_stops_the_import(tmp_path):
    package = _copy_package(tmp_path)
    (package / "backends" / "half_done.py").write_text("NAME = 'half-done'\n")
    result = subprocess.run(
        [sys.executable, "-c", "import offload_spawner.pipeline.catalog"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert "offload_spawner.backends.half_done defines no BACKEND" in result.stderr


# --- the registry in this checkout ---------------------------------------------------------


def test_every_backend_module_is_registered():
    modules = {p.stem for p in (ROOT / "offload_spawner" / "backends").glob("*.py")} - {"__init__", "base"}
    assert {type(a).__module__.rpartition(".")[2] for a in ADAPTERS.values()} == modules
    assert list(ADAPTERS) == [b.value for b in Backend]
    assert all(isinstance(a, BackendAdapter) for a in ADAPTERS.values())


def test_the_choice_help_schema_and_target_come_from_the_registry():
    schema = catalog_json_schema()
    assert schema["$defs"]["Backend"]["enum"] == list(ADAPTERS)
    target_fields = schema["$defs"]["Target"]["properties"]
    for adapter in settings_adapters():
        assert adapter.settings_field in Target.model_fields
        assert target_fields[adapter.settings_field]["description"] == adapter.settings_help
        assert adapter.settings_model.__name__ in schema["$defs"]
    for name, adapter in ADAPTERS.items():
        assert f"`{name}`: {adapter.summary}" in backend_choice_help()


@pytest.mark.parametrize("name", list(ADAPTERS))
def test_each_backend_says_what_it_is(name):
    adapter = ADAPTERS[name]
    assert adapter.summary
    if adapter.settings_field is not None:
        assert adapter.settings_model is not None and adapter.settings_help
        for field, info in adapter.settings_model.model_fields.items():
            assert info.description, f"{adapter.settings_model.__name__}.{field} needs a description"


def _code_names(path: Path) -> set[str]:
    """Names, attributes and string constants a module's code uses (not its
    docstrings or comments)."""
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
    }
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            names.add(node.id)
        elif isinstance(node, ast.Attribute):
            names.add(node.attr)
        elif isinstance(node, ast.alias):
            names.add(node.asname or node.name.rpartition(".")[2])
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            names.add(node.value)
    return names


@pytest.mark.parametrize("name", [n for n, a in ADAPTERS.items() if a.virtual])
def test_nothing_outside_its_module_names_a_backend(name):
    # The backend's value, settings field and settings model appear in the code
    # of no other module of the package: the module is the whole backend
    # (``kubernetes``, this cluster, is the default and stays named).
    adapter = ADAPTERS[name]
    own = Path(sys.modules[type(adapter).__module__].__file__)
    words = {name, adapter.settings_field, getattr(adapter.settings_model, "__name__", None)} - {None}
    found = {
        f"{path.relative_to(ROOT)}: {sorted(words & names)}"
        for path in sorted((ROOT / "offload_spawner").rglob("*.py"))
        if path != own and (names := _code_names(path)) & words
    }
    assert not found
