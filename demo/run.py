"""Start the demo hub (`make demo`): a real JupyterHub with OffloadSpawner.

Prints the URL and the demo users, and stops cleanly (hub and proxy) on Ctrl-C.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
OFFLINE_KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters: [{name: none, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: none, user: {token: none}}]
contexts: [{name: none, context: {cluster: none, user: none}}]
current-context: none
"""


def main() -> int:
    sys.path.insert(0, str(HERE))
    from users import DEMO_GROUPS  # noqa: E402

    port = os.environ.get("DEMO_PORT", "8000")
    with tempfile.TemporaryDirectory(prefix="offload-demo-") as state:
        env = dict(os.environ, DEMO_PORT=port)
        if "KUBECONFIG" not in env and not Path.home().joinpath(".kube/config").exists():
            path = Path(state, "offline.kubeconfig")
            path.write_text(OFFLINE_KUBECONFIG)
            env["KUBECONFIG"] = str(path)
        users = {}
        for group, members in DEMO_GROUPS.items():
            for user in members:
                users.setdefault(user, []).append(group)
        print(f"offload_spawner demo hub: http://127.0.0.1:{port}/  (password for every user: demo)")
        for user, groups in sorted(users.items()):
            print(f"  {user:8} groups: {', '.join(groups)}")
        print("  nobody   groups: (none)  -> sees no profile")
        print("Ctrl-C stops the hub and its proxy.", flush=True)
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
                hub.wait(timeout=30)
            except subprocess.TimeoutExpired:
                hub.kill()
            return 0


if __name__ == "__main__":
    sys.exit(main())
