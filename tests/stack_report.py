"""build/e2e-stack.json: what ran under the e2e tests (each component with its
version or commit, the pods that went through each interLink plugin, the SLURM
and HTCondor jobs).

Each process that runs e2e tests keeps its own tally. Run alone, pytest writes
the report from it; under pytest-xdist (``make test``) each worker hands its
tally to the controller (``workeroutput``), which adds them up and writes the
one report, so two workers with a test bed each do not overwrite each other.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

PATH = Path(__file__).resolve().parents[1] / "build" / "e2e-stack.json"


def empty() -> dict[str, Any]:
    return {
        "components": {},
        "pods": {"slurm-plugin": 0, "htcondor-plugin": 0, "kubernetes-plugin": 0},
        "slurm_jobs": {"submitted": 0, "finished": 0},
        "htcondor_jobs": {"submitted": 0, "completed": 0, "removed": 0},
    }


def merge(reports: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """One report for the run: components joined, counts added up."""
    total = empty()
    for report in reports:
        total["components"].update(copy.deepcopy(report.get("components", {})))
        for section, counts in report.items():
            if section == "components":
                continue
            into = total.setdefault(section, {})
            for key, count in counts.items():
                into[key] = into.get(key, 0) + count
    return total


def write(report: dict[str, Any], path: Path = PATH) -> str:
    """Write the report; return the line the test run prints about it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    return (
        f"stack report {path}: pods {json.dumps(report['pods'])}, SLURM jobs {json.dumps(report['slurm_jobs'])}, "
        f"HTCondor jobs {json.dumps(report['htcondor_jobs'])}"
    )
