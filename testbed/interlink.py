"""The real interLink stack in front of the test bed's real SLURM cluster.

Why: production offloading goes test-bed apiserver -> interLink's virtual
kubelet (it registers the node, with interLink's labels and taint) ->
interLink API server -> the SLURM plugin -> ``sbatch``/``squeue``/``scancel``
-> slurmd runs the job. ``testbed/virtual_kubelet.py`` imitates that chain;
this module runs the chain itself, from the binaries
``testbed/build_interlink.sh`` builds from upstream sources (cached in
``~/.cache/offload-spawner/interlink``), on free 127.0.0.1 ports, with the
settings known to work on this machine:

* SLURM plugin (``SLURMCONFIGPATH``): the cluster's ``sbatch``/``squeue``/
  ``scancel``/``sinfo``, ``SingularityPath`` = ``testbed/singularity`` (the
  one stand-in on this path: no Apptainer/Singularity package exists here; it
  runs the container's command on the host, image ignored), ``ImagePrefix:
  docker://``, ``ExportPodData``, no flavors, probes off;
* interLink API server (``INTERLINKCONFIGPATH``): the plugin as its sidecar;
* virtual kubelet (``CONFIGPATH``, ``NODENAME``, ``KUBECONFIG``,
  ``KUBELET_URL``/``KUBELET_PORT``): ``DisableCSR`` (self-signed serving
  certificate), insecure HTTP to the API server, and ``Resources`` with
  ``nvidia.com/gpu`` model ``a100``. The plugin's ping then replaces the
  node's allocatable with SLURM's *free* resources (interlink-slurm-plugin
  ``Status.go``, the empty-request ping path), so a pod that does not fit
  stays Pending in Kubernetes (``FailedScheduling``).

Networking: the virtual kubelet gives every pod ``status.podIP`` 127.0.0.1
unless the pod carries ``interlink.eu/pod-ip`` (interLink
``pkg/virtualkubelet/virtualkubelet.go``, ``CreatePod``); the SLURM job runs on
this machine, so the hub reaches the single-user server at that address and
the server reaches the hub on loopback. No wstunnel shadow pod is involved.

The config files are JSON, which YAML parsers (the components read YAML)
accept as it is.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self

from .controlplane import VK_USER, ControlPlane, free_ports, log, run_build_script
from .kubeapi import KubeError
from .procs import ManagedProcess
from .slurm import GPU_COUNT, GPU_TYPE, SlurmCluster

HERE = Path(__file__).resolve().parent
BUILD_SCRIPT = HERE / "build_interlink.sh"
SINGULARITY_STAND_IN = HERE / "singularity"
DEFAULT_NODE = "vk-slurm"
#: What the SLURM plugin logs once per pod it is asked to create
#: (interlink-slurm-plugin/pkg/slurm/Create.go).
SUBMIT_LOG_LINE = "Slurm Sidecar: received Submit call"
#: What interLink's virtual kubelet needs beyond the test bed's virtual-kubelet
#: ClusterRole: it lists namespaces at start to re-adopt pods with a JobID
#: (``RetrievePodsFromCluster``) and requests ServiceAccount tokens for pods
#: that mount them (interLink pkg/virtualkubelet/virtualkubelet.go, execute.go).
EXTRA_RBAC_ROLE = "interlink-virtual-kubelet-extra"
EXTRA_RBAC_RULES: list[dict[str, Any]] = [
    {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": [""], "resources": ["serviceaccounts/token"], "verbs": ["create"]},
]


def interlink_sources_missing() -> str | None:
    """Why the interLink components cannot be had here, or None (built already, or
    their sources are at hand)."""
    bin_dir = subprocess.run([str(BUILD_SCRIPT), "--bin-dir"], check=False, capture_output=True, text=True)
    if bin_dir.returncode == 0 and all(
        (Path(bin_dir.stdout.strip()) / name).exists() for name in ("virtual-kubelet", "interlink", "slurm-plugin")
    ):
        return None
    result = subprocess.run([str(BUILD_SCRIPT), "--source-dir"], check=False, capture_output=True, text=True)
    if result.returncode != 0:
        return (
            "no interLink sources: set OFFLOAD_UPSTREAM_DIR to a folder holding interLink/, "
            "interLink-9ed14a4/ and interlink-slurm-plugin/ (see testbed/build_interlink.sh), "
            "or put ../shared/upstream beside the checkout"
        )
    return None


def ensure_interlink_built(echo: Callable[[str], None] = log) -> Path:
    """Run ``build_interlink.sh`` (instant when cached, a few minutes cold); return the bin dir."""
    return run_build_script(BUILD_SCRIPT, "interlink binaries", "--bin-dir", echo)


class InterlinkError(RuntimeError):
    pass


class InterlinkChain:
    """interLink API server + virtual kubelet for one node, in front of the plugin a
    subclass starts (``_start_plugin``): production runs one such pair per plugin."""

    def __init__(
        self,
        control_plane: ControlPlane,
        workdir: Path | str | None = None,
        *,
        node: str,
        bin_dir: Path | None = None,
        keep: bool = False,
        echo: Callable[[str], None] = log,
        kubelet: bool = True,
    ) -> None:
        """``kubelet=False``: the plugin and the API server only (``api_port``), no node."""
        self._own_workdir = workdir is None
        self.workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="offload-interlink-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.control_plane = control_plane
        self.node = node
        self.bin_dir = bin_dir
        self.keep = keep
        self.echo = echo
        self.processes: list[ManagedProcess] = []
        self.timings: dict[str, float] = {}
        self.kubelet = kubelet
        self.api_port = 0

    # --- lifecycle ---------------------------------------------------------------

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> Self:
        t0 = time.monotonic()
        try:
            if self.bin_dir is None:
                self.bin_dir = ensure_interlink_built(self.echo)
            self._start()
        except BaseException:
            for proc in self.processes:
                self.echo(f"== {proc.name} (log {proc.log_path}):\n{proc.tail(40)}")
            self.stop()
            raise
        self.timings["total"] = time.monotonic() - t0
        what = f"node {self.node} Ready" if self.kubelet else f"API server on port {self.api_port}, no node"
        self.echo(f"interlink stack ready in {self.timings['total']:.1f}s ({what})")
        return self

    def stop(self) -> None:
        """Stop the virtual kubelet, the API server and the plugin; delete the node."""
        t0 = time.monotonic()
        while self.processes:
            self.processes.pop().stop()
        with contextlib.suppress(OSError, AssertionError, KubeError):
            self.control_plane.admin().request("DELETE", f"/api/v1/nodes/{self.node}")
        if self._own_workdir and not self.keep:
            shutil.rmtree(self.workdir, ignore_errors=True)
        self.echo(f"interlink stack stopped in {time.monotonic() - t0:.1f}s")

    def _spawn(self, name: str, argv: list[str], env: dict[str, str], cwd: Path | None = None) -> ManagedProcess:
        proc = ManagedProcess(name, argv, self.workdir / f"{name}.log", env=env, cwd=cwd or self.workdir).start()
        self.processes.append(proc)
        return proc

    def _wait(self, what: str, check: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if check():
                    return
            except (OSError, KubeError):
                pass
            for proc in self.processes:
                if not proc.alive():
                    raise InterlinkError(f"{proc.name} exited while waiting for {what}:\n{proc.tail(40)}")
            if time.monotonic() > deadline:
                raise InterlinkError(f"timed out after {timeout:.0f}s waiting for {what}")
            time.sleep(0.5)

    def _write(self, name: str, config: dict[str, Any]) -> Path:
        path = self.workdir / name
        path.write_text(json.dumps(config, indent=2) + "\n")
        return path

    def _base_env(self) -> dict[str, str]:
        """The environment the plugin, API server and virtual kubelet start from."""
        return dict(os.environ)

    def _start_plugin(self, plugin_port: int, base_env: dict[str, str]) -> dict[str, Any]:
        """Start the plugin on ``plugin_port``; return the virtual kubelet's ``Resources``."""
        raise NotImplementedError

    def _start(self) -> None:
        assert self.bin_dir is not None
        w = self.workdir
        self._grant_rbac()
        plugin_port, api_port, kubelet_port = free_ports(3)
        base_env = self._base_env()
        for leaked in ("SIDECARPORT", "SIDECARURL", "INTERLINKURL", "INTERLINKPORT", "KUBECONFIG"):
            base_env.pop(leaked, None)
        resources = self._start_plugin(plugin_port, base_env)

        api_config = self._write(
            "InterLinkConfig.yaml",
            {
                "InterlinkAddress": "http://127.0.0.1",
                "InterlinkPort": str(api_port),
                "SidecarURL": "http://127.0.0.1",
                "SidecarPort": str(plugin_port),
                "VerboseLogging": True,
                "ErrorsOnlyLogging": False,
                "DataRootFolder": f"{w / 'interlink-data'}/",
            },
        )
        self._spawn(
            "interlink", [str(self.bin_dir / "interlink")], {**base_env, "INTERLINKCONFIGPATH": str(api_config)}
        )
        self.api_port = api_port
        if not self.kubelet:
            self._wait("the interLink API server listening", lambda: port_listening(api_port), 30)
            return

        vk_config = self._write(
            "VirtualKubeletConfig.yaml",
            {
                "InterlinkURL": "http://127.0.0.1",
                "InterlinkPort": str(api_port),
                "VerboseLogging": True,
                "ErrorsOnlyLogging": False,
                "ServiceAccount": "virtual-kubelet",
                "Namespace": "default",
                "DisableCSR": True,
                "HTTP": {"Insecure": True},
                "KubeletHTTP": {"Insecure": True},
                "Resources": resources,
            },
        )
        self._spawn(
            "virtual-kubelet",
            [str(self.bin_dir / "virtual-kubelet")],
            {
                **base_env,
                "CONFIGPATH": str(vk_config),
                "NODENAME": self.node,
                "KUBECONFIG": str(self.control_plane.virtual_kubelet_kubeconfig),
                "KUBELET_URL": "127.0.0.1",
                "KUBELET_PORT": str(kubelet_port),
                "POD_IP": "127.0.0.1",
            },
        )
        t = time.monotonic()
        self._wait(
            f"node {self.node} registered",
            lambda: self.control_plane.admin().request("GET", f"/api/v1/nodes/{self.node}")[0] == 200,
            60,
        )
        self.timings["registered"] = time.monotonic() - t
        # Ready only after the first ping (every 30 s; the SLURM plugin's also writes SLURM's free resources).
        self._wait(f"node {self.node} Ready", self.node_ready, 90)
        self.timings["ready"] = time.monotonic() - t

    def _grant_rbac(self) -> None:
        api, rbac = self.control_plane.admin(), "/apis/rbac.authorization.k8s.io/v1"
        api.ensure(
            f"{rbac}/clusterroles",
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRole",
                "metadata": {"name": EXTRA_RBAC_ROLE},
                "rules": EXTRA_RBAC_RULES,
            },
        )
        api.ensure(
            f"{rbac}/clusterrolebindings",
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": EXTRA_RBAC_ROLE},
                "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": VK_USER}],
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": EXTRA_RBAC_ROLE},
            },
        )

    # --- faults ------------------------------------------------------------------

    def _process(self, name: str) -> ManagedProcess:
        for proc in self.processes:
            if proc.name == name:
                return proc
        raise InterlinkError(f"{name} is not part of this stack (one of {', '.join(p.name for p in self.processes)})")

    def stop_component(self, name: str) -> None:
        """Stop one component (``interlink``, ``slurm-plugin`` or ``virtual-kubelet``),
        as a crash or a site outage would; the others keep running."""
        self._process(name).stop()
        self.echo(f"interlink stack: {name} stopped")

    def start_component(self, name: str) -> None:
        """Start a stopped component again with the same command line, config and port."""
        old = self._process(name)
        if old.alive():
            raise InterlinkError(f"{name} is running; stop it first")
        fresh = ManagedProcess(old.name, old.argv, old.log_path, env=old.env, cwd=old.cwd).start()
        self.processes[self.processes.index(old)] = fresh
        self.echo(f"interlink stack: {name} started again")

    def ping_failed(self) -> bool:
        """True once the virtual kubelet reported that it cannot reach the interLink
        API server: Ready False and condition ``InterlinkConnectivity`` False with
        reason ``InterlinkPingFailed`` (interLink pkg/virtualkubelet/virtualkubelet.go,
        ``nodeUpdate`` and ``NodeConditionWithInterlink``; it pings every 30 s)."""
        conditions = self.node_object().get("status", {}).get("conditions") or []
        by_type = {c.get("type"): c for c in conditions}
        link = by_type.get("InterlinkConnectivity") or {}
        return (by_type.get("Ready") or {}).get("status") == "False" and link.get("reason") == "InterlinkPingFailed"

    # --- state -------------------------------------------------------------------

    def node_object(self) -> dict[str, Any]:
        return self.control_plane.admin().call("GET", f"/api/v1/nodes/{self.node}")

    def node_ready(self) -> bool:
        conditions = self.node_object().get("status", {}).get("conditions") or []
        return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)

    def allocatable_cpu(self) -> str:
        return self.node_object()["status"]["allocatable"].get("cpu", "")

    def node_info(self) -> dict[str, Any]:
        try:
            info: dict[str, Any] = self.node_object()["status"].get("nodeInfo", {})
            return info
        except (OSError, KubeError, AssertionError):
            return {}

    def build_stamp(self) -> dict[str, str]:
        """Commits of the built components (``build_interlink.sh``'s stamp)."""
        assert self.bin_dir is not None
        try:
            text = (self.bin_dir / ".versions").read_text()
        except OSError:
            return {}
        return dict(item.split("=", 1) for item in text.split() if "=" in item)

    def log_text(self, name: str) -> str:
        try:
            return (self.workdir / f"{name}.log").read_text(errors="replace")
        except OSError:
            return ""


class InterlinkStack(InterlinkChain):
    """SLURM plugin + interLink API server + virtual kubelet for one node."""

    def __init__(
        self,
        control_plane: ControlPlane,
        slurm: SlurmCluster,
        workdir: Path | str | None = None,
        *,
        node: str = DEFAULT_NODE,
        bin_dir: Path | None = None,
        keep: bool = False,
        shared_fs: bool = False,
        echo: Callable[[str], None] = log,
    ) -> None:
        """``shared_fs``: run the SLURM plugin with ``SHARED_FS=true`` (its host and
        the compute nodes share a filesystem): the plugin then writes the pod's
        Secret and ConfigMap files into the job's directory itself. Without it this
        plugin version writes none: prepareMounts collects the files' writes in the
        package's ``prefix`` and produceSLURMScript empties ``prefix`` before
        writing the script (interlink-slurm-plugin/pkg/slurm/prepare.go), so the
        job's binds name files that do not exist."""
        super().__init__(control_plane, workdir, node=node, bin_dir=bin_dir, keep=keep, echo=echo)
        self.slurm = slurm
        self.shared_fs = shared_fs

    @property
    def data_root(self) -> Path:
        """Where the SLURM plugin keeps each pod's job script, env file and output."""
        return self.workdir / "jobs"

    def _base_env(self) -> dict[str, str]:
        return dict(self.slurm.env)

    def _start_plugin(self, plugin_port: int, base_env: dict[str, str]) -> dict[str, Any]:
        assert self.bin_dir is not None
        slurm = self.slurm
        self.data_root.mkdir(exist_ok=True)
        plugin_config = self._write(
            "SlurmConfig.yaml",
            {
                "SidecarPort": str(plugin_port),
                "Socket": "",
                "SbatchPath": slurm.command("sbatch"),
                "ScancelPath": slurm.command("scancel"),
                "SqueuePath": slurm.command("squeue"),
                "SinfoPath": slurm.command("sinfo"),
                "CommandPrefix": "",
                "ImagePrefix": "docker://",
                "SingularityPath": str(SINGULARITY_STAND_IN),
                "ExportPodData": True,
                "DataRootFolder": f"{self.data_root}/",
                "Namespace": "jhub",
                "Tsocks": False,
                "BashPath": "/bin/bash",
                "VerboseLogging": True,
                "ErrorsOnlyLogging": False,
                "EnableProbes": False,
            },
        )
        self._spawn(
            "slurm-plugin",
            [str(self.bin_dir / "slurm-plugin")],
            {**base_env, "SLURMCONFIGPATH": str(plugin_config), **({"SHARED_FS": "true"} if self.shared_fs else {})},
        )
        return {
            "CPU": str(slurm.cpus),
            "Memory": f"{slurm.memory_mb}Mi",
            "Pods": "100",
            "Accelerators": [{"ResourceType": "nvidia.com/gpu", "Model": GPU_TYPE, "Available": str(GPU_COUNT)}],
        }

    def pods_submitted(self) -> int:
        """How many pods the SLURM plugin was asked to create (its log says so once per pod)."""
        try:
            return (self.workdir / "slurm-plugin.log").read_text(errors="replace").count(SUBMIT_LOG_LINE)
        except OSError:
            return 0

    def versions(self) -> dict[str, str]:
        """Commits of the built components (the build stamp) and what the node reports."""
        stamp, node_info = self.build_stamp(), self.node_info()
        return {
            "interlink_commit": stamp.get("interlink", ""),
            "slurm_plugin_commit": stamp.get("slurm-plugin", ""),
            "interlink_module_for_plugin": stamp.get("interlink-pin", ""),
            "kubelet_version": str(node_info.get("kubeletVersion", "")),
        }

    def job_dirs(self) -> list[Path]:
        return [p for p in self.data_root.iterdir() if p.is_dir()] if self.data_root.exists() else []


def port_listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def job_id(pod: dict[str, Any]) -> str | None:
    """The job id the plugin answered, written back by the virtual kubelet (interLink
    ``pkg/virtualkubelet/execute.go``: the ``JobID`` annotation)."""
    return ((pod.get("metadata") or {}).get("annotations") or {}).get("JobID")


__all__ = [
    "DEFAULT_NODE",
    "InterlinkChain",
    "InterlinkStack",
    "ensure_interlink_built",
    "interlink_sources_missing",
    "job_id",
]
