"""In-process figures: selection -> pod manifest and form render per call,
OffloadSpawner against KubeSpawner, at several catalog sizes; the first
manifest build's traced memory (each in a fresh process); Kubernetes API calls
per form render.

Timing: a fresh spawner per call (what the hub has at a user's first spawn;
constructing it is not timed), OffloadSpawner and KubeSpawner calls
interleaved so that load from other processes hits both alike, median of the
samples.
"""

from __future__ import annotations

import asyncio
import copy
import gc
import logging
import math
import statistics
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from types import SimpleNamespace
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for _path in (str(ROOT), str(HERE)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import catalogs  # noqa: E402
import offline  # noqa: E402,F401  (before kubernetes_asyncio is imported)
from jupyterhub.objects import Hub  # noqa: E402
from kubespawner import KubeSpawner  # noqa: E402
from traitlets.config import Config  # noqa: E402

from offload_spawner.hub.cli import CliGroup, CliUser  # noqa: E402
from offload_spawner.hub.spawner import OffloadSpawner  # noqa: E402

PROFILES = (10, 100, 1000)
GROUPS = (1, 500)
#: samples per spawner and figure, by catalog size (fewer for the large ones)
SAMPLES = {10: 31, 100: 15, 1000: 7}

#: comparison -> (offload config, offload user_options, kubespawner config, kubespawner user_options)
COMPARISONS = {
    "plain profile_list": lambda n, g: (
        catalogs.plain(n),
        catalogs.plain_options(n),
        catalogs.plain(n),
        catalogs.plain_options(n),
    ),
    "catalog vs kubespawner+group filter": lambda n, g: (
        catalogs.offload(n, g),
        catalogs.offload_options(n),
        catalogs.kubespawner_filtered(n),
        catalogs.kubespawner_options(n),
    ),
}


def make(cls: type, settings: dict[str, Any], groups: list[str]):
    """A fresh spawner holding ``settings``.

    Set as traits, not through a Config: traitlets deep-copies config values
    into every spawner, which for a thousand profiles takes longer than the
    calls measured (and happens once per user and hub, alike for both
    spawners). Nothing is shared between spawners but these values; the
    offload catalog's cache is keyed by their content, not their identity.
    """
    spawner = cls(user=CliUser("alice", [CliGroup(g) for g in groups]), hub=Hub(ip="hub", port=8081), config=Config())
    for key, value in settings.items():
        setattr(spawner, key, value)
    spawner.api_token = "bench"
    return spawner


async def manifest(spawner, options: dict[str, Any]):
    """What the hub runs from a spawn request to the pod it creates."""
    options = copy.deepcopy(options)
    spawner.user_options = options
    await spawner._run_apply_user_options(options)
    await spawner.load_user_options()
    return await spawner.get_pod_manifest()


async def form(spawner) -> str:
    return await spawner.get_options_form()


def install_watcher(pods: int = 20) -> None:
    """The hub's node watcher holding the test bed's two virtual nodes and ``pods``
    running pods in memory, as its reflectors would after their first list
    (availability is then read from memory, as on a hub that watches nodes)."""
    from offload_spawner.availability.watcher import AvailabilityWatcher
    from testbed.nodes import DEFAULT_NODES

    def meta(obj: dict, uid: str) -> dict:
        return {**obj, "metadata": {**obj["metadata"], "uid": uid, "resourceVersion": uid}}

    nodes = {f"/{n.name}": meta(n.manifest(), n.name) for n in DEFAULT_NODES}
    per_node: dict[str, dict] = {"vk-leonardo": {}, "vk-naples": {}}
    for i in range(pods):
        name = "vk-leonardo" if i % 2 else "vk-naples"
        per_node[name][f"jhub/p{i}"] = meta(
            {
                "metadata": {"name": f"p{i}", "namespace": "jhub"},
                "spec": {
                    "nodeName": name,
                    "containers": [{"name": "c", "resources": {"requests": {"cpu": "10m", "memory": "64Mi"}}}],
                },
                "status": {"phase": "Running"},
            },
            str(i),
        )
    watcher = AvailabilityWatcher(list(per_node), "default", logging.getLogger("bench"))
    watcher.nodes = SimpleNamespace(resources=nodes)
    watcher.pods = {name: SimpleNamespace(resources=held) for name, held in per_node.items()}
    watcher.state = "running"
    KubeSpawner.reflectors[("offload-availability", "default")] = watcher


async def _timed(call) -> float:
    gc.collect()
    start = time.perf_counter()
    await call()
    return (time.perf_counter() - start) * 1e3


async def compare(op: str, comparison: str, profiles: int, groups: int) -> tuple[float, float]:
    """Median ms per call (OffloadSpawner, KubeSpawner), samples interleaved."""
    o_conf, o_opts, k_conf, k_opts = COMPARISONS[comparison](profiles, groups)
    user_groups = catalogs.user_groups(groups)
    o_times, k_times = [], []
    for i in range(SAMPLES[profiles]):
        # Alternate which spawner goes first, so neither always follows the other.
        order = ((OffloadSpawner, o_conf, o_opts, o_times), (KubeSpawner, k_conf, k_opts, k_times))
        for cls, conf, opts, times in order if i % 2 == 0 else reversed(order):
            spawner = make(cls, conf, user_groups)
            if op == "manifest":
                times.append(await _timed(lambda s=spawner, o=opts: manifest(s, o)))
            else:
                times.append(await _timed(lambda s=spawner: form(s)))
    # The first sample of each builds what is cached per process (catalog, templates): drop it.
    return statistics.median(o_times[1:]), statistics.median(k_times[1:])


def slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of log(y) against log(x): 1 is linear growth."""
    lx = [math.log(x) for x in xs]
    ly = [math.log(y) for y in ys]
    mx, my = statistics.fmean(lx), statistics.fmean(ly)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly, strict=True)) / sum((a - mx) ** 2 for a in lx)


async def scaling(figures) -> None:
    install_watcher()
    series: dict[str, Any] = {}
    for op in ("manifest", "form"):
        for comparison in COMPARISONS:
            for groups in GROUPS:
                for profiles in PROFILES:
                    o, k = await compare(op, comparison, profiles, groups)
                    name = f"{op} ms, {comparison}, {profiles} profiles, {groups} groups"
                    figures.pair(name, o, k, target=1.3)
                    series.setdefault(f"{op} | {comparison} | {groups} groups", []).append(
                        {"profiles": profiles, "offload": o, "kubespawner": k}
                    )
    figures.series["scaling"] = series
    # What the forms hold: the offload form lists per target the user's limits and
    # live availability, which KubeSpawner's form has no place for.
    for comparison in COMPARISONS:
        o_conf, _, k_conf, _ = COMPARISONS[comparison](PROFILES[-1], GROUPS[-1])
        user_groups = catalogs.user_groups(GROUPS[-1])
        o_html = await form(make(OffloadSpawner, o_conf, user_groups))
        k_html = await form(make(KubeSpawner, k_conf, user_groups))
        figures.pair(
            f"form HTML KiB, {comparison}, {PROFILES[-1]} profiles",
            len(o_html.encode()) / 1024,
            len(k_html.encode()) / 1024,
        )
    for key, points in series.items():
        op, comparison, groups = key.split(" | ")
        xs = [p["profiles"] for p in points]
        figures.pair(
            f"{op} slope vs profiles (log-log, 1 = linear), {comparison}, {groups}",
            slope(xs, [p["offload"] for p in points]),
            slope(xs, [p["kubespawner"] for p in points]),
            target=None,
        )
    # Growth with the user's groups, at the largest catalog.
    for op in ("manifest", "form"):
        for comparison in COMPARISONS:
            few, many = (
                next(p for p in series[f"{op} | {comparison} | {g} groups"] if p["profiles"] == PROFILES[-1])
                for g in GROUPS
            )
            figures.pair(
                f"{op} slope vs groups (log-log, 1 = linear), {comparison}, {PROFILES[-1]} profiles",
                slope(list(GROUPS), [few["offload"], many["offload"]]),
                slope(list(GROUPS), [few["kubespawner"], many["kubespawner"]]),
            )


async def api_calls_per_form(figures, renders: int = 20) -> None:
    """Count every request the Kubernetes client sends while forms render."""
    from kubernetes_asyncio.client import rest

    install_watcher()
    calls: list[str] = []
    original = rest.RESTClientObject.request

    async def counting(self, method, url, *args, **kwargs):
        calls.append(f"{method} {url}")
        return await original(self, method, url, *args, **kwargs)

    rest.RESTClientObject.request = counting
    try:
        conf = catalogs.offload(100, 500)
        for _ in range(renders):
            page = await form(make(OffloadSpawner, conf, catalogs.user_groups(500)))
            assert "available" in page, "the form shows no availability: the watcher was not read"
    finally:
        rest.RESTClientObject.request = original
    figures.single("api calls per form render (in-process, watcher in memory)", len(calls) // renders)


# --- first manifest build, traced, each spawner in a fresh process -----------------


def first_manifest_memory(figures, profiles: int = 10, groups: int = 1, repeats: int = 1) -> None:
    for comparison in COMPARISONS:
        peaks: dict[str, list[int]] = {"offload": [], "kubespawner": []}
        for _ in range(repeats):
            for spawner in peaks:
                out = subprocess.run(
                    [sys.executable, __file__, "first-manifest", spawner, comparison, str(profiles), str(groups)],
                    capture_output=True,
                    text=True,
                )
                if out.returncode != 0:
                    raise RuntimeError(f"first-manifest probe failed: {out.stderr[-1500:]}")
                peaks[spawner].append(int(out.stdout.strip().splitlines()[-1]))
        figures.pair(
            f"first manifest build peak traced KiB, {comparison}, {profiles} profiles",
            statistics.median(peaks["offload"]) / 1024,
            statistics.median(peaks["kubespawner"]) / 1024,
            target=2.0,
        )


def _probe_main(argv: list[str]) -> int:
    if argv[0] == "first-manifest":
        spawner, comparison, profiles, groups = argv[1], argv[2], int(argv[3]), int(argv[4])

        async def in_loop() -> int:
            # The watcher binds to the running loop, as in the hub.
            install_watcher()
            o_conf, o_opts, k_conf, k_opts = COMPARISONS[comparison](profiles, groups)
            cls, conf, opts = (
                (OffloadSpawner, o_conf, o_opts) if spawner == "offload" else (KubeSpawner, k_conf, k_opts)
            )
            s = make(cls, conf, catalogs.user_groups(groups))
            gc.collect()
            tracemalloc.start()
            await manifest(s, opts)
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            return peak

        print(asyncio.run(in_loop()))
        return 0
    raise SystemExit(f"unknown probe {argv[0]!r}")


if __name__ == "__main__":
    logging.getLogger("traitlets").setLevel(logging.ERROR)
    sys.exit(_probe_main(sys.argv[1:]))
