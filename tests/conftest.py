"""Shared test set-up.

KubeSpawner loads a kube config when a spawner is constructed, and
kubernetes_asyncio reads KUBECONFIG when it is imported: point it, before any
import, at a kubeconfig for a cluster that is not there: the unit tests make no
Kubernetes API call, and the e2e tests point KubeSpawner at their test bed
themselves (tests/e2e/conftest.py).

It also runs the suite in pytest-xdist workers (tests/xdist_scheduling.py) and
prints the e2e test bed's summary and writes its stack report for the run.
"""

import os
import tempfile
from typing import Any

import pytest

import stack_report
import testbed_summary
import xdist_scheduling

_KUBECONFIG = os.path.join(tempfile.mkdtemp(prefix="offload-tests-"), "offline.kubeconfig")
with open(_KUBECONFIG, "w") as _f:
    _f.write(
        "apiVersion: v1\nkind: Config\n"
        'clusters: [{name: none, cluster: {server: "https://127.0.0.1:1"}}]\n'
        "users: [{name: none, user: {token: none}}]\n"
        "contexts: [{name: none, context: {cluster: none, user: none}}]\n"
        "current-context: none\n"
    )
os.environ["KUBECONFIG"] = _KUBECONFIG
os.environ.pop("KUBERNETES_SERVICE_HOST", None)

pytest_plugins = ["hub_fixtures"]


# ---------------------------------------------------------------------------
# Running the suite in pytest-xdist workers (`make test`: -n 2).
# ---------------------------------------------------------------------------
@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    return xdist_scheduling.E2eFileScheduling(config, log)


_WORKER_STACK_REPORTS: list[dict[str, Any]] = []


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """A worker ended: keep what its test bed said and its stack tally."""
    out = getattr(node, "workeroutput", {})
    testbed_summary.MESSAGES.extend(out.get("testbed_messages", []))
    if out.get("stack_report"):
        _WORKER_STACK_REPORTS.append(out["stack_report"])


def pytest_sessionfinish(session: pytest.Session) -> None:
    """The controller writes one build/e2e-stack.json for the run from its workers' tallies."""
    if _WORKER_STACK_REPORTS:
        testbed_summary.MESSAGES.append(stack_report.write(stack_report.merge(_WORKER_STACK_REPORTS)))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    lines = testbed_summary.closing_lines()
    if lines:
        terminalreporter.write_sep("-", "e2e test bed")
        for line in lines:
            terminalreporter.write_line(line)


# ---------------------------------------------------------------------------
# BEGIN core-module fixtures (test_units ... test_config_loader).
# The example configuration shipped in docs/examples/, read from that file so
# that the tests check the documented example, not a copy of it.
# ---------------------------------------------------------------------------
from pathlib import Path as _Path  # noqa: E402 - this section's own imports

import pytest as _pytest  # noqa: E402

EXAMPLE_CONFIG = _Path(__file__).resolve().parents[1] / "docs" / "examples" / "jupyterhub_config.py"
_CATALOG_KEYS = ("profile_list", "offload_targets", "group_limits", "default_limits")


def _contract_config() -> dict:
    from traitlets.config import Config

    c = Config()
    # The documented example config, run as the hub runs a jupyterhub_config.py.
    exec(compile(EXAMPLE_CONFIG.read_text(), str(EXAMPLE_CONFIG), "exec"), {"c": c, "get_config": lambda: c})  # noqa: S102
    out = {}
    for key in _CATALOG_KEYS:
        value = None
        for section in ("OffloadSpawner", "KubeSpawner"):
            if c._has_section(section) and key in c[section]:
                value = c[section][key]
                break
        out[key] = value
    return out


@_pytest.fixture
def contract_config() -> dict:
    """docs/examples/jupyterhub_config.py's catalog: profile_list, offload_targets, group_limits, default_limits."""
    return _contract_config()


@_pytest.fixture
def contract_catalog(contract_config):
    from offload_spawner.pipeline.catalog import build_catalog

    return build_catalog(**contract_config)


# END core-module fixtures
# ---------------------------------------------------------------------------


@_pytest.fixture
def contract_file(tmp_path) -> _Path:
    """A copy of docs/examples/jupyterhub_config.py that a test may edit."""
    path = tmp_path / "jupyterhub_config.py"
    path.write_text(EXAMPLE_CONFIG.read_text())
    return path


@_pytest.fixture
def crypt_key():
    """auth_state is stored encrypted: what JUPYTERHUB_CRYPT_KEY gives a real hub."""
    from jupyterhub import crypto

    keeper = crypto.CryptKeeper.instance()
    before = keeper.keys
    keeper.keys = [os.urandom(32)]
    yield
    keeper.keys = before
