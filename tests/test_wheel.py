"""The built wheel works on its own, not only the editable install.

``python -m build --wheel`` on a copy of the checkout; the wheel installed
into a fresh virtual environment; then, from that environment and outside the
checkout (so nothing can be imported from the source tree):

* ``offload-spawner check|render|form`` on the docs' example configuration;
* a real ``jupyterhub`` with ``c.JupyterHub.spawner_class = "offload"``
  (the entry point), the real configurable-http-proxy, a user logging in and
  getting the spawn form rendered from the templates inside the wheel.

The fresh environment gets the wheel's dependencies from the test
environment's site-packages (a path entry, so the editable install's import
hook there is not active): the test environment holds only what setup.cfg
declares, so a module the wheel leaves out still fails here.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import zipfile
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "docs" / "examples" / "jupyterhub_config.py"
pytestmark = pytest.mark.wheel

_SKIP_COPY = shutil.ignore_patterns(".venv", ".git", "build", "dist", "*.egg-info", "__pycache__", "node_modules")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("src") / "offload-spawner"
    shutil.copytree(ROOT, src, ignore=_SKIP_COPY)
    out = tmp_path_factory.mktemp("dist")
    r = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(out), str(src)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    (path,) = out.glob("offload_spawner-*.whl")
    return path


@pytest.fixture(scope="module")
def fresh_venv(wheel, tmp_path_factory) -> Path:
    venv = tmp_path_factory.mktemp("venv") / "fresh"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    # The dependencies: the test environment's site-packages as a plain path entry (see module doc).
    (site / "zz_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--no-deps",
            "--no-index",
            "--quiet",
            str(wheel),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr
    return venv


def _env(venv: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env['PATH']}"
    return env


def run(venv: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(venv / "bin" / args[0]), *args[1:]], capture_output=True, text=True, cwd=cwd, env=_env(venv), timeout=300
    )


def test_wheel_holds_the_package_and_its_templates(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "offload_spawner/hub/spawner.py" in names
    for template in ("form.html", "form.js"):
        assert f"offload_spawner/templates/{template}" in names, names
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "offload = offload_spawner.entrypoint:OffloadSpawner" in text
    assert "offload-spawner = offload_spawner.hub.cli:main" in text


def test_the_fresh_venv_imports_the_wheel_not_the_checkout(fresh_venv, tmp_path):
    r = run(
        fresh_venv,
        "python",
        "-c",
        "import offload_spawner, offload_spawner.templates as t; print(offload_spawner.__file__); print(t.__file__)",
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    for line in r.stdout.split():
        assert Path(line).is_relative_to(fresh_venv), line
        assert not Path(line).is_relative_to(ROOT), line


def test_console_script_check_render_form(fresh_venv, tmp_path):
    check = run(fresh_venv, "offload-spawner", "check", "-f", str(EXAMPLE), cwd=tmp_path)
    assert check.returncode == 0, check.stderr
    assert f"{EXAMPLE}: OK" in check.stdout

    render = run(
        fresh_venv,
        "offload-spawner",
        "render",
        "-f",
        str(EXAMPLE),
        "--user",
        "carol",
        "--groups",
        "cms,ai-infn,gpu-users",
        "-o",
        "profile=analysis",
        "-o",
        "target=leonardo",
        cwd=tmp_path,
    )
    assert render.returncode == 0, render.stderr
    out = json.loads(render.stdout)
    assert out["pod"]["spec"]["nodeSelector"]["kubernetes.io/hostname"] == "vk-leonardo"

    form = run(
        fresh_venv, "offload-spawner", "form", "-f", str(EXAMPLE), "--user", "bob", "--groups", "cms", cwd=tmp_path
    )
    assert form.returncode == 0, form.stderr
    assert 'id="offload-spawner-form"' in form.stdout  # the template shipped in the wheel


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_real_hub_loads_the_offload_entry_point_and_serves_the_form(fresh_venv, tmp_path, requires_chp):
    port, hub_port, api_port = _free_port(), _free_port(), _free_port()
    config = tmp_path / "jupyterhub_config.py"
    config.write_text(
        EXAMPLE.read_text()
        + f"""
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {port}
c.JupyterHub.hub_port = {hub_port}
c.JupyterHub.db_url = "sqlite:///{tmp_path}/hub.sqlite"
c.JupyterHub.cookie_secret_file = "{tmp_path}/cookie_secret"
c.ConfigurableHTTPProxy.pid_file = "{tmp_path}/proxy.pid"
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{api_port}"
c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = "wheel-test"
c.Authenticator.allow_all = True
c.JupyterHub.load_groups = {{"cms": {{"users": ["bob"]}}}}
c.OffloadSpawner.offload_availability = False
"""
    )
    hub = subprocess.Popen(
        [str(fresh_venv / "bin" / "python"), "-m", "jupyterhub", "-f", str(config)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        env={**_env(fresh_venv), "JUPYTERHUB_CRYPT_KEY": ""},
    )
    base = f"http://127.0.0.1:{port}/hub/"
    try:
        session = requests.Session()
        deadline = time.monotonic() + 120
        while True:
            assert hub.poll() is None, hub.stdout.read()
            try:
                login = session.get(base + "login", timeout=5)
                if login.status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, "the hub did not answer"
            time.sleep(0.5)
        r = session.post(
            base + "login",
            data={"username": "bob", "password": "wheel-test", "_xsrf": session.cookies.get("_xsrf", "")},
            timeout=30,
        )
        assert r.status_code == 200, r.text[:500]
        form = session.get(base + "spawn", timeout=60)
        assert form.status_code == 200
        assert 'id="offload-spawner-form"' in form.text
        assert re.search(r'name="profile"[^>]*value="analysis"', form.text), form.text[:2000]
        assert "vk-leonardo" not in form.text  # bob (cms) may not use Leonardo
    finally:
        if hub.poll() is None:
            hub.send_signal(signal.SIGTERM)
            try:
                hub.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(hub.pid, signal.SIGKILL)
                hub.wait()
    output = hub.stdout.read()
    assert "offload_spawner: 1 profile(s), 3 target(s)" in output, output[-3000:]
