"""Benchmarks (`make bench`): what OffloadSpawner adds on the hub's hot paths,
measured against KubeSpawner itself in the same run.

Printed figures, no pass/fail: per-call time (median of repeats) and peak
memory of building a pod manifest and rendering the spawn form, with a plain
KubeSpawner profile_list on both spawners and with the offload catalog.
"""

from __future__ import annotations

import asyncio
import copy
import os
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The checkout's own packages (offload_spawner and the test bed's node shapes).
sys.path.insert(0, str(ROOT))
#: the example configuration the docs ship (three targets, one profile)
EXAMPLE_CONFIG = ROOT / "docs" / "examples" / "jupyterhub_config.py"

_kubeconfig = Path(tempfile.mkdtemp(prefix="offload-bench-"), "offline.kubeconfig")
_kubeconfig.write_text(
    "apiVersion: v1\nkind: Config\n"
    'clusters: [{name: none, cluster: {server: "https://127.0.0.1:1"}}]\n'
    "users: [{name: none, user: {token: none}}]\n"
    "contexts: [{name: none, context: {cluster: none, user: none}}]\ncurrent-context: none\n"
)
os.environ["KUBECONFIG"] = str(_kubeconfig)
os.environ.pop("KUBERNETES_SERVICE_HOST", None)

from jupyterhub.objects import Hub  # noqa: E402
from kubespawner import KubeSpawner  # noqa: E402
from traitlets.config import Config  # noqa: E402

from offload_spawner.cli import CliGroup, CliUser  # noqa: E402
from offload_spawner.spawner import OffloadSpawner  # noqa: E402

PLAIN = [
    {
        "display_name": "Images",
        "slug": "images",
        "profile_options": {
            "image": {
                "display_name": "Image",
                "choices": {
                    f"img{i}": {"display_name": f"Image {i}", "kubespawner_override": {"image": f"quay.io/jupyter/img{i}:1"}}
                    for i in range(20)
                },
            }
        },
    }
]


def contract_config() -> dict:
    c = Config()
    exec(compile(EXAMPLE_CONFIG.read_text(), str(EXAMPLE_CONFIG), "exec"), {"c": c, "get_config": lambda: c})
    return {k: v for k, v in c.OffloadSpawner.items()}


def make(cls, settings: dict, groups: list[str]):
    config = Config()
    for key, value in settings.items():
        setattr(config[cls.__name__], key, copy.deepcopy(value))
    spawner = cls(user=CliUser("alice", [CliGroup(g) for g in groups]), hub=Hub(ip="hub", port=8081), config=config)
    spawner.api_token = "bench"
    return spawner


async def manifest(spawner, options):
    spawner.user_options = dict(options)
    if isinstance(spawner, OffloadSpawner):
        await OffloadSpawner._check_user_options(spawner, spawner.user_options)
    await spawner.load_user_options()
    return await spawner.get_pod_manifest()


async def form(spawner):
    return await spawner.get_options_form() if callable(spawner.options_form) else spawner.options_form


async def measure(name: str, factory, call, repeats: int = 200) -> float:
    times = []
    tracemalloc.start()
    for _ in range(repeats):
        spawner = factory()
        start = time.perf_counter()
        await call(spawner)
        times.append(time.perf_counter() - start)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    median = statistics.median(times)
    print(f"  {name:58} {median * 1e3:8.3f} ms/call   peak {peak / 1024:8.0f} KiB")
    return median


async def main() -> int:
    print(f"Python {sys.version.split()[0]}; medians of 200 calls, fresh spawner each call")
    print("pod manifest (load_user_options + get_pod_manifest):")
    plain = {"profile_list": PLAIN}
    options = {"profile": "images", "image": "img7"}
    k = await measure("KubeSpawner, plain profile_list", lambda: make(KubeSpawner, plain, []), lambda s: manifest(s, options))
    o = await measure("OffloadSpawner, same plain profile_list", lambda: make(OffloadSpawner, plain, []), lambda s: manifest(s, options))
    print(f"  -> OffloadSpawner / KubeSpawner: {o / k:.2f}x")
    catalog = contract_config()
    leonardo = {"profile": "analysis", "target": "leonardo", "cores": "8", "accelerator": "nvidia.com/gpu:a100", "accelerator_count": "2"}
    await measure(
        "OffloadSpawner, contract catalog, SLURM target + GPU",
        lambda: make(OffloadSpawner, catalog, ["cms", "ai-infn", "gpu-users"]),
        lambda s: manifest(s, leonardo),
    )
    print("spawn form:")
    k = await measure("KubeSpawner, plain profile_list", lambda: make(KubeSpawner, plain, []), form)
    o = await measure("OffloadSpawner, same plain profile_list", lambda: make(OffloadSpawner, plain, []), form)
    print(f"  -> OffloadSpawner / KubeSpawner: {o / k:.2f}x")
    await measure("OffloadSpawner, contract catalog", lambda: make(OffloadSpawner, catalog, ["cms", "ai-infn", "gpu-users"]), form)
    await availability(catalog)
    return 0


def _watcher_with(pods: int):
    """The hub's node watcher holding two virtual nodes and ``pods`` running pods
    (its reflectors' in-memory ``resources``, as a watch would have filled them)."""
    import logging
    from types import SimpleNamespace

    from testbed.nodes import DEFAULT_NODES

    from offload_spawner.watcher import AvailabilityWatcher

    def meta(obj: dict, uid: str) -> dict:
        return {**obj, "metadata": {**obj["metadata"], "uid": uid, "resourceVersion": uid}}

    nodes = {f"/{n.name}": meta(n.manifest(), n.name) for n in DEFAULT_NODES}
    per_node: dict[str, dict] = {"vk-leonardo": {}, "vk-naples": {}}
    for i in range(pods):
        name = "vk-leonardo" if i % 2 else "vk-naples"
        per_node[name][f"jhub/p{i}"] = meta({
            "metadata": {"name": f"p{i}", "namespace": "jhub"},
            "spec": {"nodeName": name,
                     "containers": [{"name": "c", "resources": {"requests": {"cpu": "10m", "memory": "64Mi"}}}]},
            "status": {"phase": "Running"},
        }, str(i))
    watcher = AvailabilityWatcher(list(per_node), "default", logging.getLogger("bench"))
    watcher.nodes = SimpleNamespace(resources=nodes)
    watcher.pods = {name: SimpleNamespace(resources=held) for name, held in per_node.items()}
    watcher.state = "running"
    return watcher


async def availability(catalog: dict) -> None:
    """The form with live availability, read from the watcher's memory (no API call);
    the cluster view is rebuilt only when an object changed."""
    print("spawn form with availability (from the watcher's memory, no API call):")
    for pods in (10, 1000):
        watcher = _watcher_with(pods)
        KubeSpawner.reflectors[("offload-availability", "default")] = watcher
        await measure(f"OffloadSpawner, contract catalog, {pods} pods on the nodes",
                      lambda: make(OffloadSpawner, catalog, ["cms", "highrate", "ai-infn", "gpu-users"]), form)
        watcher._view = None
        await measure(f"  same, {pods} pods, first render after a change",
                      lambda: make(OffloadSpawner, catalog, ["cms", "highrate", "ai-infn", "gpu-users"]),
                      lambda s, w=watcher: _changed(w, s), repeats=50)
        KubeSpawner.reflectors.pop(("offload-availability", "default"), None)


async def _changed(watcher, spawner):
    watcher._view = None
    return await form(spawner)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
