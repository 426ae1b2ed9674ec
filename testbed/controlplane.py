"""A real Kubernetes control plane on loopback, for tests and the demo.

Why: the spawner's promises (a pod lands on the right interLink virtual node,
a pod without the toleration never does, the Zero-to-JupyterHub hub Role is
enough, owned Secrets are garbage-collected) are made by kube-apiserver,
kube-scheduler and kube-controller-manager, not by the spawner; only the real
components can check them. This module runs etcd, kube-apiserver (TLS,
client-certificate and ServiceAccount-token authentication, ``Node,RBAC``
authorization), kube-controller-manager (garbage collector, ServiceAccount and
node-lifecycle controllers) and kube-scheduler from the binaries
``testbed/build.sh`` builds, on free 127.0.0.1 ports, and bootstraps:

* namespace ``jhub`` with ServiceAccount ``hub`` bound to the Role the
  Zero-to-JupyterHub chart gives its hub (pods, persistentvolumeclaims,
  secrets, services: get/watch/list/create/delete; events: get/watch/list);
  ``hub.kubeconfig`` authenticates as that ServiceAccount (a TokenRequest
  token), so whatever the hub does in the tests, that Role allowed;
* the optional ClusterRole ``offload-spawner-nodes`` (nodes get/list/watch,
  pods list/watch), bound only on request (:meth:`ControlPlane.bind_node_reader`);
* an identity for the virtual kubelet (``virtual-kubelet.kubeconfig``) with a
  ClusterRole like the one interLink's chart gives its virtual kubelet;
* ``admin.kubeconfig`` (``system:masters``) for the test code itself.

Nothing listens beyond loopback; :meth:`ControlPlane.stop` stops the
components in reverse order and removes the work directory.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .kubeapi import KubeError, KubeRest, write_kubeconfig
from .pki import Pki
from .procs import ManagedProcess

HERE = Path(__file__).resolve().parent
BUILD_SCRIPT = HERE / "build.sh"
SERVICE_CIDR = "10.0.0.0/24"
HUB_NAMESPACE = "jhub"
HUB_SERVICE_ACCOUNT = "hub"
NODE_READER_ROLE = "offload-spawner-nodes"
VK_USER = "testbed-virtual-kubelet"

#: What the Zero-to-JupyterHub chart's hub Role grants (templates/hub/rbac.yaml).
Z2JH_HUB_RULES: list[dict[str, Any]] = [
    {
        "apiGroups": [""],
        "resources": ["pods", "persistentvolumeclaims", "secrets", "services"],
        "verbs": ["get", "watch", "list", "create", "delete"],
    },
    {"apiGroups": [""], "resources": ["events"], "verbs": ["get", "watch", "list"]},
]

#: Optional extra for reading virtual-node capacity and usage.
NODE_READER_RULES: list[dict[str, Any]] = [
    {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["list", "watch"]},
]

#: What a virtual kubelet needs (modelled on interLink's Helm chart).
VIRTUAL_KUBELET_RULES: list[dict[str, Any]] = [
    {
        "apiGroups": [""],
        "resources": ["nodes"],
        "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"],
    },
    {"apiGroups": [""], "resources": ["nodes/status"], "verbs": ["get", "update", "patch"]},
    {
        "apiGroups": ["coordination.k8s.io"],
        "resources": ["leases"],
        "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"],
    },
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch", "update", "patch", "delete"]},
    {"apiGroups": [""], "resources": ["pods/status"], "verbs": ["get", "update", "patch"]},
    {"apiGroups": [""], "resources": ["secrets", "configmaps", "serviceaccounts"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": ["", "events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch", "update"]},
]


def log(message: str) -> None:
    print(f"testbed: {message}", file=sys.stderr, flush=True)


def run_build_script(script: Path, ready: str, result_flag: str, echo: Callable[[str], None] = log) -> Path:
    """Run one of the test bed's build scripts (instant when cached; each waits on
    its lock for a build already under way), pass on what it printed, say how long
    it took; return the folder the script names when asked with ``result_flag``."""
    start = time.monotonic()
    result = subprocess.run([str(script)], capture_output=True, text=True, check=False)
    for line in (result.stdout + result.stderr).splitlines():
        echo(line.removeprefix("testbed: "))
    if result.returncode != 0:
        raise RuntimeError(f"{script} failed with exit code {result.returncode}")
    echo(f"{ready} ready in {time.monotonic() - start:.1f}s")
    return Path(subprocess.run([str(script), result_flag], capture_output=True, text=True, check=True).stdout.strip())


def ensure_built(echo: Callable[[str], None] = log) -> Path:
    """Run ``build.sh`` (instant when cached, ~6.5 min cold on 2 cores); return the bin dir."""
    return run_build_script(BUILD_SCRIPT, "binaries", "--bin-dir", echo)


def free_ports(count: int) -> list[int]:
    """``count`` distinct free TCP ports on 127.0.0.1 (a tiny race is acceptable here)."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class ControlPlaneError(RuntimeError):
    pass


class ControlPlane:
    """etcd + kube-apiserver + kube-controller-manager + kube-scheduler on loopback.

    Use as a context manager or call :meth:`start` / :meth:`stop`. ``workdir``
    (default: a new temporary directory, removed on stop unless ``keep``)
    holds certificates, kubeconfigs, etcd data and one log file per component.
    """

    def __init__(
        self,
        workdir: Path | str | None = None,
        *,
        bin_dir: Path | None = None,
        namespace: str = HUB_NAMESPACE,
        keep: bool = False,
        echo: Callable[[str], None] = log,
    ) -> None:
        self._own_workdir = workdir is None
        self.workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="offload-testbed-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.bin_dir = bin_dir
        self.namespace = namespace
        self.keep = keep
        self.echo = echo
        self.processes: list[ManagedProcess] = []
        self.timings: dict[str, float] = {}
        self.server = ""
        self.hub_token = ""
        self._admin: KubeRest | None = None

    # --- paths -------------------------------------------------------------

    @property
    def ca_file(self) -> Path:
        return self.workdir / "pki" / "ca.crt"

    @property
    def admin_kubeconfig(self) -> Path:
        return self.workdir / "admin.kubeconfig"

    @property
    def hub_kubeconfig(self) -> Path:
        return self.workdir / "hub.kubeconfig"

    @property
    def virtual_kubelet_kubeconfig(self) -> Path:
        return self.workdir / "virtual-kubelet.kubeconfig"

    def admin(self) -> KubeRest:
        """A synchronous client with cluster-admin rights (for test set-up and checks)."""
        assert self._admin is not None, "control plane not started"
        return self._admin

    def hub(self) -> KubeRest:
        """A synchronous client with the hub's identity (ServiceAccount jhub/hub)."""
        return KubeRest(self.server, self.ca_file, token=self.hub_token)

    # --- lifecycle -----------------------------------------------------------

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> ControlPlane:
        t0 = time.monotonic()
        try:
            if self.bin_dir is None:
                self.bin_dir = ensure_built(self.echo)
            self._start()
        except BaseException:
            self._dump_logs()
            self.stop()
            raise
        self.timings["total"] = time.monotonic() - t0
        phases = ", ".join(f"{k} {v:.1f}s" for k, v in self.timings.items() if k != "total")
        self.echo(f"control plane ready in {self.timings['total']:.1f}s ({phases}) at {self.server}")
        return self

    def stop(self) -> None:
        """Stop the components in reverse start order (the apiserver still has etcd while it
        shuts down), then remove the work directory unless ``keep``."""
        t0 = time.monotonic()
        while self.processes:
            proc = self.processes.pop()
            proc.stop()
        if self._own_workdir and not self.keep:
            shutil.rmtree(self.workdir, ignore_errors=True)
        self.echo(f"control plane stopped in {time.monotonic() - t0:.1f}s")

    def _phase(self, name: str, t0: float) -> float:
        now = time.monotonic()
        self.timings[name] = now - t0
        return now

    def _spawn(self, name: str, argv: list[str]) -> ManagedProcess:
        proc = ManagedProcess(name, argv, self.workdir / f"{name}.log", cwd=self.workdir).start()
        self.processes.append(proc)
        return proc

    def _wait(self, what: str, check: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if check():
                    return
            except (OSError, ssl.SSLError, KubeError):
                pass
            for proc in self.processes:
                if not proc.alive():
                    raise ControlPlaneError(
                        f"{proc.name} exited ({proc.popen.returncode if proc.popen else '?'}) "
                        f"while waiting for {what}:\n{proc.tail()}"
                    )
            if time.monotonic() > deadline:
                raise ControlPlaneError(f"timed out after {timeout:.0f}s waiting for {what}")
            time.sleep(0.2)

    def _start(self) -> None:
        assert self.bin_dir is not None
        bins = {
            name: str(self.bin_dir / name)
            for name in ("etcd", "kube-apiserver", "kube-scheduler", "kube-controller-manager")
        }
        etcd_port, etcd_peer, api_port, sched_port, kcm_port = free_ports(5)
        self.server = f"https://127.0.0.1:{api_port}"
        w = self.workdir

        t = time.monotonic()
        pki = Pki(w / "pki")
        serving = pki.issue(
            "apiserver",
            "kube-apiserver",
            server=True,
            dns_names=(
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ),
            ip_addresses=("127.0.0.1", "10.0.0.1"),
        )
        admin = pki.issue("admin", "testbed-admin", ("system:masters",))
        scheduler = pki.issue("scheduler", "system:kube-scheduler")
        kcm = pki.issue("kcm", "system:kube-controller-manager")
        vk = pki.issue("virtual-kubelet", VK_USER)
        sa = pki.service_account_keys()
        write_kubeconfig(self.admin_kubeconfig, self.server, pki.ca.cert, "admin", client=admin)
        sched_kc = write_kubeconfig(w / "scheduler.kubeconfig", self.server, pki.ca.cert, "scheduler", client=scheduler)
        kcm_kc = write_kubeconfig(w / "kcm.kubeconfig", self.server, pki.ca.cert, "kcm", client=kcm)
        write_kubeconfig(self.virtual_kubelet_kubeconfig, self.server, pki.ca.cert, VK_USER, client=vk)
        self._admin = KubeRest(self.server, pki.ca.cert, client=admin)
        t = self._phase("pki", t)

        self._spawn(
            "etcd",
            [
                bins["etcd"],
                "--name",
                "testbed",
                "--data-dir",
                str(w / "etcd-data"),
                "--listen-client-urls",
                f"http://127.0.0.1:{etcd_port}",
                "--advertise-client-urls",
                f"http://127.0.0.1:{etcd_port}",
                "--listen-peer-urls",
                f"http://127.0.0.1:{etcd_peer}",
                "--initial-advertise-peer-urls",
                f"http://127.0.0.1:{etcd_peer}",
                "--initial-cluster",
                f"testbed=http://127.0.0.1:{etcd_peer}",
                "--initial-cluster-state",
                "new",
                "--unsafe-no-fsync",
                "--log-level",
                "warn",
            ],
        )
        self._wait(
            "etcd /health",
            lambda: (
                b'"health":"true"' in urllib.request.urlopen(f"http://127.0.0.1:{etcd_port}/health", timeout=2).read()
            ),
            30,
        )
        t = self._phase("etcd", t)

        self._spawn(
            "kube-apiserver",
            [
                bins["kube-apiserver"],
                "--etcd-servers",
                f"http://127.0.0.1:{etcd_port}",
                "--bind-address",
                "127.0.0.1",
                "--advertise-address",
                "127.0.0.1",
                "--secure-port",
                str(api_port),
                "--cert-dir",
                str(w / "apiserver-certs"),
                "--tls-cert-file",
                str(serving.cert),
                "--tls-private-key-file",
                str(serving.key),
                "--client-ca-file",
                str(pki.ca.cert),
                "--authorization-mode=Node,RBAC",
                "--anonymous-auth=false",
                "--service-account-issuer",
                "https://kubernetes.default.svc.cluster.local",
                "--service-account-key-file",
                str(sa.cert),
                "--service-account-signing-key-file",
                str(sa.key),
                "--service-cluster-ip-range",
                SERVICE_CIDR,
                "--endpoint-reconciler-type",
                "none",
                "--profiling=false",
            ],
        )
        self._wait("kube-apiserver /readyz", lambda: self.admin().request("GET", "/readyz")[0] == 200, 90)
        t = self._phase("apiserver", t)

        ca = str(pki.ca.cert)
        self._spawn(
            "kube-controller-manager",
            [
                bins["kube-controller-manager"],
                "--kubeconfig",
                str(kcm_kc),
                "--authentication-kubeconfig",
                str(kcm_kc),
                "--authorization-kubeconfig",
                str(kcm_kc),
                "--bind-address",
                "127.0.0.1",
                "--secure-port",
                str(kcm_port),
                "--cert-dir",
                str(w / "kcm-certs"),
                "--leader-elect=false",
                "--use-service-account-credentials",
                "--service-account-private-key-file",
                str(sa.key),
                "--root-ca-file",
                ca,
                "--cluster-signing-cert-file",
                ca,
                "--cluster-signing-key-file",
                str(pki.ca.key),
                "--service-cluster-ip-range",
                SERVICE_CIDR,
            ],
        )
        self._spawn(
            "kube-scheduler",
            [
                bins["kube-scheduler"],
                "--kubeconfig",
                str(sched_kc),
                "--authentication-kubeconfig",
                str(sched_kc),
                "--authorization-kubeconfig",
                str(sched_kc),
                "--bind-address",
                "127.0.0.1",
                "--secure-port",
                str(sched_port),
                "--cert-dir",
                str(w / "scheduler-certs"),
                "--leader-elect=false",
            ],
        )
        self._bootstrap()
        insecure = ssl.create_default_context()
        insecure.check_hostname = False
        insecure.verify_mode = ssl.CERT_NONE
        for name, port in (("kube-controller-manager", kcm_port), ("kube-scheduler", sched_port)):
            url = f"https://127.0.0.1:{port}/healthz"
            self._wait(
                f"{name} /healthz",
                lambda url=url: urllib.request.urlopen(url, context=insecure, timeout=2).read() == b"ok",
                60,
            )
        # The ServiceAccount controller runs: pods can be admitted in the namespace.
        self._wait(
            f"ServiceAccount {self.namespace}/default",
            lambda: (
                self.admin().request("GET", f"/api/v1/namespaces/{self.namespace}/serviceaccounts/default")[0] == 200
            ),
            60,
        )
        self._phase("controllers", t)

    def _bootstrap(self) -> None:
        """Namespace, hub ServiceAccount + Z2JH Role, optional node-reader ClusterRole,
        the virtual kubelet's ClusterRole, and the hub kubeconfig."""
        api, ns = self.admin(), self.namespace
        rbac = "/apis/rbac.authorization.k8s.io/v1"
        api.ensure("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        api.ensure(
            f"/api/v1/namespaces/{ns}/serviceaccounts",
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": HUB_SERVICE_ACCOUNT}},
        )
        api.ensure(
            f"{rbac}/namespaces/{ns}/roles",
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": {"name": "hub"},
                "rules": Z2JH_HUB_RULES,
            },
        )
        api.ensure(
            f"{rbac}/namespaces/{ns}/rolebindings",
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": "hub"},
                "subjects": [{"kind": "ServiceAccount", "name": HUB_SERVICE_ACCOUNT, "namespace": ns}],
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "hub"},
            },
        )
        api.ensure(
            f"{rbac}/clusterroles",
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRole",
                "metadata": {"name": NODE_READER_ROLE},
                "rules": NODE_READER_RULES,
            },
        )
        api.ensure(
            f"{rbac}/clusterroles",
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRole",
                "metadata": {"name": VK_USER},
                "rules": VIRTUAL_KUBELET_RULES,
            },
        )
        api.ensure(
            f"{rbac}/clusterrolebindings",
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": VK_USER},
                "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": VK_USER}],
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": VK_USER},
            },
        )
        token_request = api.call(
            "POST",
            f"/api/v1/namespaces/{ns}/serviceaccounts/{HUB_SERVICE_ACCOUNT}/token",
            {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 86400}},
        )
        self.hub_token = token_request["status"]["token"]
        write_kubeconfig(
            self.hub_kubeconfig,
            self.server,
            self.ca_file,
            f"system:serviceaccount:{ns}:{HUB_SERVICE_ACCOUNT}",
            token=self.hub_token,
            namespace=ns,
        )

    # --- faults ------------------------------------------------------------------

    def _process(self, name: str) -> ManagedProcess:
        for proc in self.processes:
            if proc.name == name:
                return proc
        raise ControlPlaneError(f"{name} is not running in this control plane")

    def stop_apiserver(self) -> None:
        """Stop kube-apiserver (SIGTERM, as a node drain or a crash-looping pod would
        see it), leaving etcd and the controllers running: every client's requests
        and watches fail until :meth:`start_apiserver`."""
        self._process("kube-apiserver").stop()
        self.echo("kube-apiserver stopped")

    def start_apiserver(self, timeout: float = 90) -> None:
        """Start kube-apiserver again with the same command line: same port, the same
        certificates and ServiceAccount keys (tokens stay valid), the same etcd
        (every object is still there); return once it answers /readyz."""
        t0 = time.monotonic()
        self._start_again("kube-apiserver")
        self._wait(
            "kube-apiserver /readyz after a restart", lambda: self.admin().request("GET", "/readyz")[0] == 200, timeout
        )
        self.echo(f"kube-apiserver restarted, ready in {time.monotonic() - t0:.1f}s")

    def _start_again(self, name: str) -> ManagedProcess:
        old = self._process(name)
        if old.alive():
            raise ControlPlaneError(f"{name} is running; stop it first")
        fresh = ManagedProcess(old.name, old.argv, old.log_path, env=old.env, cwd=old.cwd).start()
        self.processes[self.processes.index(old)] = fresh
        return fresh

    def restart_controllers(self, timeout: float = 60) -> None:
        """Restart kube-scheduler and kube-controller-manager (same command lines) and wait
        for their /healthz. Why: kube-scheduler v1.35 that saw kube-apiserver restart under
        it has been seen here to log "Scheduler cache is corrupted" and schedule nothing
        more; tests that restart the API server leave fresh controllers to the next test."""
        insecure = ssl.create_default_context()
        insecure.check_hostname = False
        insecure.verify_mode = ssl.CERT_NONE
        for name in ("kube-scheduler", "kube-controller-manager"):
            self._process(name).stop()
            fresh = self._start_again(name)
            port = fresh.argv[fresh.argv.index("--secure-port") + 1]
            url = f"https://127.0.0.1:{port}/healthz"
            self._wait(
                f"{name} /healthz after a restart",
                lambda url=url: urllib.request.urlopen(url, context=insecure, timeout=2).read() == b"ok",
                timeout,
            )
        self.echo("kube-scheduler and kube-controller-manager restarted")

    def restart_apiserver(self, downtime: float = 0.0) -> None:
        """:meth:`stop_apiserver`, ``downtime`` seconds with no API server, :meth:`start_apiserver`."""
        self.stop_apiserver()
        time.sleep(downtime)
        self.start_apiserver()

    # --- optional RBAC -------------------------------------------------------

    def bind_node_reader(self) -> None:
        """Bind ClusterRole ``offload-spawner-nodes`` to the hub's ServiceAccount."""
        self.admin().ensure(
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": NODE_READER_ROLE},
                "subjects": [{"kind": "ServiceAccount", "name": HUB_SERVICE_ACCOUNT, "namespace": self.namespace}],
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": NODE_READER_ROLE},
            },
        )

    def unbind_node_reader(self) -> None:
        self.admin().call(
            "DELETE", f"/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/{NODE_READER_ROLE}", ok=(200, 202, 404)
        )

    # --- diagnostics -----------------------------------------------------------

    def _dump_logs(self) -> None:
        for proc in self.processes:
            self.echo(f"== {proc.name} (log {proc.log_path}):\n{proc.tail()}")

    def describe(self) -> dict[str, str]:
        """What a user of the test bed needs: server and kubeconfig paths."""
        return {
            "server": self.server,
            "admin kubeconfig": str(self.admin_kubeconfig),
            "hub kubeconfig": str(self.hub_kubeconfig),
            "virtual kubelet kubeconfig": str(self.virtual_kubelet_kubeconfig),
            "work dir": str(self.workdir),
        }


__all__ = ["ControlPlane", "ControlPlaneError", "ensure_built", "free_ports"]
