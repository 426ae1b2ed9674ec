"""The interLink NATS plugin backend (offload_spawner.backends.interlink_nats).

The pods we build are read by the plugin's own functions: the pool from the
tolerations (``natsprovider/NatsGateway.py``), the volume annotations
(``natsprovider/apptainer_cmd_builder/from_kubernetes.py``) and the job size
(``natsprovider/utils.py``). Those functions are taken from a checkout of
``landerlini/interlink-condorce-plugin`` at test time (the repository has no
licence, so none of it is copied here): set OFFLOAD_NATS_PLUGIN_DIR to it, else
``../shared/upstream/interlink-condorce-plugin`` is used when it exists; the
tests that need it skip otherwise.
"""

from __future__ import annotations

import ast
import math
import os
import re
import types
import typing
import warnings
from pathlib import Path

import kubernetes.client
import pytest
from kubernetes.utils.quantity import parse_quantity

from offload_spawner.backends import adapter_for
from offload_spawner.dask.dask_config import cluster_spec
from offload_spawner.pipeline.catalog import INTERLINK_TOLERATION, Backend, CatalogError, build_catalog
from offload_spawner.pipeline.limits import target_ceiling, user_ceiling
from offload_spawner.pipeline.menu import build_menu
from offload_spawner.pipeline.plan import build_plan
from offload_spawner.pipeline.selection import select

ROOT = Path(__file__).resolve().parents[1]
UPSTREAM_HINT = (
    "set OFFLOAD_NATS_PLUGIN_DIR to a checkout of https://github.com/landerlini/interlink-condorce-plugin "
    "(tested at commit 36c73310c29d)"
)

NATS_TARGET = {
    "display_name": "AI_INFN HTCondor pool",
    "backend": "interlink-nats",
    "node": "vk-ai-infn",
    "limits": {"cores": 16, "memory": "64G", "accelerators": {"nvidia.com/gpu": 2}},
    "nats": {
        "pool": "htcondor-cnaf",
        "cvmfs_volumes": ["cvmfs"],
        "fuse_volumes": {"rclone-home": "#!/bin/sh\nrclone mount remote:home $MOUNT_POINT"},
    },
    "dask": {"worker_cores": 2, "worker_memory": "4G"},
}
PROFILE = {
    "display_name": "Notebook",
    "cores": {"choices": [1, 2, 4], "default": 2},
    "memory": {"choices": ["4G", "8G"], "default": "4G"},
    "accelerators": {"nvidia.com/gpu": {"display_name": "NVIDIA GPU", "models": ["a100"], "max": 2}},
}


def _catalog(**target):
    return build_catalog(profile_list=[PROFILE], offload_targets={"nats": {**NATS_TARGET, **target}})


def _plan(catalog, **options):
    return build_plan(catalog, select(build_menu(catalog, []), {"target": "nats", **options}))


def _dask_pods(catalog) -> dict[str, dict]:
    target = catalog.offload_targets["nats"]
    spec = cluster_spec(
        name="c",
        target_slug="nats",
        target=target,
        settings=target.dask_settings,
        ceiling=target_ceiling(user_ceiling(catalog, []), target),
        image="img",
        secret="s",
        user_name="hana",
    )
    return {
        role: {"metadata": spec["spec"][role]["metadata"], "spec": spec["spec"][role]["spec"]}
        for role in ("scheduler", "worker")
    }


# --- the catalog ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "target,message",
    [
        ({"nats": None}, "needs 'nats.pool'"),
        ({"nats": {"pool": "a.b"}}, "nats.pool"),  # a NATS subject token has no '.'
        ({"nats": {"pool": "p", "cvmfs_volumes": ["CVMFS"]}}, "cvmfs_volumes"),
        ({"nats": {"pool": "p", "fuse_volumes": {"a/b": "script"}}}, "fuse_volumes"),
        ({"nats": {"pool": "p", "queue": "x"}}, "unknown key"),
    ],
)
def test_bad_settings_stop_the_hub(target, message):
    settings = {**NATS_TARGET, **target}
    if settings["nats"] is None:
        del settings["nats"]
    with pytest.raises(CatalogError) as e:
        build_catalog(offload_targets={"nats": settings})
    assert any(message in p for p in e.value.problems), e.value.problems


def test_nats_settings_need_the_nats_backend():
    with pytest.raises(CatalogError) as e:
        build_catalog(
            offload_targets={"s": {"display_name": "S", "backend": "slurm", "node": "vk", "nats": {"pool": "p"}}}
        )
    assert any("'nats' settings need backend 'interlink-nats'" in p for p in e.value.problems)


def test_the_session_pod_carries_the_pool_toleration_and_volume_annotations():
    plan = _plan(_catalog(), accelerator="nvidia.com/gpu:a100", accelerator_count="1")
    assert plan.offload == "session"
    assert list(plan.tolerations) == [
        INTERLINK_TOLERATION,
        {"key": "pool.vk.io", "operator": "Equal", "value": "htcondor-cnaf", "effect": "NoSchedule"},
    ]
    assert plan.node_selector["kubernetes.io/hostname"] == "vk-ai-infn"
    assert plan.annotations["cvmfs.vk.io/cvmfs"] == "true"
    assert plan.annotations["fuse.vk.io/rclone-home"] == NATS_TARGET["nats"]["fuse_volumes"]["rclone-home"]
    assert "user" not in plan.labels  # the plugin would put it into a site path


def test_the_adapter_is_registered():
    assert type(adapter_for(Backend.interlink_nats)).__name__ == "InterlinkNatsAdapter"


# --- read back by the plugin's own code ----------------------------------------------------


def _upstream_dir() -> Path:
    explicit = os.environ.get("OFFLOAD_NATS_PLUGIN_DIR")
    if explicit:
        path = Path(explicit)
        if not (path / "natsprovider").is_dir():
            pytest.fail(f"OFFLOAD_NATS_PLUGIN_DIR={explicit} holds no natsprovider/ folder")
        return path
    shared = ROOT.parent / "shared" / "upstream" / "interlink-condorce-plugin"
    if (shared / "natsprovider").is_dir():
        return shared
    pytest.skip(f"the interLink NATS plugin's source is not here: {UPSTREAM_HINT}")


@pytest.fixture(scope="module")
def upstream() -> Path:
    return _upstream_dir()


def _parse(path: Path) -> ast.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # upstream's regexes are not raw strings
        return ast.parse(path.read_text())


def _function(path: Path, name: str, namespace: dict) -> typing.Callable:
    """One top-level function or method of an upstream file, compiled on its own
    (its module imports NATS, FastAPI, redis ... which the tests do not need)."""
    for node in ast.walk(_parse(path)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name:
            module = ast.Module(body=[node], type_ignores=[])
            exec(compile(module, str(path), "exec"), namespace)  # noqa: S102 - upstream source under test
            return namespace[name]
    raise AssertionError(f"{path} has no function {name}: the plugin changed, check the adapter")


class _Refused(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(status, detail)
        self.status = status


def _pool_reader(upstream: Path) -> typing.Callable:
    read = _function(
        upstream / "natsprovider" / "NatsGateway.py",
        "retrieve_pool_from_tolerations",
        {"List": typing.List, "kubernetes": kubernetes, "HTTPException": _Refused},  # noqa: UP006
    )
    gateway = types.SimpleNamespace(logger=types.SimpleNamespace(error=lambda *a: None))
    return lambda tolerations: read(gateway, [kubernetes.client.V1Toleration(**t) for t in tolerations])


def test_the_plugin_reads_our_pool_from_the_session_and_dask_pods(upstream):
    read_pool = _pool_reader(upstream)
    catalog = _catalog(offload="session")
    assert read_pool(_plan(catalog).tolerations) == "htcondor-cnaf"
    for role, pod in _dask_pods(catalog).items():
        assert read_pool(pod["spec"]["tolerations"]) == "htcondor-cnaf", role
    # and refuses a pod without it, as the adapter's docstring says
    with pytest.raises(_Refused) as refused:
        read_pool([INTERLINK_TOLERATION])
    assert refused.value.status == 400


def _volume_patterns(upstream: Path) -> dict[str, str]:
    """The ``re.findall`` patterns ``_make_pod_volume_struct`` applies to annotation keys."""
    path = upstream / "natsprovider" / "apptainer_cmd_builder" / "from_kubernetes.py"
    patterns = {}
    for node in ast.walk(_parse(path)):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "findall"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            pattern = node.args[0].value
            patterns[pattern.split(".vk.io")[0]] = pattern
    return patterns


def test_the_plugin_finds_our_volume_annotations(upstream):
    patterns = _volume_patterns(upstream)
    assert set(patterns) >= {"cvmfs", "fuse"}, patterns
    annotations = _plan(_catalog()).annotations
    found = {
        kind: [name for key in annotations for name in re.findall(pattern, key)] for kind, pattern in patterns.items()
    }
    assert found["cvmfs"] == ["cvmfs"]
    assert found["fuse"] == ["rclone-home"]
    # the Dask pods carry them too
    for pod in _dask_pods(_catalog()).values():
        keys = pod["metadata"]["annotations"]
        assert [n for key in keys for n in re.findall(patterns["fuse"], key)] == ["rclone-home"]


def _pod_size_reader(upstream: Path) -> typing.Callable:
    compute = _function(
        upstream / "natsprovider" / "utils.py",
        "compute_pod_resource",
        {"math": math, "parse_quantity": parse_quantity, "interlink": types.SimpleNamespace(PodRequest=object)},
    )
    return lambda pod_spec, resource: compute(types.SimpleNamespace(spec=pod_spec), resource=resource)


@pytest.mark.parametrize("fraction", [1.0, 0.5])
def test_the_job_size_the_plugin_reads_from_a_dask_worker(upstream, fraction):
    size = _pod_size_reader(upstream)
    worker = _dask_pods(_catalog(request_fraction=fraction))["worker"]["spec"]
    cores, memory = size(worker, "cpu"), size(worker, "memory")
    if fraction == 1.0:
        # the default: the job gets the size the worker was given
        assert (cores, memory) == (2, 4 * 2**30)
    else:
        # the plugin reads requests only: a fraction below 1 shrinks the job
        # (README, limitations)
        assert (cores, memory) == (1, 2 * 2**30)
