"""``offload-spawner render`` prints the Dask file a server receives, in full,
from the spawner's own ``server_files()`` (the same code the hub runs)."""

from __future__ import annotations

import json

import yaml

from offload_spawner.dask.dask_config import DASK_CONFIG_DIR, DASK_CONFIG_FILE
from test_cli import run


def test_render_prints_the_dask_file_in_full(contract_file):
    r = run(
        "render",
        "-f",
        str(contract_file),
        "--user",
        "hana",
        "--groups",
        "highrate",
        "-o",
        "profile=analysis",
        "-o",
        "image=offload",
        "-o",
        "target=naples",
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert set(out["files"]) == {DASK_CONFIG_FILE}
    config = yaml.safe_load(out["files"][DASK_CONFIG_FILE])
    spec = config["kubernetes"]["custom-cluster-spec"]
    assert spec["metadata"]["name"] == out["pod"]["metadata"]["name"] + "-dask"
    worker = spec["spec"]["worker"]["spec"]
    assert worker["nodeSelector"] == {"kubernetes.io/hostname": "vk-naples"}
    assert worker["containers"][0]["image"] == "ghcr.io/org/offload:1.0"
    assert config["labextension"]["factory"]["class"] == "KubeCluster"
    # the pod mounts it, and no token value appears in the file
    mounts = out["pod"]["spec"]["containers"][0]["volumeMounts"]
    assert any(m["mountPath"] == DASK_CONFIG_DIR for m in mounts)
    assert "redacted" not in out["files"][DASK_CONFIG_FILE]
