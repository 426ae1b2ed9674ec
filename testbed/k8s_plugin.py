"""The real interLink Kubernetes plugin, offloading into a second namespace of the test bed.

Why: an ``interlink-kubernetes`` target hands its pods to interLink's
Kubernetes plugin, which re-creates each pod (with its Secrets and ConfigMaps)
in a *remote* cluster. This module runs that chain with the real parts:
test-bed apiserver -> interLink's virtual kubelet (node ``vk-k8s``) ->
interLink API server -> the interlink-kubernetes-plugin (Python, FastAPI, run
from its own virtual environment that ``testbed/build_k8s_plugin.sh``
installs with Python >= 3.12) -> the "remote" cluster, which is the **same**
test-bed apiserver: the plugin puts the pod into namespace
``<namespace_prefix>-<source namespace>`` (``offload-remote-jhub`` for the hub
namespace; interlink-kubernetes-plugin
``src/app/services/kubernetes_plugin_service.py``, ``_scope_ns_name``) with
its name suffixed by the source pod's uid (``_scope_obj_name``).

The remote pod is pinned to the test bed's ordinary node ``node-local`` with
the plugin's own ``offloading.node_selector`` setting: the SDK's pod model
carries no nodeSelector or tolerations (interlink-plugin-sdk
``interlink/spec.py``, ``PodSpec``), so without it the scheduler could put the
pod anywhere. There the test bed's stand-in kubelet runs its first
container's command as a local process (see :mod:`testbed.virtual_kubelet`).

The plugin talks to the apiserver with the admin kubeconfig: it creates
namespaces, which needs cluster-wide rights, as it does on a real remote
cluster.
"""

from __future__ import annotations

import configparser
import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .controlplane import ControlPlane, log, run_build_script
from .interlink import InterlinkChain

HERE = Path(__file__).resolve().parent
BUILD_SCRIPT = HERE / "build_k8s_plugin.sh"
DEFAULT_NODE = "vk-k8s"
#: The plugin's ``offloading.namespace_prefix``: the remote namespace is ``<prefix>-<source namespace>``.
NAMESPACE_PREFIX = "offload-remote"
#: Where the plugin's pods run: the test bed's ordinary node.
REMOTE_NODE = "node-local"
#: What the plugin logs once per pod it is asked to create
#: (interlink-kubernetes-plugin ``src/app/services/kubernetes_plugin_service.py``, ``create_pod``).
CREATE_LOG_LINE = "Creating Pod"
#: Labels and annotations the plugin puts on what it creates in the remote cluster
#: (``_I_COMMON_LABELS``, ``_I_SRC_POD_UID_KEY``, ``_I_SRC_NAME_KEY`` in the same file).
OFFLOADED_LABEL = "interlink.io=offloading"
SOURCE_POD_UID_LABEL = "interlink.io/source.pod_uid"
SOURCE_NAME_ANNOTATION = "interlink.io/source.name"


def k8s_plugin_missing() -> str | None:
    """Why the Kubernetes plugin cannot be installed here, or None."""
    result = subprocess.run([str(BUILD_SCRIPT), "--check"], check=False, capture_output=True, text=True)
    if result.returncode != 0:
        return (result.stderr.strip() or "testbed/build_k8s_plugin.sh --check failed") + (
            " (see testbed/build_k8s_plugin.sh)"
        )
    return None


def ensure_k8s_plugin_installed(echo: Callable[[str], None] = log) -> Path:
    """Run ``build_k8s_plugin.sh`` (instant when cached, ~2-3 min cold); return its result dir."""
    return run_build_script(BUILD_SCRIPT, "k8s plugin", "--dir", echo)


def remote_namespace(source_namespace: str) -> str:
    """The namespace the plugin puts a pod of ``source_namespace`` into (``_scope_ns_name``)."""
    return f"{NAMESPACE_PREFIX}-{source_namespace}"


class KubernetesPluginStack(InterlinkChain):
    """interlink-kubernetes-plugin + interLink API server + virtual kubelet for node ``vk-k8s``
    (the API server and virtual kubelet wired as for every plugin, :class:`InterlinkChain`)."""

    def __init__(
        self,
        control_plane: ControlPlane,
        workdir: Path | str | None = None,
        *,
        node: str = DEFAULT_NODE,
        bin_dir: Path | None = None,
        plugin_dir: Path | None = None,
        keep: bool = False,
        echo: Callable[[str], None] = log,
    ) -> None:
        super().__init__(control_plane, workdir, node=node, bin_dir=bin_dir, keep=keep, echo=echo)
        self.plugin_dir = plugin_dir

    def _base_env(self) -> dict[str, str]:
        return {"PATH": "/usr/bin:/bin", "HOME": str(self.workdir)}

    def _start_plugin(self, plugin_port: int, base_env: dict[str, str]) -> dict[str, Any]:
        if self.plugin_dir is None:
            self.plugin_dir = ensure_k8s_plugin_installed(self.echo)
        w = self.workdir
        # The plugin reads an INI file (src/private/config.sample.ini lists the keys);
        # CONFIG_FILE_PATH points it elsewhere (src/app/common/config.py).
        ini = configparser.ConfigParser()
        ini.read_dict(
            {
                "app": {
                    "name": "interlink-kubernetes-plugin",
                    "description": "test bed",
                    "version": "testbed",
                    "api_versions": "v1",
                    "api_docs_path": "/docs",
                    "socket_address": "http://127.0.0.1",
                    "socket_port": str(plugin_port),
                },
                "log": {"level": "INFO", "rich_enabled": "False", "requests_enabled": "False"},
                "k8s": {"kubeconfig_path": str(self.control_plane.admin_kubeconfig)},
                "offloading": {
                    "namespace_prefix": NAMESPACE_PREFIX,
                    "node_selector": json.dumps({"kubernetes.io/hostname": REMOTE_NODE}),
                },
                "tcp_tunnel": {"enabled": "False"},
            }
        )
        plugin_config = w / "k8s-plugin.ini"
        with plugin_config.open("w") as f:
            ini.write(f)
        # Run from the copy of its src/: it imports ``main:app`` and reads ``app/templates`` relative to it.
        self._spawn(
            "k8s-plugin",
            [str(self.plugin_dir / "venv" / "bin" / "python"), "-m", "app.server"],
            {**base_env, "PYTHONUNBUFFERED": "1", "CONFIG_FILE_PATH": str(plugin_config)},
            cwd=self.plugin_dir / "src",
        )
        return {"CPU": "16", "Memory": "64Gi", "Pods": "100"}

    def pods_submitted(self) -> int:
        """How many pods the Kubernetes plugin was asked to create (its log says so once per pod)."""
        return self.log_text("k8s-plugin").count(CREATE_LOG_LINE)

    def versions(self) -> dict[str, str]:
        """Commits of the components (the two build stamps) and what the node reports."""
        stamp, node_info = self.build_stamp(), self.node_info()
        versions = {
            "interlink_commit": stamp.get("interlink", ""),
            "kubelet_version": str(node_info.get("kubeletVersion", "")),
        }
        assert self.plugin_dir is not None
        try:
            text = (self.plugin_dir / ".versions").read_text()
            stamp = dict(item.split("=", 1) for item in text.split() if "=" in item)
        except OSError:
            stamp = {}
        versions["kubernetes_plugin_commit"] = stamp.get("kubernetes-plugin", "")
        versions["plugin_sdk_commit"] = stamp.get("plugin-sdk", "")
        try:  # the interpreter the plugin's venv was made from (the plugin needs >= 3.12)
            cfg = (self.plugin_dir / "venv" / "pyvenv.cfg").read_text()
            versions["plugin_python"] = next(
                line.split("=", 1)[1].strip() for line in cfg.splitlines() if line.startswith("version")
            )
        except (OSError, StopIteration):
            versions["plugin_python"] = ""
        return versions


__all__ = [
    "DEFAULT_NODE",
    "NAMESPACE_PREFIX",
    "REMOTE_NODE",
    "KubernetesPluginStack",
    "ensure_k8s_plugin_installed",
    "k8s_plugin_missing",
    "remote_namespace",
]
