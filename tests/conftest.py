"""Shared test set-up.

KubeSpawner loads a kube config when a spawner is constructed, and
kubernetes_asyncio reads KUBECONFIG when it is imported: point it, before any
import, at a kubeconfig for a cluster that is not there (no test here makes a
Kubernetes API call until the control-plane issue lands).
"""

import os
import tempfile

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
# BEGIN core-module fixtures (test_units ... test_config_loader).
# The contract's configuration example, read from CONTRACT.md itself so that
# the tests check the documented behaviour, not a copy of it.
# ---------------------------------------------------------------------------
import re as _re
from pathlib import Path as _Path

import pytest as _pytest

CONTRACT_PATH = _Path(__file__).resolve().parents[1].parent / "shared" / "design" / "CONTRACT.md"
_CATALOG_KEYS = ("profile_list", "offload_targets", "group_limits", "default_limits")


def _contract_config() -> dict:
    from traitlets.config import Config

    text = CONTRACT_PATH.read_text()
    match = _re.search(r"```python\n(.*?)```", text, _re.S)
    assert match, f"no ```python block in {CONTRACT_PATH}"
    c = Config()
    exec(compile(match.group(1), str(CONTRACT_PATH), "exec"), {"c": c})
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
    """The CONTRACT.md §1 example: profile_list, offload_targets, group_limits, default_limits."""
    return _contract_config()


@_pytest.fixture
def contract_catalog(contract_config):
    from offload_spawner.catalog import build_catalog

    return build_catalog(**contract_config)


# END core-module fixtures
# ---------------------------------------------------------------------------


@_pytest.fixture
def contract_file(tmp_path) -> _Path:
    """CONTRACT.md's own configuration example, as a jupyterhub_config.py."""
    import re

    block = re.search(r"```python\n(.*?)```", CONTRACT_PATH.read_text(), re.S).group(1)
    path = tmp_path / "jupyterhub_config.py"
    path.write_text(block)
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
