"""Point the Kubernetes client at a cluster that is not there, before it is imported.

KubeSpawner loads a kube config when a spawner is constructed, and
kubernetes_asyncio reads KUBECONFIG at import; the in-process figures make no
API call (the API-call count checks that), so an unreachable server is enough.
"""

import os
import tempfile
from pathlib import Path

KUBECONFIG = Path(tempfile.mkdtemp(prefix="offload-bench-"), "offline.kubeconfig")
KUBECONFIG.write_text(
    "apiVersion: v1\nkind: Config\n"
    'clusters: [{name: none, cluster: {server: "https://127.0.0.1:1"}}]\n'
    "users: [{name: none, user: {token: none}}]\n"
    "contexts: [{name: none, context: {cluster: none, user: none}}]\ncurrent-context: none\n"
)
os.environ["KUBECONFIG"] = str(KUBECONFIG)
os.environ.pop("KUBERNETES_SERVICE_HOST", None)
