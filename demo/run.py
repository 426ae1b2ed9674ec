"""Start the demo (`make demo`): the local test bed (a real Kubernetes control
plane with interLink-style virtual nodes and the local virtual kubelet), an
OpenID Connect provider shaped like INDIGO IAM with the demo users and their
groups, and a real JupyterHub (IAMOAuthenticator + OffloadSpawner) spawning
into the test bed.

The SLURM target (``leonardo``) runs on the real interLink stack when it can:
a real SLURM (Debian ``slurm-wlm``, as root) and interLink's virtual kubelet,
API server and SLURM plugin built from their sources (testbed/interlink.py),
registering node ``vk-slurm``. Without them (or with ``DEMO_SLURM=imitation``)
it runs on the test bed's imitation node ``vk-leonardo``; the banner says which
and why.

Prints the URL and the demo users; Ctrl-C stops the hub (which stops the
servers), then the provider and the test bed, leaving nothing running.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _real_slurm_missing() -> str | None:
    """Why the SLURM target cannot run on the real interLink stack here, or None."""
    if os.environ.get("DEMO_SLURM") == "imitation":
        return "DEMO_SLURM=imitation"
    from testbed.interlink import interlink_sources_missing
    from testbed.slurm import slurm_missing

    return slurm_missing() or interlink_sources_missing()


def main() -> int:
    # Ctrl-C and SIGTERM both stop everything cleanly (also when started in the
    # background, where a shell makes SIGINT ignored).
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    sys.path[:0] = [str(HERE), str(ROOT)]
    from users import PASSWORD, groups_by_user, provider_users

    from testbed import LocalCluster
    from testbed.controlplane import free_ports
    from testbed.oidc import OidcProvider
    from testbed.procs import child_preexec

    port = os.environ.get("DEMO_PORT", "8000")
    why_not_real = _real_slurm_missing()
    with (
        tempfile.TemporaryDirectory(prefix="offload-demo-") as state,
        LocalCluster() as cluster,
        contextlib.ExitStack() as real_slurm,
        OidcProvider(provider_users(), redirect_uris=[f"http://127.0.0.1:{port}/hub/oauth_callback"]) as idp,
    ):
        slurm_env: dict[str, str] = {}
        slurm_conf = ""
        if why_not_real is None:
            from testbed.interlink import InterlinkStack
            from testbed.slurm import SlurmCluster

            workdir = cluster.control_plane.workdir
            slurm = real_slurm.enter_context(SlurmCluster(workdir / "slurm"))
            stack = real_slurm.enter_context(InterlinkStack(cluster.control_plane, slurm, workdir / "interlink"))
            slurm_conf = str(slurm.conf)
            (server_port,) = free_ports(1)
            slurm_env = {
                "DEMO_SLURM_NODE": stack.node,
                "DEMO_SLURM_CPUS": str(slurm.cpus),
                "DEMO_SLURM_MEMORY_MB": str(slurm.memory_mb),
                "DEMO_SERVER_PORT": str(server_port),
            }
        # The rights helm-values/rbac-availability.yaml grants (read Nodes and
        # the pods bound to them), so that the form shows each site's free
        # capacity and accelerators, as on a hub whose admin applied that file.
        cluster.control_plane.bind_node_reader()
        hub_port, proxy_api_port = free_ports(2)
        env = dict(
            os.environ,
            DEMO_PORT=port,
            DEMO_HUB_PORT=str(hub_port),
            DEMO_PROXY_API_PORT=str(proxy_api_port),
            DEMO_TESTBED="1",
            KUBECONFIG=str(cluster.control_plane.hub_kubeconfig),
            DEMO_OIDC_ISSUER=idp.issuer,
            DEMO_OIDC_CLIENT_ID=idp.client_id,
            # Handed to the hub process through its environment only (never argv).
            DEMO_OIDC_CLIENT_SECRET=idp.client_secret,
            # auth_state (the users' tokens) is stored encrypted with this key.
            JUPYTERHUB_CRYPT_KEY=secrets.token_hex(32),
            **slurm_env,
        )
        print(
            f"offload_spawner demo hub: http://127.0.0.1:{port}/  (log in at the demo IAM; password for every user: {PASSWORD})"
        )
        print(f"demo IAM (OpenID Connect provider): {idp.issuer}")
        for user, groups in sorted(groups_by_user().items()):
            shown = ", ".join(groups) if groups else "(none)  -> only the open Teaching profile"
            print(f"  {user:8} groups: {shown}")
        if why_not_real is None:
            print(
                f"SLURM target (leonardo): the real interLink stack (virtual kubelet, API server, SLURM plugin) "
                f"and a real SLURM, node {slurm_env['DEMO_SLURM_NODE']}; see its jobs with "
                f"SLURM_CONF={slurm_conf} squeue"
            )
        else:
            print(f"SLURM target (leonardo): the test bed's imitation (node vk-leonardo), because {why_not_real}")
        print(f"admin kubeconfig (kubectl): {cluster.control_plane.admin_kubeconfig}")
        print(
            "logs: the hub's below in this terminal; the test bed's (kube-apiserver.log, ...) in "
            f"{cluster.control_plane.workdir}/, each server's in {cluster.vk_state_dir / 'logs'}/ "
            "(removed when the demo stops)"
        )
        print("Ctrl-C stops the hub, its servers, the provider and the test bed.", flush=True)
        hub = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyterhub",
                "-f",
                str(HERE / "jupyterhub_config.py"),
                "--JupyterHub.db_url=sqlite:///" + str(Path(state, "hub.sqlite")),
                "--JupyterHub.cookie_secret_file=" + str(Path(state, "cookie_secret")),
                "--ConfigurableHTTPProxy.pid_file=" + str(Path(state, "proxy.pid")),
            ],
            cwd=state,
            env=env,
            # Its own session: a terminal's Ctrl-C reaches only this script,
            # which stops the hub once (a second SIGINT would interrupt the
            # hub's own clean-up of servers and Secrets).
            start_new_session=True,
            # ...and if this script is killed outright, the kernel stops the hub.
            preexec_fn=child_preexec(),  # type: ignore[arg-type]
        )
        try:
            return hub.wait()
        except KeyboardInterrupt:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            hub.send_signal(signal.SIGINT)
            try:
                hub.wait(timeout=60)
            except subprocess.TimeoutExpired:
                hub.kill()
            return 0


if __name__ == "__main__":
    sys.exit(main())
