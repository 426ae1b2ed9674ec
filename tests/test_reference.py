"""docs/reference.md is generated from the code and must never go stale."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def gen_reference():
    spec = importlib.util.spec_from_file_location("gen_reference", ROOT / "docs" / "gen_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_reference_is_the_generated_one(gen_reference):
    committed = (ROOT / "docs" / "reference.md").read_text()
    assert committed == gen_reference.render(), "docs/reference.md is stale: run python docs/gen_reference.py"


def test_reference_covers_every_trait_and_catalog_field(gen_reference):
    from offload_spawner.hub.spawner import OffloadSpawner
    from offload_spawner.pipeline.catalog import Catalog

    text = gen_reference.render()
    for name, trait in OffloadSpawner.class_own_traits(config=True).items():
        assert f"### `{name}`" in text
        assert trait.help.strip(), f"OffloadSpawner.{name} has no help text"
    schema = Catalog.model_json_schema(mode="serialization")
    for model in [schema, *schema["$defs"].values()]:
        for field in model.get("properties", {}):
            assert f"| `{field}` |" in text


def test_every_catalog_field_is_described():
    from offload_spawner.pipeline.catalog_help import catalog_json_schema

    schema = catalog_json_schema()
    models = {"Catalog": schema, **schema["$defs"]}
    missing = [
        f"{name}.{field}"
        for name, model in models.items()
        for field, spec in model.get("properties", {}).items()
        if not spec.get("description")
    ]
    assert missing == [], f"describe these in offload_spawner/pipeline/catalog_help.py FIELD_HELP: {missing}"


def test_help_for_a_field_that_does_not_exist_is_an_error(monkeypatch):
    from offload_spawner.pipeline import catalog_help

    monkeypatch.setitem(catalog_help.FIELD_HELP, "Target.nodes", "a typo")
    with pytest.raises(KeyError, match="Target has no field 'nodes'"):
        catalog_help.catalog_json_schema()


def test_check_mode_reports_a_stale_page(gen_reference, monkeypatch, tmp_path, capsys):
    page = tmp_path / "reference.md"
    page.write_text(gen_reference.render())
    monkeypatch.setattr(gen_reference, "REFERENCE", page)
    assert gen_reference.main(["--check"]) == 0
    page.write_text(page.read_text() + "edited by hand\n")
    assert gen_reference.main(["--check"]) == 1
    assert "stale" in capsys.readouterr().err
