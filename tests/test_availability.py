"""Availability and admission: the pure core, the form it fills, and the CLI's --cluster.

The cluster state is plain Node/Pod dicts shaped as the Kubernetes API returns
them (the same shape as a ``--cluster`` file); no cluster is needed here.
tests/e2e/test_availability_e2e.py runs the same logic against the control plane.
"""

from __future__ import annotations

import html
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from offload_spawner.availability.availability import (
    UNKNOWN,
    AcceleratorOffered,
    ClusterView,
    Demand,
    admission_refusal,
    cluster_view,
    menu_availability,
    node_state,
    parse_quantity,
    pod_requests,
    target_availability,
)
from offload_spawner.hub.forms import render_form
from offload_spawner.pipeline.menu import build_menu

GPU_USER = ["highrate", "ai-infn", "gpu-users"]
A100 = AcceleratorOffered("nvidia.com/gpu", "NVIDIA GPU", "nvidia-gpu-type", ("t4", "a100"))
TAINT = {"key": "virtual-node.interlink/no-schedule", "value": "true", "effect": "NoSchedule"}


def node(
    name="vk-leonardo",
    *,
    gpus="4",
    ready=True,
    reason="InterlinkPingSuccessful",
    message="pong",
    unschedulable=False,
    taints=(TAINT,),
    labels=None,
    cpu="32",
    memory="480Gi",
) -> dict:
    allocatable = {"cpu": cpu, "memory": memory, "pods": "100"}
    if gpus is not None:
        allocatable["nvidia.com/gpu"] = gpus
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"nvidia-gpu-type": "a100"} if labels is None else labels},
        "spec": {"taints": list(taints), **({"unschedulable": True} if unschedulable else {})},
        "status": {
            "allocatable": allocatable,
            "capacity": allocatable,
            "conditions": [
                {"type": "Ready", "status": "True" if ready else "False", "reason": reason, "message": message}
            ],
        },
    }


def pod(name, node_name="vk-leonardo", *, cpu="1", memory="1Gi", gpus=None, phase="Running", ns="jhub") -> dict:
    requests = {"cpu": cpu, "memory": memory}
    limits = {}
    if gpus:
        limits["nvidia.com/gpu"] = str(gpus)  # extended resources: limits only, as KubeSpawner writes them
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "nodeName": node_name,
            "containers": [{"name": "c", "resources": {"requests": requests, "limits": limits}}],
        },
        "status": {"phase": phase},
    }


# --- quantities and requests ----------------------------------------------------


@pytest.mark.parametrize(
    "text, value",
    [
        ("32", 32),
        ("500m", 0.5),
        ("480Gi", 480 * 2**30),
        ("1k", 1000),
        ("2M", 2_000_000),
        (4, 4),
        ("1.5", 1.5),
        ("junk", 0),
        ("", 0),
        (True, 0),
    ],
)
def test_parse_quantity(text, value):
    assert parse_quantity(text) == value


def test_pod_requests_take_limits_when_no_request_and_the_larger_of_init_and_containers():
    p = pod("a", cpu="1", memory="1Gi", gpus=2)
    p["spec"]["containers"].append({"name": "side", "resources": {"requests": {"cpu": "500m"}}})
    p["spec"]["initContainers"] = [{"name": "init", "resources": {"requests": {"cpu": "4"}}}]
    assert pod_requests(p) == {"cpu": 4.0, "memory": 2**30, "nvidia.com/gpu": 2.0}


# --- nodes --------------------------------------------------------------------------


def test_used_counts_only_live_pods_bound_to_the_node():
    pods = [
        pod("a", gpus=1),
        pod("b", gpus=2, phase="Pending"),
        pod("done", gpus=1, phase="Succeeded"),
        pod("failed", gpus=1, phase="Failed"),
        pod("elsewhere", "vk-docker", gpus=1),
        pod("other-ns", ns="x"),
    ]
    state = node_state("vk-leonardo", node(), pods)
    assert state.used["nvidia.com/gpu"] == 3
    assert state.used["cpu"] == 3
    assert state.pods == {"jhub/a", "jhub/b", "x/other-ns"}
    assert state.ready and state.reason == "InterlinkPingSuccessful"


def test_cluster_view_reads_lists_and_keeps_only_named_nodes():
    view = cluster_view(
        [{"kind": "NodeList", "items": [node(), node("vk-docker")]}, pod("a", gpus=1)], ["vk-leonardo", "vk-missing"]
    )
    assert set(view.nodes) == {"vk-leonardo", "vk-missing"}
    assert view.nodes["vk-leonardo"].used["nvidia.com/gpu"] == 1
    assert not view.nodes["vk-missing"].registered


def _leonardo(contract_catalog):
    return contract_catalog.offload_targets["leonardo"]


def test_gpus_by_model_total_used_available(contract_catalog):
    view = cluster_view([node(), pod("a", gpus=1), pod("b", gpus=2)])
    a = target_availability("leonardo", _leonardo(contract_catalog), [A100], view)
    assert a.status == "up"
    assert (
        a.model("nvidia.com/gpu", "a100").total,
        a.model("nvidia.com/gpu", "a100").used,
        a.model("nvidia.com/gpu", "a100").available,
    ) == (4, 3, 1)
    # The node's label says a100: it has no t4 at all.
    assert a.model("nvidia.com/gpu", "t4").total == 0
    assert a.cores_free == 30 and a.cores_total == 32
    assert "NVIDIA GPU a100: 4 total, 3 used, 1 available" in a.summary


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (
            {"ready": False, "reason": "InterlinkPingFailed", "message": "plugin unreachable"},
            "interLink ping failed: plugin unreachable",
        ),
        ({"ready": False, "reason": "KubeletNotReady", "message": ""}, "not ready (KubeletNotReady)"),
        ({"unschedulable": True}, "cordoned"),
        ({"taints": (TAINT, {"key": "maintenance", "effect": "NoSchedule"})}, "taint maintenance"),
    ],
)
def test_a_site_that_cannot_take_sessions_is_down_with_its_reason(contract_catalog, kwargs, words):
    view = cluster_view([node(**kwargs)])
    a = target_availability("leonardo", _leonardo(contract_catalog), [A100], view)
    assert a.status == "down"
    assert words in a.reason
    assert a.model("nvidia.com/gpu", "a100").available == 0
    refusal = admission_refusal(a, 1, 2**30)
    assert refusal.startswith("CINECA Leonardo (SLURM) is down") and words in refusal


def test_a_missing_node_is_down_and_an_unknown_view_or_cluster_target_is_unknown(contract_catalog):
    a = target_availability("leonardo", _leonardo(contract_catalog), [A100], cluster_view([]))
    assert a.status == "down" and "not registered" in a.reason
    a = target_availability("leonardo", _leonardo(contract_catalog), [A100], UNKNOWN)
    assert a.status == "unknown" and a.summary == "Free capacity is not shown here"
    assert "unknown" not in a.summary.lower()
    assert admission_refusal(a, 1000, 2**50, "nvidia.com/gpu", "a100", 99) is None
    cluster = contract_catalog.offload_targets["cluster"]
    in_cluster = target_availability("cluster", cluster, [], cluster_view([node()]))
    assert in_cluster.status == "unknown"
    assert in_cluster.summary.startswith("Free capacity is not shown for this cluster")


def test_reservations_count_until_their_pod_is_bound(contract_catalog):
    target = _leonardo(contract_catalog)
    held = [Demand("vk-leonardo", cores=2, memory=2**30, extended={"nvidia.com/gpu": 3}, pod="jhub/jupyter-carol")]
    a = target_availability("leonardo", target, [A100], cluster_view([node()]), held)
    assert a.model("nvidia.com/gpu", "a100").available == 1 and a.cores_free == 30
    # Once the node's pods include it, the pod's requests count, not the reservation too.
    bound = cluster_view([node(), pod("jupyter-carol", cpu="2", gpus=3)])
    a = target_availability("leonardo", target, [A100], bound, held)
    assert a.model("nvidia.com/gpu", "a100").available == 1 and a.cores_free == 30
    # Reservations on another node do not count here.
    other = [Demand("vk-docker", cores=30, extended={"nvidia.com/gpu": 4}, pod="jhub/x")]
    assert target_availability("leonardo", target, [A100], cluster_view([node()]), other).cores_free == 32


def test_admission_messages(contract_catalog):
    target = _leonardo(contract_catalog)
    full = target_availability("leonardo", target, [A100], cluster_view([node(), pod("a", gpus=4)]))
    assert admission_refusal(full, 1, 2**30, "nvidia.com/gpu", "a100", 1) == (
        "All 4 NVIDIA GPU a100 on CINECA Leonardo (SLURM) are in use; try again later or pick another target."
    )
    some = target_availability("leonardo", target, [A100], cluster_view([node(), pod("a", gpus=3)]))
    assert admission_refusal(some, 1, 2**30, "nvidia.com/gpu", "a100", 1) is None
    assert "Only 1 of 4 NVIDIA GPU a100" in admission_refusal(some, 1, 2**30, "nvidia.com/gpu", "a100", 2)
    assert "has no NVIDIA GPU t4" in admission_refusal(some, 1, 2**30, "nvidia.com/gpu", "t4", 1)
    busy = target_availability("leonardo", target, [], cluster_view([node(cpu="8"), pod("a", cpu="6")]))
    assert admission_refusal(busy, 2, 2**30) is None
    assert admission_refusal(busy, 4, 2**30).startswith("Only 2 cores are free on CINECA Leonardo (SLURM)")
    small = target_availability("leonardo", target, [], cluster_view([node(memory="4Gi"), pod("a", memory="3Gi")]))
    assert "Only 1G of memory is free" in admission_refusal(small, 1, 2 * 2**30)


# --- what one user sees ----------------------------------------------------------------


def test_only_the_users_targets_and_models_are_reported(contract_catalog):
    view = cluster_view([node(), node("vk-naples", gpus=None, labels={})])
    gpu_user = menu_availability(build_menu(contract_catalog, GPU_USER), contract_catalog, view)
    assert set(gpu_user) == {"cluster", "naples", "leonardo"}
    assert {m.key for m in gpu_user["leonardo"].models} == {"nvidia.com/gpu:t4", "nvidia.com/gpu:a100"}
    # Not in gpu-users: leonardo is offered without accelerators, so no GPU numbers.
    ai_user = menu_availability(build_menu(contract_catalog, ["highrate", "ai-infn"]), contract_catalog, view)
    assert ai_user["leonardo"].models == ()
    # Not in ai-infn: leonardo is not theirs at all.
    cms = menu_availability(build_menu(contract_catalog, ["cms"]), contract_catalog, view)
    assert "leonardo" not in cms and "naples" not in cms


def _form(contract_catalog, view, groups=GPU_USER, **kw) -> str:
    menu = build_menu(contract_catalog, groups)
    return render_form(menu, availability=menu_availability(menu, contract_catalog, view), **kw)


def test_form_shows_live_numbers_and_disables_an_exhausted_model(contract_catalog):
    view = cluster_view([node(), node("vk-naples", gpus=None, labels={}), pod("a", cpu="4", gpus=4)])
    page = html.unescape(_form(contract_catalog, view))
    assert '<option value="nvidia.com/gpu:a100" disabled>NVIDIA GPU a100 (unavailable: all 4 in use)</option>' in page
    assert re.search(
        r'data-availability="leonardo" data-status="up">Up · 28 of 32 cores free · 479G of 480G memory '
        r"free · NVIDIA GPU t4: 0 total, 0 used, 0 available · NVIDIA GPU a100: 4 total, 4 used, 0 "
        r"available<",
        page,
    )
    # The page's per-target data carries the same numbers for the script.
    targets = json.loads(
        re.search(r'data-targets="([^"]*)"', _form(contract_catalog, view)).group(1).replace("&#34;", '"')
    )
    assert targets["leonardo"]["availability"]["accelerators"]["nvidia.com/gpu:a100"] == {
        "total": 4,
        "used": 4,
        "available": 0,
    }
    # With one free, it is enabled again.
    view = cluster_view([node(), node("vk-naples", gpus=None, labels={}), pod("a", gpus=3)])
    assert '<option value="nvidia.com/gpu:a100">' in _form(contract_catalog, view)


def test_a_down_target_is_disabled_and_not_preselected(contract_catalog):
    view = cluster_view(
        [node(ready=False, reason="InterlinkPingFailed", message="no answer"), node("vk-naples", gpus=None, labels={})]
    )
    page = html.unescape(_form(contract_catalog, view))
    assert '<option value="leonardo" disabled>CINECA Leonardo (SLURM) (down)</option>' in page
    assert 'data-status="down">Down: interLink ping failed: no answer<' in page


def test_unknown_availability_disables_nothing(contract_catalog):
    page = _form(
        contract_catalog, ClusterView(known=False, note="this site does not publish its free capacity to this hub")
    )
    assert " disabled" not in page
    assert page.count('data-status="unknown">This site does not publish its free capacity to this hub') == 2
    assert page.count('data-status="unknown">Free capacity is not shown for this cluster') == 1


# --- the command line ------------------------------------------------------------------


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "offload_spawner.hub.cli", *args], capture_output=True, text=True, timeout=120
    )


def test_cli_form_and_render_with_an_exhausted_gpu_model(contract_file, tmp_path, capsys):
    """Done when: the form for a cluster file with one exhausted GPU model shows it
    as unavailable, and a render asking for it is refused (exit 2).
    The form in-process (the console script's main()), the render as the console script."""
    from offload_spawner.hub.cli import main

    cluster = tmp_path / "cluster.yaml"
    cluster.write_text(yaml.safe_dump([node(), node("vk-naples", gpus=None, labels={}), pod("a", gpus=4)]))
    who = ["-f", str(contract_file), "--user", "carol", "--groups", ",".join(GPU_USER), "--cluster", str(cluster)]

    assert main(["form", *who]) == 0
    form = capsys.readouterr().out
    assert '<option value="nvidia.com/gpu:a100" disabled>NVIDIA GPU a100 (unavailable: all 4 in use)</option>' in form

    ask = ["-o", "profile=analysis", "-o", "target=leonardo", "-o", "accelerator=nvidia.com/gpu:a100"]
    render = run("render", *who, *ask)
    assert render.returncode == 2, render.stdout
    assert render.stdout == ""
    assert render.stderr == (
        "refused: All 4 NVIDIA GPU a100 on CINECA Leonardo (SLURM) are in use; "
        "try again later or pick another target.\n"
    )


def test_cli_render_without_a_cluster_file_or_with_a_free_gpu(contract_file, tmp_path, capsys):
    """In-process (the same main() as the console script), to keep the suite fast."""
    from offload_spawner.hub.cli import main

    who = ["-f", str(contract_file), "--user", "carol", "--groups", ",".join(GPU_USER)]
    ask = ["-o", "profile=analysis", "-o", "target=leonardo", "-o", "accelerator=nvidia.com/gpu:a100"]
    # Without the cluster file availability is unknown: not refused.
    assert main(["render", *who, *ask]) == 0, capsys.readouterr().err
    capsys.readouterr()
    cluster = tmp_path / "cluster.json"
    cluster.write_text(json.dumps({"kind": "List", "items": [node(), pod("a", gpus=3)]}))
    assert main(["render", *who, "--cluster", str(cluster), *ask]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["pod"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert main(["render", *who, "--cluster", str(cluster), *ask, "-o", "accelerator_count=2"]) == 2
    assert capsys.readouterr().err == (
        "refused: Only 1 of 4 NVIDIA GPU a100 on CINECA Leonardo (SLURM) are free and you asked for 2; "
        "try again later or pick another target.\n"
    )


@pytest.mark.parametrize(
    "content, words",
    [
        ("{a: 1}", "expected a list of Node and Pod objects"),
        ("- {kind: Secret, metadata: {name: x}}", "found kind 'Secret'"),
        ("[unclosed", "--cluster"),
    ],
)
def test_cli_refuses_a_bad_cluster_file(contract_file, tmp_path, content, words, capsys):
    from offload_spawner.hub.cli import main

    cluster = tmp_path / "cluster.yaml"
    cluster.write_text(content)
    assert main(["form", "-f", str(contract_file), "--user", "carol", "--cluster", str(cluster)]) == 1
    result = capsys.readouterr()
    assert words in result.err and result.out == ""


def test_the_shipped_rbac_is_the_role_the_e2e_tests_bind():
    """helm-values/rbac-availability.yaml grants exactly what the test bed's optional
    ClusterRole grants (tests/e2e bind that one), to the chart's hub ServiceAccount."""
    from testbed.controlplane import NODE_READER_ROLE, NODE_READER_RULES

    path = Path(__file__).resolve().parents[1] / "helm-values" / "rbac-availability.yaml"
    role, binding = list(yaml.safe_load_all(path.read_text()))
    assert role["kind"] == "ClusterRole" and role["metadata"]["name"] == NODE_READER_ROLE
    assert role["rules"] == NODE_READER_RULES
    assert all(set(rule["verbs"]) <= {"get", "list", "watch"} for rule in role["rules"])
    assert binding["kind"] == "ClusterRoleBinding"
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": NODE_READER_ROLE,
    }
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "hub", "namespace": "jhub"}]
