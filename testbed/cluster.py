"""The whole test bed in one object: control plane + nodes + virtual kubelet.

Why: the pytest fixture and ``python -m testbed up`` need the same thing —
a cluster whose nodes are schedulable and whose pods run — started and
stopped in the right order (virtual kubelet first on stop, so its processes
are gone before the API server that tracks them).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from .controlplane import ControlPlane, log
from .nodes import DEFAULT_NODES, NodeSpec
from .virtual_kubelet import VirtualKubeletProcess


class LocalCluster:
    """Start with :meth:`start` (or ``with LocalCluster() as cluster:``); stop with :meth:`stop`."""

    def __init__(
        self,
        workdir: Path | str | None = None,
        *,
        keep: bool = False,
        nodes: tuple[NodeSpec, ...] = DEFAULT_NODES,
        echo: Callable[[str], None] = log,
    ) -> None:
        self.control_plane = ControlPlane(workdir, keep=keep, echo=echo)
        self.nodes = nodes
        self.echo = echo
        self.virtual_kubelet: VirtualKubeletProcess | None = None
        self.timings: dict[str, float] = {}

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> LocalCluster:
        t0 = time.monotonic()
        cp = self.control_plane.start()
        try:
            t1 = time.monotonic()
            self.virtual_kubelet = VirtualKubeletProcess(
                cp.virtual_kubelet_kubeconfig, cp.workdir / "virtual-kubelet", cp.admin(), self.nodes
            ).start()
            self.timings["nodes"] = time.monotonic() - t1
        except BaseException:
            self.stop()
            raise
        self.timings["control plane"] = cp.timings["total"]
        self.timings["total"] = time.monotonic() - t0
        self.echo(
            f"nodes {', '.join(n.name for n in self.nodes)} schedulable in {self.timings['nodes']:.1f}s; "
            f"test bed up in {self.timings['total']:.1f}s"
        )
        return self

    def stop(self) -> None:
        if self.virtual_kubelet is not None:
            self.virtual_kubelet.stop()
            self.virtual_kubelet = None
        self.control_plane.stop()

    @property
    def vk_state_dir(self) -> Path:
        return self.control_plane.workdir / "virtual-kubelet"
