"""The catalog's JSON schema: ``offload-spawner schema``, docs/catalog.schema.json,
checked with the ``jsonschema`` library against what admins write."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from offload_spawner.hub.cli import main, schema_text
from offload_spawner.pipeline.catalog import Backend, build_catalog

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "docs" / "catalog.schema.json"

CATALOG = {
    "profile_list": [
        {
            "display_name": "Notebook",
            "cores": {"choices": [1, 2, 4], "default": 2},
            "memory": {"min": "1G", "max": "16G", "default": "4G"},
            "accelerators": {"nvidia.com/gpu": {"display_name": "NVIDIA GPU", "models": ["a100"], "max": 2}},
        }
    ],
    "offload_targets": {
        "cluster": {"display_name": "This cluster"},
        "leonardo": {
            "display_name": "Leonardo",
            "backend": "slurm",
            "node": "vk-leonardo",
            "limits": {"cores": 32, "memory": "480Gi", "accelerators": {"nvidia.com/gpu": 4}},
            "slurm": {"partition": "boost_usr_prod", "time_limit": "04:00:00"},
            "tokens": {"access_token": {"env": False}},
        },
        "ai-infn": {
            "display_name": "AI_INFN pool",
            "backend": "interlink-nats",
            "node": "vk-nats",
            "offload": "dask",
            "nats": {"pool": "htcondor-cnaf", "cvmfs_volumes": ["cvmfs"]},
            "dask": {"worker_memory": "8G"},
        },
    },
    "group_limits": {"cms": {"cores": 8, "memory": "32G"}},
    "default_limits": {"cores": 2, "memory": "4G", "accelerators": {}},
}


@pytest.fixture(scope="module")
def schema() -> dict:
    return json.loads(schema_text())


def test_the_committed_schema_is_the_generated_one():
    assert COMMITTED.read_text() == schema_text(), "docs/catalog.schema.json is stale: run python docs/gen_reference.py"


def test_the_cli_prints_it(capsys):
    assert main(["schema"]) == 0
    assert capsys.readouterr().out == COMMITTED.read_text()


def test_it_is_a_valid_schema_that_accepts_what_the_hub_accepts(schema):
    jsonschema.Draft202012Validator.check_schema(schema)
    build_catalog(**CATALOG)  # the hub takes it ...
    jsonschema.validate(CATALOG, schema)  # ... and so does the schema
    assert set(schema["$defs"]["Backend"]["enum"]) == {b.value for b in Backend}


@pytest.mark.parametrize(
    "path,value",
    [
        (("offload_targets", "leonardo", "nodes"), "vk-x"),  # a typo
        (("offload_targets", "leonardo", "backend"), "pbs"),
        (("offload_targets", "ai-infn", "nats", "pool"), "two words"),
        (("offload_targets", "ai-infn", "nats"), {}),  # the pool is required
        (("default_limits", "cores"), 0),
    ],
)
def test_it_refuses_what_the_hub_refuses(schema, path, value):
    bad = json.loads(json.dumps(CATALOG))
    node = bad
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)
    with pytest.raises(ValueError):
        build_catalog(**bad)
