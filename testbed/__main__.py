"""``python -m testbed up``: run the test bed until Ctrl-C (``make testbed``).

Why a CLI: to try the spawner against a real cluster by hand (kubectl with
the printed admin kubeconfig, a hub with the hub kubeconfig) and to see how
long the control plane takes to start on this machine.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from .cluster import LocalCluster
from .controlplane import ensure_built


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m testbed", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start the test bed and keep it running until Ctrl-C")
    up.add_argument("--workdir", type=Path, help="keep certificates, kubeconfigs and logs here (default: a temp dir)")
    up.add_argument(
        "--interlink",
        action="store_true",
        help="also start a real SLURM cluster and the real interLink stack (node vk-slurm)",
    )
    up.add_argument(
        "--k8s-plugin",
        action="store_true",
        help="also start interLink's real Kubernetes plugin behind its own interLink API server and "
        "virtual kubelet (node vk-k8s), offloading into namespace offload-remote-<ns>",
    )
    up.add_argument(
        "--htcondor",
        action="store_true",
        help="also start the real interLink HTCondor plugin behind its own interLink API server "
        "and virtual kubelet (node vk-htcondor), with the test bed's HTCondor stand-ins",
    )
    sub.add_parser("build", help="build (or find cached) control-plane binaries")
    args = parser.parse_args(argv)

    if args.command == "build":
        print(ensure_built())
        return 0

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    cluster = LocalCluster(args.workdir, keep=args.workdir is not None)
    cluster.start()
    slurm = stack = k8s_stack = htcondor = None
    try:
        cp = cluster.control_plane
        if args.htcondor:
            from .htcondor import HTCondorStack

            htcondor = HTCondorStack(cp, cp.workdir / "htcondor", keep=cluster.control_plane.keep).start()
            print(f"\n  real interLink node {htcondor.node} (HTCondor plugin); logs in {htcondor.workdir}")
        if args.interlink:
            from .interlink import InterlinkStack
            from .slurm import SlurmCluster

            slurm = SlurmCluster(cp.workdir / "slurm", keep=cluster.control_plane.keep).start()
            stack = InterlinkStack(cp, slurm, cp.workdir / "interlink", keep=cluster.control_plane.keep).start()
            print(f"\n  real interLink node {stack.node}; logs in {stack.workdir}")
            print(f"  export SLURM_CONF={slurm.conf}   # sbatch/squeue/scancel against the test bed's SLURM")
        if args.k8s_plugin:
            from .k8s_plugin import NAMESPACE_PREFIX, KubernetesPluginStack

            k8s_stack = KubernetesPluginStack(cp, cp.workdir / "k8s-plugin", keep=cluster.control_plane.keep).start()
            print(
                f"\n  real interLink node {k8s_stack.node} (Kubernetes plugin -> namespaces "
                f"{NAMESPACE_PREFIX}-<ns> here); logs in {k8s_stack.workdir}"
            )
        print("\nThe test bed is up:")
        for key, value in cp.describe().items():
            print(f"  {key:28} {value}")
        print(f"  {'virtual kubelet state/logs':28} {cluster.vk_state_dir}")
        print(f"\n  export KUBECONFIG={cp.admin_kubeconfig}   # cluster admin")
        print(f"  export KUBECONFIG={cp.hub_kubeconfig}   # the hub's ServiceAccount (namespace {cp.namespace})")
        print("\nCtrl-C stops it.", flush=True)
        while not stop.wait(1.0):
            vk = cluster.virtual_kubelet
            if vk is None or vk.process is None or not vk.process.alive():
                print("virtual kubelet died; stopping", file=sys.stderr)
                return 1
            if any(not p.alive() for p in cp.processes):
                print("a control-plane component died; stopping", file=sys.stderr)
                return 1
        return 0
    finally:
        if k8s_stack is not None:
            k8s_stack.stop()
        if htcondor is not None:
            htcondor.stop()
        if stack is not None:
            stack.stop()
        if slurm is not None:
            slurm.stop()
        cluster.stop()


if __name__ == "__main__":
    sys.exit(main())
