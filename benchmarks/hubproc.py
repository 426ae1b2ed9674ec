"""A real JupyterHub process (``python -m jupyterhub``) for the figures that need
one: its resident memory, and spawn storms against the test bed.

The hub runs with JupyterHub's DummyAuthenticator (any password) so that the
benchmark can log users in through the login page, and an API token for the
benchmark (``BENCH_TOKEN``, passed through the environment only) as a service
with the admin role.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

_CONFIG = """\
import os, sys
sys.path[:0] = {paths!r}
import catalogs

c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allow_all = True
c.JupyterHub.bind_url = "http://127.0.0.1:{port}"
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {hub_port}
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_api_port}"
c.ConfigurableHTTPProxy.pid_file = {pid_file!r}
c.JupyterHub.db_url = "sqlite:///" + {db!r}
c.JupyterHub.cookie_secret_file = {cookie!r}
c.JupyterHub.services = [{{"name": "bench", "api_token": os.environ["BENCH_TOKEN"]}}]
c.JupyterHub.load_roles = [{{"name": "bench", "scopes": ["admin:users", "admin:servers", "admin:groups"],
                            "services": ["bench"]}}]
c.JupyterHub.load_groups = {groups!r}
# Many spawns at once are the point; lift JupyterHub's default cap of 100 pending.
c.JupyterHub.concurrent_spawn_limit = 0
c.JupyterHub.spawner_class = {spawner_class!r}
settings = {settings}
for key, value in settings.items():
    setattr(c[{section!r}], key, value)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class HubProcess:
    """``with HubProcess(...) as hub:``: started, answering, then stopped (servers too).

    ``settings`` is Python source of a dict of spawner traits, evaluated in the
    hub's config file (it may call :mod:`catalogs`)."""

    def __init__(
        self,
        spawner_class: str,
        section: str,
        settings: str,
        groups: dict[str, list[str]],
        env: dict[str, str] | None = None,
    ) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="offload-bench-hub-"))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = secrets.token_hex(16)
        config = _CONFIG.format(
            paths=[str(HERE), str(ROOT)],
            port=self.port,
            hub_port=free_port(),
            proxy_api_port=free_port(),
            pid_file=str(self.workdir / "proxy.pid"),
            db=str(self.workdir / "hub.sqlite"),
            cookie=str(self.workdir / "cookie_secret"),
            groups={name: {"users": users} for name, users in groups.items()},
            spawner_class=spawner_class,
            settings=settings,
            section=section,
        )
        (self.workdir / "jupyterhub_config.py").write_text(config)
        self.env = {**os.environ, **(env or {}), "BENCH_TOKEN": self.token}
        self.process: subprocess.Popen | None = None
        self.session = requests.Session()

    def __enter__(self) -> HubProcess:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "jupyterhub", "-f", str(self.workdir / "jupyterhub_config.py")],
            cwd=self.workdir,
            env=self.env,
            start_new_session=True,
            stdout=open(self.workdir / "hub.log", "wb"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 120
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"the hub exited: {(self.workdir / 'hub.log').read_text()[-3000:]}")
            try:
                if self.session.get(self.url + "/hub/api/", timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the hub did not answer: {(self.workdir / 'hub.log').read_text()[-3000:]}")
            time.sleep(0.2)

    def __exit__(self, *exc: Any) -> None:
        if self.process is not None and self.process.poll() is None:
            # SIGTERM: the hub stops its servers (cleanup_servers) and the proxy, then exits.
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=120)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.session.request(
            method, f"{self.url}/hub/api/{path}", headers={"Authorization": f"token {self.token}"}, timeout=60, **kwargs
        )

    def login(self, user: str) -> requests.Session:
        """A browser session of ``user`` (DummyAuthenticator accepts any password)."""
        browser = requests.Session()
        browser.get(f"{self.url}/hub/login", timeout=30)
        xsrf = browser.cookies.get("_xsrf", "")
        r = browser.post(
            f"{self.url}/hub/login",
            data={"username": user, "password": "x", "_xsrf": xsrf},
            timeout=60,
            allow_redirects=False,
        )
        assert r.status_code == 302, (r.status_code, r.text[:500])
        return browser

    def form(self, browser: requests.Session) -> str:
        r = browser.get(f"{self.url}/hub/spawn", timeout=60)
        assert r.status_code == 200, (r.status_code, r.text[:500])
        return r.text

    def rss_kib(self) -> int:
        """Resident memory of the hub process itself (not the proxy)."""
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")
