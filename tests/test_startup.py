"""The catalog is checked when a real ``jupyterhub`` process starts."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import EXAMPLE_CONFIG

pytestmark = pytest.mark.hub


def _config(tmp_path: Path, replace: tuple[str, str] | None = None) -> Path:
    block = EXAMPLE_CONFIG.read_text()
    if replace:
        assert replace[0] in block
        block = block.replace(*replace)
    path = tmp_path / "jupyterhub_config.py"
    path.write_text(
        block
        + f"\nc.JupyterHub.ip = '127.0.0.1'\nc.JupyterHub.port = {_free_port()}\n"
        + f"c.JupyterHub.hub_port = {_free_port()}\n"
        + f"c.JupyterHub.db_url = 'sqlite:///{tmp_path}/hub.sqlite'\n"
        + f"c.JupyterHub.cookie_secret_file = '{tmp_path}/cookie_secret'\n"
        + f"c.ConfigurableHTTPProxy.pid_file = '{tmp_path}/proxy.pid'\n"
        + f"c.ConfigurableHTTPProxy.api_url = 'http://127.0.0.1:{_free_port()}'\n"
        + "c.Authenticator.allow_all = True\n"
    )
    return path


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_hub(config: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "jupyterhub", "-f", str(config), "--no-ssl"],
        cwd=config.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "JUPYTERHUB_CRYPT_KEY": ""},
        start_new_session=True,
    )


def _terminate(hub: subprocess.Popen) -> None:
    """SIGTERM lets the hub stop its proxy; SIGKILL the group only if it hangs."""
    if hub.poll() is None:
        hub.send_signal(signal.SIGTERM)
        try:
            hub.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(hub.pid, signal.SIGKILL)
            hub.wait()


def _run_to_exit(config: Path) -> tuple[int, str]:
    hub = _start_hub(config)
    try:
        output, _ = hub.communicate(timeout=90)
    finally:
        _terminate(hub)
    return hub.returncode, output


def test_bad_config_stops_the_hub_with_the_key_path(tmp_path):
    code, output = _run_to_exit(_config(tmp_path, ('"memory": "180G"', '"memory": "180 gigs"')))
    assert code == 1, output
    assert "offload_targets.naples.limits.memory" in output
    assert "180 gigs" in output


def test_bad_config_stops_the_hub_when_the_class_is_imported(tmp_path):
    """The other documented way to name the spawner: the class itself."""
    config = _config(
        tmp_path,
        (
            'c.JupyterHub.spawner_class = "offload"',
            "from offload_spawner import OffloadSpawner\nc.JupyterHub.spawner_class = OffloadSpawner",
        ),
    )
    text = config.read_text().replace('"backend": "slurm"', '"backend": "pbs"')
    config.write_text(text)
    code, output = _run_to_exit(config)
    assert code == 1, output
    assert "offload_targets.leonardo.backend" in output


def test_good_config_is_summarised_at_start(tmp_path):
    hub = _start_hub(_config(tmp_path))
    seen = []
    try:
        sel = selectors.DefaultSelector()
        sel.register(hub.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if not sel.select(timeout=1):
                if hub.poll() is not None:
                    break
                continue
            line = hub.stdout.readline()
            if not line:
                break
            seen.append(line)
            if "offload_spawner: 1 profile(s), 3 target(s)" in line:
                break
    finally:
        _terminate(hub)
    assert any("offload_spawner: 1 profile(s), 3 target(s)" in line for line in seen), "".join(seen)
