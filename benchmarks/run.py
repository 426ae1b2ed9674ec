"""Benchmarks (`make bench`): what OffloadSpawner costs beside the KubeSpawner it
replaces, and how it scales with profiles and groups.

Prints one figure per line (see benchmarks/figures.py for the form), writes
benchmarks/results.json and benchmarks/scaling.png. Sections:

* selection -> pod manifest and form render at 10/100/1000 profiles and 1/500
  groups per user, against KubeSpawner with the same plain profile_list and
  against KubeSpawner with the callable group filter admins write today
  (benchmarks/micro.py); slopes of their growth;
* Kubernetes API calls per form render (counted);
* peak traced memory of the first manifest build, each spawner in a fresh process;
* resident memory of a real hub process with the catalog loaded, each spawner
  in its own hub (benchmarks/hubproc.py);
* ``offload-spawner check``: wall time and ``python -X importtime``;
* on the test bed (benchmarks/storm.py): a node's capacity change reaching the
  next form render, and 50 concurrent spawns and stops through a real hub.

Nothing here passes or fails: figures only (the README's performance section
says which targets hold). ``--quick`` runs fewer samples (for trying it out).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(HERE), str(ROOT)]

import offline  # noqa: E402,F401  (before kubernetes_asyncio is imported)
from figures import Figures  # noqa: E402


def check_startup(figures: Figures, repeats: int = 5) -> None:
    """``offload-spawner check`` on the example Zero-to-JupyterHub values, as a
    process; beside it, the same interpreter doing nothing (the floor on this
    machine at this moment)."""
    config = ROOT / "helm-values" / "values.yaml"
    cli = shutil.which("offload-spawner") or str(Path(sys.executable).with_name("offload-spawner"))
    subprocess.run([cli, "check", "-f", str(config)], check=True, capture_output=True)  # warm caches
    walls, floor = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([cli, "check", "-f", str(config)], check=True, capture_output=True)
        walls.append((time.perf_counter() - start) * 1e3)
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True, capture_output=True)
        floor.append((time.perf_counter() - start) * 1e3)
    figures.single("offload-spawner check wall ms (start to answer)", statistics.median(walls), target=1000)
    figures.single("python -c pass wall ms (the floor, same moment)", statistics.median(floor))
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "offload_spawner.hub.cli", "check", "-f", str(config)],
        check=True,
        capture_output=True,
        text=True,
    )
    total = 0
    heaviest: list[tuple[int, str]] = []
    for line in out.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line or "self [us]" in line:
            continue
        self_us, cumulative, name = (part.strip() for part in line.removeprefix("import time:").split("|"))
        total += int(self_us)
        if not name.startswith(" ") and len(name) == len(name.lstrip()):
            heaviest.append((int(cumulative), name))
    figures.single("offload-spawner check import ms (python -X importtime, sum)", total / 1e3)
    figures.series["check_heaviest_imports_ms"] = {name: us / 1e3 for us, name in sorted(heaviest, reverse=True)[:8]}


def hub_memory(figures: Figures, profiles: int = 1000, groups: int = 500, repeats: int = 2) -> None:
    """Resident memory of a real hub process (python -m jupyterhub) after a user's
    form rendered, so the catalog is loaded; OffloadSpawner's hub and a
    KubeSpawner hub with the same offer, started alternately."""
    import catalogs
    from hubproc import HubProcess

    user_groups = {g: ["alice"] for g in catalogs.user_groups(groups)}
    hubs = {
        "offload": (
            "offload",
            "OffloadSpawner",
            f"dict(catalogs.offload({profiles}, {groups}), offload_availability=False)",
        ),
        "kubespawner": ("kubespawner.KubeSpawner", "KubeSpawner", f"catalogs.kubespawner_filtered({profiles})"),
    }
    rss: dict[str, list[int]] = {"offload": [], "kubespawner": []}
    for _ in range(repeats):
        for kind, (spawner_class, section, settings) in hubs.items():
            with HubProcess(spawner_class, section, settings, user_groups) as hub:
                browser = hub.login("alice")
                for _ in range(3):
                    hub.form(browser)
                time.sleep(1)
                rss[kind].append(hub.rss_kib())
    figures.pair(
        f"hub process RSS KiB after a form render, {profiles} profiles, {groups} groups",
        statistics.median(rss["offload"]),
        statistics.median(rss["kubespawner"]),
        target=1.1,
    )


def plot(figures: Figures, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = figures.series.get("scaling", {})
    fig, axes = plt.subplots(1, 2, figsize=(13, 5), sharey=False)
    for ax, op in zip(axes, ("manifest", "form"), strict=True):
        for key, points in series.items():
            if not key.startswith(op + " |"):
                continue
            _, comparison, groups = key.split(" | ")
            xs = [p["profiles"] for p in points]
            style = "-" if groups.startswith("1 ") else "--"
            ax.plot(
                xs, [p["offload"] for p in points], style, marker="o", label=f"OffloadSpawner, {comparison}, {groups}"
            )
            ax.plot(
                xs, [p["kubespawner"] for p in points], style, marker="s", label=f"KubeSpawner, {comparison}, {groups}"
            )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("profiles in the catalog")
        ax.set_ylabel("ms per call (median)")
        ax.set_title("selection -> pod manifest" if op == "manifest" else "spawn form render")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples (numbers are rougher)")
    parser.add_argument(
        "--skip", action="append", default=[], help="skip a section: scaling, memory, hub, check, testbed"
    )
    args = parser.parse_args()
    logging.getLogger("traitlets").setLevel(logging.ERROR)
    import micro

    if args.quick:
        micro.SAMPLES = {10: 9, 100: 5, 1000: 3}
    figures = Figures()
    started = time.monotonic()
    print(f"offload_spawner benchmarks; Python {sys.version.split()[0]}; medians, ratios from the same run")
    sections = [
        ("scaling", lambda: asyncio.run(micro.scaling(figures))),
        ("scaling", lambda: asyncio.run(micro.api_calls_per_form(figures))),
        ("memory", lambda: micro.first_manifest_memory(figures)),
        ("hub", lambda: hub_memory(figures)),
        ("check", lambda: check_startup(figures)),
        ("testbed", lambda: _testbed(figures)),
    ]
    for name, section in sections:
        if name in args.skip:
            continue
        try:
            section()
        except Exception as e:  # one broken section must not hide the others' figures
            figures.note(name, f"section failed: {type(e).__name__}: {e}"[:500])
    elapsed = time.monotonic() - started
    figures.single("benchmark wall s", elapsed)
    figures.write(HERE / "results.json", elapsed)
    if "scaling" not in args.skip:
        try:
            plot(figures, HERE / "scaling.png")
        except ImportError:
            figures.note("plot", "matplotlib is not installed: pip install -e '.[bench]' (make bench does)")
    return 0


def _testbed(figures: Figures) -> None:
    import storm

    storm.run(figures)


if __name__ == "__main__":
    sys.exit(main())
