"""The benchmark's figures: one line each on stdout, in a form that can be
compared across runs, and the same figures in ``benchmarks/results.json``.

``NAME: offload=<value> kubespawner=<value> ratio=<offload/kubespawner>`` for
side-by-side figures, ``NAME: offload=<value>`` for the others. Times are in
ms, memory in KiB (the unit is part of the name).
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any


def _show(value: float | int | None) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, int):
        return str(value)
    return f"{value:.3f}" if abs(value) < 100 else f"{value:.1f}"


class Figures:
    def __init__(self) -> None:
        self.rows: dict[str, dict[str, Any]] = {}
        self.series: dict[str, Any] = {}
        self.notes: dict[str, str] = {}

    def pair(self, name: str, offload: float, kubespawner: float, target: float | None = None) -> float:
        """A side-by-side figure; ``target``: the highest ratio the issue accepts."""
        # Nothing on both sides (e.g. objects left behind) is a tie; JSON has no infinity.
        ratio = offload / kubespawner if kubespawner else (1.0 if not offload else 999.0)
        self.rows[name] = {"offload": offload, "kubespawner": kubespawner, "ratio": round(ratio, 3)}
        if target is not None:
            self.rows[name]["target_ratio"] = target
        print(f"{name}: offload={_show(offload)} kubespawner={_show(kubespawner)} ratio={ratio:.2f}", flush=True)
        return ratio

    def single(self, name: str, offload: float | int | None, target: float | None = None) -> None:
        self.rows[name] = {"offload": offload}
        if target is not None:
            self.rows[name]["target"] = target
        print(f"{name}: offload={_show(offload)}", flush=True)

    def note(self, name: str, text: str) -> None:
        """Why a figure is missing (printed as a comment line, kept in results.json)."""
        self.notes[name] = text
        print(f"# {name}: {text}", flush=True)

    def write(self, path: Path, seconds: float) -> None:
        data = {
            "machine": {
                "cpu_count": os.cpu_count(),
                "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
                "load_average_1min": os.getloadavg()[0],
                "python": sys.version.split()[0],
                "platform": platform.platform(),
            },
            "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "duration_s": round(seconds, 1),
            "figures": self.rows,
            "series": self.series,
            "notes": self.notes,
        }
        path.write_text(json.dumps(data, indent=2) + "\n")
