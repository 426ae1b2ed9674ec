"""Every pytest-xdist worker collects the same tests.

`make test` runs the suite in pytest-xdist workers, each of which collects the
whole suite on its own. xdist refuses the run ("Different tests were collected
between gw0 and gw1") as soon as one test id differs between two workers: an
id built from the clock at import time (two workers import a module in
different seconds) or from a set's iteration order (each process has its own
string hash seed) fails the whole run before a test starts.

This test collects the suite in two processes that differ in exactly those two
ways, a different ``PYTHONHASHSEED`` and a start more than a second apart, and
compares the ids.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _collected_ids(hash_seed: str) -> list[str]:
    # A fresh pytest, not this worker: drop what xdist told this process about itself.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_XDIST", "PYTEST_CURRENT"))}
    env["PYTHONHASHSEED"] = hash_seed
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", "tests"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    ids = [line for line in run.stdout.splitlines() if "::" in line]
    assert ids, run.stdout[-3000:]
    return ids


def test_two_processes_collect_the_same_test_ids():
    first = _collected_ids("1")
    time.sleep(1.1)  # a test id made from int(time.time()) at import now differs
    second = _collected_ids("2")
    only_first = sorted(set(first) - set(second))
    only_second = sorted(set(second) - set(first))
    assert not only_first and not only_second, f"only in the first: {only_first}\nonly in the second: {only_second}"
    assert first == second, "the same ids, collected in a different order"
