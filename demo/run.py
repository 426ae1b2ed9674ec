"""Start the demo (`make demo`): the local test bed (a real Kubernetes control
plane with interLink-style virtual nodes and the local virtual kubelet) and a
real JupyterHub with OffloadSpawner spawning into it.

Prints the URL and the demo users; Ctrl-C stops the hub (which stops the
servers), then the test bed, leaving nothing running.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def main() -> int:
    sys.path[:0] = [str(HERE), str(ROOT)]
    from testbed import LocalCluster  # noqa: E402
    from users import DEMO_GROUPS  # noqa: E402

    port = os.environ.get("DEMO_PORT", "8000")
    with tempfile.TemporaryDirectory(prefix="offload-demo-") as state, LocalCluster() as cluster:
        env = dict(
            os.environ,
            DEMO_PORT=port,
            DEMO_TESTBED="1",
            KUBECONFIG=str(cluster.control_plane.hub_kubeconfig),
        )
        users = {}
        for group, members in DEMO_GROUPS.items():
            for user in members:
                users.setdefault(user, []).append(group)
        print(f"offload_spawner demo hub: http://127.0.0.1:{port}/  (password for every user: demo)")
        for user, groups in sorted(users.items()):
            print(f"  {user:8} groups: {', '.join(groups)}")
        print("  nobody   groups: (none)  -> sees no profile")
        print(f"admin kubeconfig (kubectl): {cluster.control_plane.admin_kubeconfig}")
        print("Ctrl-C stops the hub, its servers and the test bed.", flush=True)
        hub = subprocess.Popen(
            [sys.executable, "-m", "jupyterhub", "-f", str(HERE / "jupyterhub_config.py"),
             "--JupyterHub.db_url=sqlite:///" + str(Path(state, "hub.sqlite")),
             "--JupyterHub.cookie_secret_file=" + str(Path(state, "cookie_secret")),
             "--ConfigurableHTTPProxy.pid_file=" + str(Path(state, "proxy.pid"))],
            cwd=state,
            env=env,
        )
        try:
            return hub.wait()
        except KeyboardInterrupt:
            hub.send_signal(signal.SIGINT)
            try:
                hub.wait(timeout=60)
            except subprocess.TimeoutExpired:
                hub.kill()
            return 0

if __name__ == "__main__":
    sys.exit(main())
