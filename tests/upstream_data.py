"""Where the tests find upstream data that this repository does not ship.

Two kinds of test data come from other projects and are not committed here:

* the Zero-to-JupyterHub ``jupyterhub`` chart (its templates, values schema and
  the hub pod's own ``files/hub/jupyterhub_config.py`` and ``z2jh.py``);
* interLink's source trees (virtual kubelet, API server, plugins).

Each is looked up, in this order, at

1. an explicit path from an environment variable (``OFFLOAD_Z2JH_CHART``,
   ``OFFLOAD_UPSTREAM_DIR``; ``.ci/run`` sets them);
2. ``../shared/...`` next to the checkout, when it exists;

and otherwise the test that needs it is skipped with a message saying how to
get the data. Nothing else in the test suite reads ``../shared``.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"

Z2JH_CHART_ENV = "OFFLOAD_Z2JH_CHART"
Z2JH_REPO = "https://github.com/jupyterhub/zero-to-jupyterhub-k8s"
#: the chart version the tests were written against (appVersion 5.5.0)
Z2JH_COMMIT = "48ea50e3"

UPSTREAM_ENV = "OFFLOAD_UPSTREAM_DIR"
#: folder name -> (repository, commit) of interLink's source trees
INTERLINK_SOURCES = {
    "interLink": ("https://github.com/interlink-hq/interLink", "f6321757"),
    "interLink-9ed14a4": ("https://github.com/interlink-hq/interLink", "9ed14a4e89d5"),
    "interlink-slurm-plugin": ("https://github.com/interlink-hq/interlink-slurm-plugin", "f8451d9"),
    "interlink-htcondor-plugin": ("https://github.com/interlink-hq/interlink-htcondor-plugin", "6f5ee3e"),
    "interlink-kubernetes-plugin": ("https://github.com/interlink-hq/interlink-kubernetes-plugin", "cfebf48"),
}


class UpstreamDataMissing(LookupError):
    """Upstream data is not on this machine; the message says how to get it."""


def _from_env_or_shared(env: str, shared: Path, check: str) -> Path | None:
    explicit = os.environ.get(env)
    if explicit:
        path = Path(explicit).expanduser()
        if not (path / check).exists():
            # A wrong explicit path is an error, not a reason to look elsewhere.
            raise UpstreamDataMissing(f"${env}={explicit} has no {check}")
        return path
    if (shared / check).exists():
        return shared
    return None


def find_z2jh_chart() -> Path:
    """The ``jupyterhub`` chart directory (holding Chart.yaml), or UpstreamDataMissing."""
    chart = _from_env_or_shared(Z2JH_CHART_ENV, SHARED / "z2jh" / "chart" / "jupyterhub", "Chart.yaml")
    if chart is None:
        raise UpstreamDataMissing(
            f"the Zero-to-JupyterHub chart is not here: set {Z2JH_CHART_ENV} to a checkout's "
            f"chart/jupyterhub (git clone {Z2JH_REPO} && git -C zero-to-jupyterhub-k8s checkout {Z2JH_COMMIT}), "
            f"or put it at {SHARED / 'z2jh' / 'chart' / 'jupyterhub'}"
        )
    return chart


def find_interlink_source(name: str) -> Path:
    """One of interLink's source trees (a key of INTERLINK_SOURCES), or UpstreamDataMissing."""
    repo, commit = INTERLINK_SOURCES[name]
    root = _from_env_or_shared(UPSTREAM_ENV, SHARED / "upstream", name)
    if root is None:
        raise UpstreamDataMissing(
            f"interLink's sources are not here: set {UPSTREAM_ENV} to a folder holding {name}/ "
            f"(git clone {repo} {name} && git -C {name} checkout {commit}), or put it at {SHARED / 'upstream' / name}"
        )
    return root / name


def z2jh_chart() -> Path:
    """The chart directory, else skip the test with how to get it."""
    try:
        return find_z2jh_chart()
    except UpstreamDataMissing as e:
        pytest.skip(str(e))


def interlink_source(name: str) -> Path:
    """One of interLink's source trees, else skip the test with how to get it."""
    try:
        return find_interlink_source(name)
    except UpstreamDataMissing as e:
        pytest.skip(str(e))


def helm_binary() -> Path:
    """helm built by testbed/build_helm.sh (``make test`` runs it), else skip."""
    script = ROOT / "testbed" / "build_helm.sh"
    path = Path(subprocess.run([str(script), "--bin"], capture_output=True, text=True, check=True).stdout.strip())
    if not os.access(path, os.X_OK):
        pytest.skip(f"helm is not built: run {script} (Go toolchain and the Go module proxy needed, ~2 min)")
    return path
