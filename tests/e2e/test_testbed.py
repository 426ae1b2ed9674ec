"""The test bed itself: nodes that look like interLink's, and a virtual kubelet
that resolves a pod the way interLink does before it hands it to a plugin.

These pods are created with the hub's identity (the Z2JH Role) where the hub
would create them, and checked with the admin client.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sys
from pathlib import Path
from typing import Any

from jupyterhub.tests.utils import async_requests
from kubernetes_asyncio.client.exceptions import ApiException

from testbed.procs import pid_alive
from testbed.virtual_kubelet import (
    FAIL_ANNOTATION,
    LOG_ANNOTATION,
    PID_ANNOTATION,
    QUEUE_ANNOTATION,
    SECRET_RESYNC_SECONDS,
)

from .conftest import nodes_of_the_test_bed

INTERLINK_TOLERATION = {"key": "virtual-node.interlink/no-schedule", "operator": "Exists", "effect": "NoSchedule"}


def pod(name: str, argv: list[str], node: str = "vk-naples", **extra: Any) -> dict[str, Any]:
    container = {"name": "main", "image": "ignored.example/image:1", "command": argv}
    container.update(extra.pop("container", {}))
    spec: dict[str, Any] = {
        "containers": [container],
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "nodeSelector": {"kubernetes.io/hostname": node},
        "tolerations": [INTERLINK_TOLERATION],
    }
    spec.update(extra.pop("spec", {}))
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, **extra}, "spec": spec}


def phase_is(*phases: str):
    return lambda p: (p or {}).get("status", {}).get("phase") in phases


async def test_nodes_look_like_interlink_virtual_nodes(admin):
    nodes = {n.metadata.name: n for n in (await admin.core.list_node()).items}
    assert nodes_of_the_test_bed(nodes) == {"vk-naples", "vk-leonardo", "vk-docker", "node-local"}
    for name in ("vk-naples", "vk-leonardo", "vk-docker"):
        node = nodes[name]
        labels = node.metadata.labels
        assert labels["virtual-node.interlink/type"] == "virtual-kubelet"
        assert labels["kubernetes.io/hostname"] == name
        assert labels["kubernetes.io/os"] == "virtual-kubelet"
        assert labels["kubernetes.io/role"] == "agent"
        assert [(t.key, t.value, t.effect) for t in node.spec.taints] == [
            ("virtual-node.interlink/no-schedule", "true", "NoSchedule")
        ]
        assert node.status.capacity == node.status.allocatable
        ready = next(c for c in node.status.conditions if c.type == "Ready")
        assert (ready.status, ready.reason) == ("True", "InterlinkPingSuccessful")
        assert "interlink.virtual-kubelet.io/ping-response" in node.metadata.annotations
    assert nodes["vk-leonardo"].status.capacity["nvidia.com/gpu"] == "4"
    assert nodes["vk-leonardo"].metadata.labels["nvidia-gpu-type"] == "a100"
    assert nodes["vk-docker"].status.capacity["xilinx.com/fpga"] == "2"
    assert nodes["vk-docker"].metadata.labels["xilinx-fpga-type"] == "u55c"
    assert nodes["vk-naples"].status.capacity["cpu"] == "96"

    local = nodes["node-local"]
    assert not local.spec.taints
    assert local.metadata.labels["hub.jupyter.org/node-purpose"] == "user"

    # Kept alive like a kubelet: a fresh Lease per node.
    from kubernetes_asyncio import client

    leases = await client.CoordinationV1Api(admin.api).list_namespaced_lease("kube-node-lease")
    renewed = {lease.metadata.name: lease.spec.renew_time for lease in leases.items}
    now = dt.datetime.now(dt.UTC)
    for name in nodes_of_the_test_bed(nodes):
        assert now - renewed[name] < dt.timedelta(seconds=30), (name, renewed[name])


CHECK_SCRIPT = r"""
import os, pathlib, sys
expected = {
    "ACCESS_TOKEN": "tok-123",
    "SITE": "naples",
    "GREETING": "hello naples",
    "MY_POD": "resolver",
    "MY_NODE": "vk-naples",
    "LITERAL": "$$(SITE)",  # the kubelet expands $(VAR) in args too; $$ escapes
}
for key, value in expected.items():
    if os.environ.get(key) != value:
        sys.exit(f"{key}={os.environ.get(key)!r}, expected {value!r}")
path = pathlib.Path(os.environ["BEARER_TOKEN_FILE"])
if not path.is_file() or path.read_text() != "tok-123":
    sys.exit(f"BEARER_TOKEN_FILE {path} does not hold the token")
if path.stat().st_mode & 0o777 != 0o400:
    sys.exit(f"mode {oct(path.stat().st_mode)}")
if not os.environ["BEARER_TOKEN_FILE"].startswith(os.environ["HOME"].rsplit("/home", 1)[0]):
    sys.exit("mount path not rewritten")
if sys.argv[1:] != ["naples", os.environ["BEARER_TOKEN_FILE"]]:
    sys.exit(f"argv {sys.argv[1:]}")
sys.exit(int(os.environ.get("EXIT_CODE", "0")))
"""


async def test_env_secrets_and_secret_files_are_resolved_like_interlink(admin, hub_kube, cluster):
    await hub_kube.core.create_namespaced_secret(
        "jhub", {"metadata": {"name": "resolver-tokens"}, "stringData": {"access_token": "tok-123"}}
    )
    cluster.control_plane.admin().call(
        "POST",
        "/api/v1/namespaces/jhub/configmaps",
        {"metadata": {"name": "resolver-site"}, "data": {"site": "naples"}},
    )
    try:
        env = [
            {"name": "ACCESS_TOKEN", "valueFrom": {"secretKeyRef": {"name": "resolver-tokens", "key": "access_token"}}},
            {"name": "SITE", "valueFrom": {"configMapKeyRef": {"name": "resolver-site", "key": "site"}}},
            {"name": "GREETING", "value": "hello $(SITE)"},
            {"name": "LITERAL", "value": "$$(SITE)"},
            {"name": "MY_POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "MY_NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            {"name": "BEARER_TOKEN_FILE", "value": "/etc/offload/tokens/bearer"},
        ]
        volume = {
            "name": "tokens",
            "secret": {
                "secretName": "resolver-tokens",
                "defaultMode": 0o400,
                "items": [{"key": "access_token", "path": "bearer"}],
            },
        }
        container = {
            "args": ["-c", CHECK_SCRIPT, "$(SITE)", "/etc/offload/tokens/bearer"],
            "env": env,
            "volumeMounts": [{"name": "tokens", "mountPath": "/etc/offload/tokens", "readOnly": True}],
        }
        await hub_kube.create_pod(pod("resolver", [sys.executable], container=container, spec={"volumes": [volume]}))
        done = await admin.wait_pod("resolver", phase_is("Succeeded", "Failed"), "finished", timeout=30)
        terminated = done["status"]["containerStatuses"][0]["state"]["terminated"]
        log = done["metadata"]["annotations"]["testbed.offload-spawner.io/log"]
        assert done["status"]["phase"] == "Succeeded", open(log).read()
        assert terminated["exitCode"] == 0

        # The exit code decides the phase: the same pod exiting 3 fails.
        env.append({"name": "EXIT_CODE", "value": "3"})
        body = pod("resolver", [sys.executable], container=container, spec={"volumes": [volume]})
        body["metadata"]["name"] = "resolver-3"
        body["spec"]["containers"][0]["env"] = [
            {"name": "MY_POD", "value": "resolver"} if e["name"] == "MY_POD" else e for e in env
        ]
        await hub_kube.create_pod(body)
        done = await admin.wait_pod("resolver-3", phase_is("Succeeded", "Failed"), "finished", timeout=30)
        assert done["status"]["phase"] == "Failed"
        terminated = done["status"]["containerStatuses"][0]["state"]["terminated"]
        assert (terminated["exitCode"], terminated["reason"]) == (3, "Error")
    finally:
        await hub_kube.core.delete_namespaced_secret("resolver-tokens", "jhub")
        cluster.control_plane.admin().call("DELETE", "/api/v1/namespaces/jhub/configmaps/resolver-site")


async def test_provider_failures_are_reported_as_interlink_does(admin, hub_kube):
    await hub_kube.create_pod(
        pod("refused", [sys.executable, "-c", "pass"], annotations={FAIL_ANNOTATION: "condor_submit: no such pool"})
    )
    await hub_kube.create_pod(pod("no-binary", ["/nonexistent/jupyterhub-singleuser"], node="vk-leonardo"))
    await hub_kube.core.create_namespaced_secret("jhub", {"metadata": {"name": "keyless"}, "stringData": {"a": "b"}})
    await hub_kube.create_pod(
        pod(
            "no-key",
            [sys.executable, "-c", "pass"],
            node="vk-docker",
            container={"env": [{"name": "T", "valueFrom": {"secretKeyRef": {"name": "keyless", "key": "t"}}}]},
        )
    )
    expected = {
        "refused": "condor_submit: no such pool",
        "no-binary": "cannot start '/nonexistent/jupyterhub-singleuser'",
        "no-key": "key 't' not found in secret jhub/keyless",
    }
    for name, message in expected.items():
        failed = await admin.wait_pod(name, phase_is("Failed"), "Failed", timeout=30)
        assert failed["status"]["reason"] == "ProviderFailed"
        assert message in failed["status"]["message"], failed["status"]["message"]
    await hub_kube.core.delete_namespaced_secret("keyless", "jhub")


WATCH_SCRIPT = r"""
import os, pathlib, sys, time
path = pathlib.Path(os.environ["BEARER_TOKEN_FILE"])
seen = pathlib.Path(os.environ["HOME"], "seen")
last = None
while True:  # report every token the file shows, as a long-running server would see them
    now = path.read_text()
    if now != last:
        with seen.open("a") as f:
            f.write(f"{os.environ['ACCESS_TOKEN']} {now}\n")
        last = now
    time.sleep(0.1)
"""


async def test_a_pod_waits_for_its_secret_and_a_rotation_reaches_only_node_local(admin, hub_kube, cluster):
    """A pod whose Secret does not exist yet waits (CreateContainerConfigError)
    and starts once it is created. A replaced Secret (delete + create, as the
    hub rotates it) reaches the files of a process on ``node-local``, as a
    kubelet re-syncs Secret volumes, but not those of a process on a virtual
    node: interLink sends a pod's Secrets to the plugin once, at create
    (RemoteExecution/remoteExecutionHandleVolumes in
    interLink/pkg/virtualkubelet/execute.go). Env keeps its first value on both."""
    env = [
        {"name": "ACCESS_TOKEN", "valueFrom": {"secretKeyRef": {"name": "late", "key": "access_token"}}},
        {"name": "BEARER_TOKEN_FILE", "value": "/tokens/access_token"},
    ]
    volume = {
        "name": "tokens",
        "secret": {
            "secretName": "late",
            "defaultMode": 0o444,
            "items": [{"key": "access_token", "path": "access_token"}],
        },
    }
    container = {
        "args": ["-c", WATCH_SCRIPT],
        "env": env,
        "volumeMounts": [{"name": "tokens", "mountPath": "/tokens", "readOnly": True}],
    }
    pods = {"late": "vk-naples", "late-local": "node-local"}
    for name, node in pods.items():
        body = pod(name, [sys.executable], node=node, container=container, spec={"volumes": [volume]})
        if node == "node-local":
            del body["spec"]["tolerations"]
        await hub_kube.create_pod(body)

    def waiting_for_config(p):
        statuses = (p or {}).get("status", {}).get("containerStatuses") or []
        return any(cs["state"].get("waiting", {}).get("reason") == "CreateContainerConfigError" for cs in statuses)

    for name in pods:
        waiting = await admin.wait_pod(name, waiting_for_config, "waiting for its Secret", timeout=30)
        assert waiting["status"]["phase"] == "Pending"
        message = waiting["status"]["containerStatuses"][0]["state"]["waiting"]["message"]
        assert "secret jhub/late not found" in message, message

    try:
        await hub_kube.core.create_namespaced_secret(
            "jhub", {"metadata": {"name": "late"}, "stringData": {"access_token": "first"}}
        )
        seen: dict[str, Path] = {}
        for name in pods:
            running = await admin.wait_pod(name, phase_is("Running"), "Running", timeout=30)
            seen[name] = cluster_pod_home(Path(running["metadata"]["annotations"][LOG_ANNOTATION])) / "seen"

        async def lines(name: str) -> list[str]:
            for _ in range(100):
                if seen[name].exists() and seen[name].read_text():
                    return seen[name].read_text().splitlines()
                await asyncio.sleep(0.1)
            raise AssertionError(f"{seen[name]} never written")

        for name in pods:
            assert await lines(name) == ["first first"], name
        await hub_kube.core.delete_namespaced_secret("late", "jhub")
        await hub_kube.core.create_namespaced_secret(
            "jhub", {"metadata": {"name": "late"}, "stringData": {"access_token": "second"}}
        )
        for _ in range(100):  # node-local: re-synced every SECRET_RESYNC_SECONDS
            if await lines("late-local") == ["first first", "first second"]:
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError(f"the rotated Secret did not reach node-local's process: {await lines('late-local')}")
        # The virtual node's process had the same chances (several re-sync periods
        # after node-local saw the new Secret) and still sees only the first token.
        await asyncio.sleep(3 * SECRET_RESYNC_SECONDS)
        assert await lines("late") == ["first first"]
    finally:
        try:
            await hub_kube.core.delete_namespaced_secret("late", "jhub")
        except ApiException as e:  # not created: keep the test's own failure visible
            if e.status != 404:
                raise


def cluster_pod_home(log: Path) -> Path:
    """The pod's HOME: <state>/pods/<same name as its log>/home (see testbed.virtual_kubelet)."""
    return log.parent.parent / "pods" / log.stem / "home"


SERVE = [sys.executable, "-m", "http.server", "8080", "--bind", "$(POD_IP)"]
POD_IP_ENV = [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]


async def test_pods_get_their_own_ip_and_deleting_kills_the_process(admin, hub_kube):
    for name, node in (("web-a", "vk-docker"), ("web-b", "node-local")):
        body = pod(name, SERVE, node=node, container={"env": POD_IP_ENV, "ports": [{"containerPort": 8080}]})
        if node == "node-local":
            del body["spec"]["tolerations"]
        await hub_kube.create_pod(body)
    running = {}
    for name in ("web-a", "web-b"):
        running[name] = await admin.wait_pod(name, phase_is("Running"), "Running", timeout=30)
    ips = {name: p["status"]["podIP"] for name, p in running.items()}
    assert len(set(ips.values())) == 2 and all(ip.startswith("127.0.") for ip in ips.values())
    for ip in ips.values():  # both listen on the same port, each on its own address
        for _ in range(50):
            try:
                r = await async_requests.get(f"http://{ip}:8080/", timeout=2)
                break
            except Exception:
                await asyncio.sleep(0.2)
        else:
            raise AssertionError(f"nothing listens on {ip}:8080")
        assert r.status_code == 200

    pid = int(running["web-a"]["metadata"]["annotations"][PID_ANNOTATION])
    assert pid_alive(pid)
    # A graceful delete (30 s grace by default) completes once the process is gone.
    await hub_kube.delete_pod("web-a")
    await admin.wait_pod("web-a", lambda p: p is None, "deleted", timeout=15)
    assert not pid_alive(pid)
    try:
        await async_requests.get(f"http://{ips['web-a']}:8080/", timeout=2)
    except Exception:
        pass
    else:
        raise AssertionError("web-a still answers after its pod was deleted")


async def test_a_queued_pod_waits_and_can_be_deleted_before_it_runs(admin, hub_kube):
    await hub_kube.create_pod(
        pod("queued", SERVE, node="vk-leonardo", container={"env": POD_IP_ENV}, annotations={QUEUE_ANNOTATION: "60"})
    )

    def queued(p: dict[str, Any] | None) -> bool:
        statuses = (p or {}).get("status", {}).get("containerStatuses") or []
        return bool(statuses) and statuses[0]["state"].get("waiting") == {}

    queued_pod = await admin.wait_pod("queued", queued, "queued (empty Waiting state)", timeout=15)
    assert queued_pod["status"]["phase"] == "Pending"
    assert not queued_pod["status"].get("podIP")
    await hub_kube.delete_pod("queued")
    await admin.wait_pod("queued", lambda p: p is None, "deleted", timeout=10)
