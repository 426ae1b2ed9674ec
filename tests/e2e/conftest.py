"""End-to-end fixtures: a real Kubernetes control plane with interLink-style
virtual nodes (the ``testbed`` package), and real hubs spawning into it.

Nothing here mocks Kubernetes: the hub's OffloadSpawner talks to a real
kube-apiserver with the hub ServiceAccount's token (Zero-to-JupyterHub's hub
Role only), the real kube-scheduler places the pods, kube-controller-manager
garbage-collects, and the test bed's virtual kubelet runs each pod's command
(the real ``jupyterhub-singleuser``) as a local process on its own loopback IP.

Set ``OFFLOAD_TESTBED_KEEP=1`` to keep the test bed's work directory (component
logs, and each pod's process log under ``virtual-kubelet/logs``).

Shared state that needs care:

* tests/conftest.py points KUBECONFIG at an offline dummy before
  kubernetes_asyncio is imported, which freezes it into
  ``kube_config.KUBE_CONFIG_DEFAULT_LOCATION``; KubeSpawner's ``load_config``
  (lru_cached, called when a spawner is constructed) loads that default. The
  ``kubespawner_kubeconfig`` fixture repoints the default at the hub
  kubeconfig and clears the cache, and puts both back afterwards.
* KubeSpawner's pod/event reflectors are class-level and bound to the event
  loop of the hub that started them; every hub here is stopped (servers,
  then reflectors) before the next one starts, and the shared client cache
  is cleared.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import kubespawner.clients
import pytest
from jupyterhub.tests.utils import api_request, async_requests, public_url
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException
from kubernetes_asyncio.config import kube_config
from kubespawner import KubeSpawner

import stack_report
import testbed_summary
from hub_fixtures import HubClient
from offload_spawner.identity.server_secret import ACCESS_TOKEN_KEY, HUB_TOKEN_KEY, secret_name
from testbed import LocalCluster
from testbed.controlplane import free_ports
from testbed.htcondor import HTCondorStack, htcondor_plugin_missing
from testbed.interlink import DEFAULT_NODE, InterlinkStack, interlink_sources_missing
from testbed.k8s_plugin import KubernetesPluginStack, k8s_plugin_missing
from testbed.slurm import SlurmCluster, slurm_missing

NAMESPACE = "jhub"
SINGLEUSER = str(Path(sys.executable).with_name("jupyterhub-singleuser"))


def _echo(message: str) -> None:
    testbed_summary.MESSAGES.append(message)
    print(f"testbed: {message}", file=sys.stderr, flush=True)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.e2e)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """In a pytest-xdist worker, hand what the test bed said (start and stop times)
    and this worker's stack tally to the controller
    (tests/conftest.py), which prints and writes them for the run. Last, after
    the session's fixtures (the test bed) were torn down."""
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["testbed_messages"] = testbed_summary.MESSAGES
        if _TALLY["components"]:
            workeroutput["stack_report"] = _TALLY


@pytest.fixture(scope="session")
def cluster() -> Iterator[LocalCluster]:
    """The test bed: control plane + default nodes + virtual kubelet, for the whole session."""
    bed = LocalCluster(keep=os.environ.get("OFFLOAD_TESTBED_KEEP") == "1", echo=_echo)
    bed.start()
    try:
        yield bed
    finally:
        bed.stop()


@pytest.fixture(scope="session")
def interlink_stack(cluster: LocalCluster) -> Iterator[InterlinkStack]:
    """A real SLURM cluster and the real interLink stack (virtual kubelet, API server,
    SLURM plugin with ``SHARED_FS=true``, as the jobs run on this machine) registering node ``vk-slurm`` on the test bed. Started once, by the
    first test that asks for it (~30 s until the virtual kubelet's first ping), and
    kept for the rest of the session: tests that list the test bed's nodes leave
    ``vk-slurm`` out (``nodes_of_the_test_bed``). Writes what went through it to
    build/e2e-stack.json when it stops."""
    why = slurm_missing() or interlink_sources_missing()
    if why:
        pytest.skip(why)
    keep = os.environ.get("OFFLOAD_TESTBED_KEEP") == "1"
    workdir = cluster.control_plane.workdir
    slurm = SlurmCluster(workdir / "slurm", keep=keep, echo=_echo).start()
    try:
        stack = InterlinkStack(
            cluster.control_plane, slurm, workdir / "interlink", keep=keep, shared_fs=True, echo=_echo
        ).start()
    except BaseException:
        slurm.stop()
        raise
    try:
        yield stack
    finally:
        try:
            write_stack_report(cluster, stack)
        finally:
            stack.stop()
            slurm.stop()


@pytest.fixture(scope="module")
def htcondor_stack(cluster: LocalCluster) -> Iterator[HTCondorStack]:
    """The real interLink HTCondor plugin (upstream handles.py) behind its own interLink
    API server and virtual kubelet (node ``vk-htcondor``), with the test bed's HTCondor
    stand-ins (testbed/condor), for one test module. Adds what went through it to
    build/e2e-stack.json when it stops."""
    why = htcondor_plugin_missing() or interlink_sources_missing()
    if why:
        pytest.skip(why)
    yield from _run_module_stack(cluster, HTCondorStack, "htcondor")


@pytest.fixture
async def dask_scheduler() -> AsyncIterator[int]:
    """A real ``dask scheduler`` on loopback, for offloaded workers to join; yields its port."""
    (port,) = free_ports(1)
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).with_name("dask")),
        "scheduler",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-dashboard",
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield port
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 15)


@contextlib.asynccontextmanager
async def server_token_secret(admin: Kube, server_pod: str, tokens: dict[str, str] | None = None) -> AsyncIterator[str]:
    """The per-server Secret an offloaded Dask worker's tokens are referenced from, as
    the hub makes it for ``server_pod``, holding ``tokens`` (by default placeholders:
    a worker that only needs the keys to be there); yields its name and deletes it."""
    name = secret_name(server_pod)
    tokens = tokens or {HUB_TOKEN_KEY: "not-a-real-token", ACCESS_TOKEN_KEY: "x"}
    await admin.core.create_namespaced_secret(NAMESPACE, {"metadata": {"name": name}, "stringData": tokens})
    try:
        yield name
    finally:
        await admin.core.delete_namespaced_secret(name, NAMESPACE)


def server_on_a_local_job() -> dict[str, Any]:
    """Spawner settings for servers that run as jobs of this machine's SLURM: interLink's
    virtual kubelet reports pod IP 127.0.0.1 for them (``interlink.eu/pod-ip`` unset), so
    each listens there on a port no other process uses; a job starts in seconds, the
    server's first answer may take longer on a loaded machine."""
    (port,) = free_ports(1)
    return {"port": port, "ip": "127.0.0.1", "http_timeout": 120}


def nodes_of_the_test_bed(names: Iterable[str]) -> set[str]:
    """The test bed's own nodes among ``names``: without the real interLink stack's
    node, which is there once a test of this session has started the stack."""
    return set(names) - {DEFAULT_NODE}


#: This process's tally for build/e2e-stack.json (tests/stack_report.py).
_TALLY: dict[str, Any] = stack_report.empty()


def write_stack_report(cluster: LocalCluster, stack: InterlinkStack | HTCondorStack | KubernetesPluginStack) -> None:
    """Add each component that ran, with its version or commit, and what went through
    each plugin to this process's tally; write the report when no pytest-xdist
    controller does it for the run."""
    components = _TALLY["components"]
    admin = cluster.control_plane.admin()
    versions = stack.versions()
    components.update(
        {
            "kube-apiserver": {"version": admin.call("GET", "/version").get("gitVersion", "")},
            "interlink-virtual-kubelet": {"commit": versions["interlink_commit"]},
            "interlink-api-server": {"commit": versions["interlink_commit"]},
        }
    )
    if isinstance(stack, KubernetesPluginStack):
        components["interlink-kubernetes-plugin"] = {
            "commit": versions["kubernetes_plugin_commit"],
            "plugin_sdk": versions["plugin_sdk_commit"],
            "python": versions["plugin_python"],
        }
        _TALLY["pods"]["kubernetes-plugin"] += stack.pods_submitted()
    else:
        components["singularity"] = {"stand_in": "testbed/singularity (runs the container's command on the host)"}
    if isinstance(stack, HTCondorStack):
        components["interlink-htcondor-plugin"] = {
            "commit": versions["htcondor_plugin_commit"],
            "source": "handles.py unmodified, served by testbed/htcondor_plugin.py "
            "(--created-as-ok: create's 201 answered as 200)",
        }
        components["htcondor"] = {
            "stand_in": "testbed/condor (condor_submit, condor_q, condor_history, "
            "condor_rm: run the job on this host, HTCondor's JobStatus codes)"
        }
        _TALLY["pods"]["htcondor-plugin"] += stack.pods_submitted()
        for key, count in stack.job_counts().items():
            _TALLY["htcondor_jobs"][key] += count
    elif isinstance(stack, InterlinkStack):
        components["interlink-slurm-plugin"] = {
            "commit": versions["slurm_plugin_commit"],
            "interlink_module": versions["interlink_module_for_plugin"],
        }
        components["slurmctld"] = {"version": stack.slurm.version()}
        _TALLY["pods"]["slurm-plugin"] += stack.pods_submitted()
        jobs = stack.slurm.job_counts()
        for key in ("submitted", "finished"):
            _TALLY["slurm_jobs"][key] += jobs[key]
    if os.environ.get("PYTEST_XDIST_WORKER"):
        _echo(f"stack tally of worker {os.environ['PYTEST_XDIST_WORKER']}: pods {json.dumps(_TALLY['pods'])}")
    else:
        _echo(stack_report.write(_TALLY))


@pytest.fixture(scope="module")
def k8s_plugin_stack(cluster: LocalCluster) -> Iterator[KubernetesPluginStack]:
    """The real interLink Kubernetes plugin behind its own interLink API server and
    virtual kubelet (node ``vk-k8s``), offloading into namespace ``offload-remote-<ns>``
    of the same test bed, for one test module. Adds the pods that went through it to
    build/e2e-stack.json when it stops."""
    why = k8s_plugin_missing() or interlink_sources_missing()
    if why:
        pytest.skip(why)
    yield from _run_module_stack(cluster, KubernetesPluginStack, "k8s-plugin")


def _run_module_stack(
    cluster: LocalCluster, kind: type[HTCondorStack] | type[KubernetesPluginStack], workdir: str
) -> Iterator[Any]:
    """Start one more plugin's chain on the test bed for a test module; add what went
    through it to build/e2e-stack.json and stop it afterwards."""
    keep = os.environ.get("OFFLOAD_TESTBED_KEEP") == "1"
    stack = kind(cluster.control_plane, cluster.control_plane.workdir / workdir, keep=keep, echo=_echo).start()
    try:
        yield stack
    finally:
        try:
            write_stack_report(cluster, stack)
        finally:
            stack.stop()


# --- Kubernetes API clients (kubernetes_asyncio, JSON dicts) ------------------------


class Kube:
    """A thin async client returning plain JSON dicts (camelCase, as kubectl shows them)."""

    def __init__(self, api: client.ApiClient) -> None:
        self.api = api
        self.core = client.CoreV1Api(api)

    @staticmethod
    async def _json(response: Any) -> Any:
        """Decode a ``_preload_content=False`` answer (which does not raise on HTTP errors)."""
        if response.status >= 400:
            raise ApiException(status=response.status, reason=await response.text())
        return json.loads(await response.read())

    async def _maybe(self, call: Any, *args: Any) -> dict[str, Any] | None:
        try:
            return await self._json(await call(*args, _preload_content=False))
        except ApiException as e:
            if e.status == 404:
                return None
            raise

    async def pod(self, name: str, namespace: str = NAMESPACE) -> dict[str, Any] | None:
        return await self._maybe(self.core.read_namespaced_pod, name, namespace)

    async def pods(self, namespace: str = NAMESPACE, label_selector: str = "") -> list[dict[str, Any]]:
        response = await self.core.list_namespaced_pod(namespace, label_selector=label_selector, _preload_content=False)
        return (await self._json(response))["items"]

    async def create_pod(self, body: dict[str, Any], namespace: str = NAMESPACE) -> dict[str, Any]:
        return await self._json(await self.core.create_namespaced_pod(namespace, body, _preload_content=False))

    async def delete_pod(self, name: str, namespace: str = NAMESPACE, grace: int | None = None) -> None:
        try:
            await self.core.delete_namespaced_pod(name, namespace, grace_period_seconds=grace)
        except ApiException as e:
            if e.status != 404:
                raise

    async def secret(self, name: str, namespace: str = NAMESPACE) -> dict[str, Any] | None:
        return await self._maybe(self.core.read_namespaced_secret, name, namespace)

    async def wait_pod(
        self,
        name: str,
        until: Callable[[dict[str, Any] | None], bool],
        what: str,
        timeout: float = 30,
        namespace: str = NAMESPACE,
    ) -> dict[str, Any] | None:
        """Poll the pod until ``until(pod)`` (pod is None once deleted)."""
        deadline = time.monotonic() + timeout
        while True:
            pod = await self.pod(name, namespace)
            if until(pod):
                return pod
            if time.monotonic() > deadline:
                raise AssertionError(f"pod {namespace}/{name}: not {what} after {timeout}s: {json.dumps(pod)[:3000]}")
            await asyncio.sleep(0.2)


async def _kube_from(path: Path) -> client.ApiClient:
    configuration = client.Configuration()
    await config.load_kube_config(config_file=str(path), client_configuration=configuration)
    return client.ApiClient(configuration)


@pytest.fixture
async def admin(cluster: LocalCluster) -> AsyncIterator[Kube]:
    """Cluster-admin client, for looking at what happened (never used by the hub)."""
    api = await _kube_from(cluster.control_plane.admin_kubeconfig)
    async with api:
        yield Kube(api)


@pytest.fixture
async def hub_kube(cluster: LocalCluster) -> AsyncIterator[Kube]:
    """A client with the hub's identity (ServiceAccount jhub/hub, Z2JH hub Role)."""
    api = await _kube_from(cluster.control_plane.hub_kubeconfig)
    async with api:
        yield Kube(api)


@pytest.fixture(autouse=True)
def _clean_namespace(cluster: LocalCluster) -> Iterator[None]:
    """Every e2e test starts and ends with no pods left in the hub namespace."""
    yield
    admin = cluster.control_plane.admin()
    for pod in admin.call("GET", f"/api/v1/namespaces/{NAMESPACE}/pods")["items"]:
        admin.request("DELETE", f"/api/v1/namespaces/{NAMESPACE}/pods/{pod['metadata']['name']}")
    deadline = time.monotonic() + 30
    while admin.call("GET", f"/api/v1/namespaces/{NAMESPACE}/pods")["items"]:
        assert time.monotonic() < deadline, "pods left in jhub 30s after the test"
        time.sleep(0.2)


# --- hubs whose OffloadSpawner talks to the test bed ---------------------------------


@pytest.fixture(scope="module")
def kubespawner_kubeconfig(cluster: LocalCluster) -> Iterator[Path]:
    """Make KubeSpawner load the hub kubeconfig, as a hub with KUBECONFIG set would."""
    previous = kube_config.KUBE_CONFIG_DEFAULT_LOCATION
    kube_config.KUBE_CONFIG_DEFAULT_LOCATION = str(cluster.control_plane.hub_kubeconfig)
    kubespawner.clients.load_config.cache_clear()
    try:
        yield cluster.control_plane.hub_kubeconfig
    finally:
        kube_config.KUBE_CONFIG_DEFAULT_LOCATION = previous
        kubespawner.clients.load_config.cache_clear()
        kubespawner.clients._client_cache.clear()


class E2EHub(HubClient):
    """HubClient plus what the e2e tests need: tokens, the proxy, the user's pod."""

    async def token(self, user: str) -> str:
        r = await api_request(self.app, "users", user, "tokens", method="post", data=json.dumps({"note": "e2e"}))
        assert r.status_code == 201, r.text
        return r.json()["token"]

    async def via_proxy(self, user: str, path: str, token: str) -> Any:
        """GET a path of the user's server through configurable-http-proxy."""
        url = public_url(self.app, self.app.users[user]) + path
        return await async_requests.get(url, headers={"Authorization": f"token {token}"}, allow_redirects=False)

    async def wait_stopped(self, user: str, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            model = await self.api_user(user)
            if not model["servers"]:
                return model
            assert time.monotonic() < deadline, f"{user}'s server did not stop: {model}"
            await asyncio.sleep(0.2)

    async def wait_spawn_failed(self, user: str, timeout: float) -> dict[str, Any]:
        """Wait until the user's pending spawn is over without a ready server."""
        deadline = time.monotonic() + timeout
        while True:
            model = await self.api_user(user)
            server = model["servers"].get("")
            if not server:
                return model
            assert not server["ready"], f"{user}'s server became ready: {server}"
            assert time.monotonic() < deadline, f"{user}'s spawn still pending after {timeout}s: {model}"
            await asyncio.sleep(0.5)

    def pod_name(self, user: str) -> str:
        return self.app.users[user].spawner.pod_name


async def _stop_servers(hub: E2EHub) -> None:
    for user in list(hub.app.users.values()):
        for name, spawner in list(user.spawners.items()):
            if spawner.active or spawner.pending:
                try:
                    await asyncio.wait_for(user.stop(name), timeout=30)
                except Exception as e:  # report, keep cleaning
                    print(f"e2e: stopping {user.name}'s server failed: {e!r}", file=sys.stderr)


@pytest.fixture
async def spawn_hub(
    hub_app: Any, requires_chp: None, kubespawner_kubeconfig: Path, tmp_path: Path
) -> AsyncIterator[Callable[..., Any]]:
    """Factory: a real hub (MockHub + configurable-http-proxy) whose spawner is the real
    OffloadSpawner in namespace jhub, running ``jupyterhub-singleuser`` from this env."""
    from offload_spawner.hub.spawner import OffloadSpawner

    KubeSpawner.reflectors.clear()  # any left from another loop are dead
    hubs: list[E2EHub] = []

    async def start(
        spawner_config: dict[str, Any],
        groups: dict[str, list[str]],
        users: tuple[str, ...],
        hub_config: dict[str, Any] | None = None,
    ) -> E2EHub:
        """``hub_config``: more config sections (e.g. an authenticator's), merged in."""
        settings = {
            "namespace": NAMESPACE,
            "cmd": [SINGLEUSER],
            # The virtual kubelet runs processes as this user; Jupyter refuses root without it.
            "args": ["--allow-root"] if os.geteuid() == 0 else [],
            "start_timeout": 60,
            "http_timeout": 60,
            **spawner_config,
        }
        config: dict[str, Any] = {
            "JupyterHub": {"spawner_class": OffloadSpawner},
            "OffloadSpawner": settings,
            # JupyterHub kills the proxy named in an existing pid file: never share the default one
            # (./jupyterhub-proxy.pid) with another test run in the same directory.
            "ConfigurableHTTPProxy": {"pid_file": str(tmp_path / "proxy.pid")},
        }
        for section, values in (hub_config or {}).items():
            config.setdefault(section, {}).update(values)
        app = await hub_app(config=config)
        hub = E2EHub(app)
        hubs.append(hub)
        for user in users:
            await hub.login(user)
        await hub.set_groups(groups)
        return hub

    yield start
    for hub in hubs:
        await _stop_servers(hub)
    await KubeSpawner._stop_all_reflectors()
    kubespawner.clients._client_cache.clear()
