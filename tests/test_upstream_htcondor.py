"""Pods from ``offload-spawner render`` read by the real HTCondor plugin.

The plugin (interlink-htcondor-plugin/handles.py) writes the submit file
from the pod *requests*: ``int(cpu)`` per container, memory only as
``<digits><k|M|G|Ki|Mi|Gi>`` (anything else becomes 1 MB). See
tests/upstream_plugins.py for how it is run.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dask_pods import operator_pods
from upstream_plugins import as_created, htcondor_submit_file, submit_value

CONFIG = {
    "hub": {
        "config": {
            "JupyterHub": {"spawner_class": "offload"},
            "OffloadSpawner": {
                "offload_targets": {
                    "condor": {
                        "display_name": "HTCondor pool (sessions)",
                        "backend": "htcondor",
                        "node": "vk-naples",
                        "offload": "session",
                        "network": "wstunnel",
                        "hub_api_url": "https://hub.example.org/hub/api",
                    },
                    "naples": {
                        "display_name": "INFN Naples (Dask)",
                        "backend": "htcondor",
                        "node": "vk-naples",
                        "offload": "dask",
                        "dask": {
                            "workers": 2,
                            "worker_cores": 2,
                            "worker_memory": "8G",
                            "scheduler_cores": 1,
                            "scheduler_memory": "2G",
                        },
                    },
                },
                "default_limits": {"cores": 16, "memory": "64G"},
            },
        }
    },
    "singleuser": {
        "image": {"name": "quay.io/jupyter/base-notebook", "tag": "2025-01-01"},
        "profileList": [
            {
                "display_name": "Batch",
                "slug": "batch",
                "cores": {"choices": [1, 1.5, 2, 4], "default": 2},
                "memory": {"choices": ["2G", "8G", "1.5G"], "default": "8G"},
                "targets": ["condor", "naples"],
            }
        ],
    },
}


@pytest.fixture
def values(tmp_path) -> Path:
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(CONFIG))
    return path


def render(values: Path, *options: str) -> dict:
    args = ["render", "-f", str(values), "--user", "alice"]
    for option in options:
        args += ["-o", option]
    r = subprocess.run(
        [sys.executable, "-m", "offload_spawner.hub.cli", *args], capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def dask_pods(rendered: dict) -> dict[str, dict]:
    """The scheduler and worker pods dask-kubernetes' operator makes from the server's Dask file."""
    (text,) = rendered["files"].values()
    return operator_pods(yaml.safe_load(text)["kubernetes"]["custom-cluster-spec"], "jhub")


def test_notebook_8g_2_cores_gives_8192_mb_and_2_cpus(values, tmp_path):
    rendered = render(values, "profile=batch", "target=condor", "cores=2", "memory=8G")
    submit = htcondor_submit_file(as_created(rendered["pod"]), tmp_path)
    assert submit_value(submit, "RequestMemory") == "8192"
    assert submit_value(submit, "RequestCpus") == "2"


def test_fractional_cores_and_memory_are_rounded_down_not_crashing(values, tmp_path):
    """1.5 cores would reach the plugin as "1500m" and crash its int(); 1.5G would be 1 MB."""
    rendered = render(values, "profile=batch", "target=condor", "cores=1.5", "memory=1.5G")
    submit = htcondor_submit_file(as_created(rendered["pod"]), tmp_path)
    assert submit_value(submit, "RequestCpus") == "1"
    assert submit_value(submit, "RequestMemory") == "1536"
    limits = rendered["pod"]["spec"]["containers"][0]["resources"]["limits"]
    assert float(limits["cpu"]) == 1.5  # the limit stays what the user chose


@pytest.mark.parametrize("role, cpus, memory", [("worker", "2", "8192"), ("scheduler", "1", "2048")])
def test_dask_pods_on_htcondor(values, tmp_path, role, cpus, memory):
    rendered = render(values, "profile=batch", "target=naples")
    pod = dask_pods(rendered)[role]
    submit = htcondor_submit_file(as_created(pod, name=f"dask-{role}"), tmp_path)
    assert submit_value(submit, "RequestMemory") == memory
    assert submit_value(submit, "RequestCpus") == cpus


def test_image_root_prefixes_only_absolute_images(values, tmp_path):
    """The plugin gives 'docker://' to a registry image itself; image_root is for '/...' images."""
    CONFIG_WITH_ROOT = json.loads(json.dumps(CONFIG))
    target = CONFIG_WITH_ROOT["hub"]["config"]["OffloadSpawner"]["offload_targets"]["condor"]
    target["htcondor"] = {"image_root": "oras://registry.example.org"}
    values.write_text(yaml.safe_dump(CONFIG_WITH_ROOT))
    rendered = render(values, "profile=batch", "target=condor")
    pod = as_created(rendered["pod"])
    work = tmp_path / "registry"
    work.mkdir()
    submit_dir = htcondor_submit_file(pod, work)
    executable = Path(submit_value(submit_dir, "Executable").removeprefix("./"))
    script = (work / "htcondor" / executable).read_text()
    assert "docker://quay.io/jupyter/base-notebook:2025-01-01" in script
    pod["spec"]["containers"][0]["image"] = "/images/notebook.sif"
    work = tmp_path / "absolute"
    work.mkdir()
    submit_abs = htcondor_submit_file(pod, work)
    script = (work / "htcondor" / Path(submit_value(submit_abs, "Executable").removeprefix("./"))).read_text()
    assert "oras://registry.example.org/images/notebook.sif" in script
