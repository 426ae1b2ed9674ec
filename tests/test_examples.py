"""Every example configuration in docs/examples/ passes ``offload-spawner check``
(the tests' own example config is one of them: tests/conftest.py reads it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "docs" / "examples"
EXAMPLES = sorted(p for p in EXAMPLES_DIR.iterdir() if p.suffix in (".py", ".yaml", ".yml"))


def check(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "offload_spawner.hub.cli", "check", "-f", str(path)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_there_are_examples():
    assert EXAMPLES_DIR / "jupyterhub_config.py" in EXAMPLES


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_passes_check(path):
    r = check(path)
    assert r.returncode == 0, r.stderr
    assert f"{path}: OK" in r.stdout


def test_check_of_an_example_can_fail(tmp_path):
    text = (EXAMPLES_DIR / "jupyterhub_config.py").read_text()
    assert '"memory": "180G"' in text
    bad = tmp_path / "jupyterhub_config.py"
    bad.write_text(text.replace('"memory": "180G"', '"memory": "180 parsecs"'))
    r = check(bad)
    assert r.returncode == 1
    assert "offload_targets.naples.limits.memory" in r.stderr
