"""A real OpenID Connect provider shaped like INDIGO IAM, on loopback.

It runs ``testbed/oidc/server.js`` (the ``oidc-provider`` npm package; ``npm ci``
in ``testbed/oidc`` — ``make setup`` does it) as a child process, for tests and
the demo::

    with OidcProvider(
        users={"alice": {"password": "pw", "groups": ["cms"]}},
        redirect_uris=["http://127.0.0.1:8000/hub/oauth_callback"],
    ) as idp:
        c.IAMOAuthenticator.issuer = idp.issuer
        ...
        session = login_through_hub(hub_url, "alice", "pw")

What it is: issuer ``http://127.0.0.1:<port>`` with OIDC discovery, routes
``/authorize /token /userinfo /jwks``, one confidential client, JWT access
tokens (with ``exp``) of a configurable lifetime, more clients on demand
(``extra_clients``; one without a secret is public), refresh tokens
(``offline_access``), the ``groups`` claim (scope ``profile``) and the
``wlcg.groups`` claim with leading slashes (scope ``wlcg.groups``), and a
username + password form (consent granted automatically). The redirect URI's
port may differ from the registered one (loopback, RFC 8252 §7.3), so a hub on
any free port fits. Test controls: :meth:`OidcProvider.revoke` (the user's
refresh grant and login fail from then on), :meth:`stats` (grants counted on
the provider side), :meth:`set_access_token_ttl`.
"""

from __future__ import annotations

import json
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import requests

from .procs import ManagedProcess

OIDC_DIR = Path(__file__).resolve().parent / "oidc"
DEFAULT_SCOPES = ["openid", "profile", "email", "offline_access", "wlcg", "wlcg.groups"]


class OidcProviderError(RuntimeError):
    pass


def ensure_installed() -> None:
    """``npm ci`` in testbed/oidc when its node_modules is missing (idempotent)."""
    if (OIDC_DIR / "node_modules" / "oidc-provider" / "package.json").exists():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise OidcProviderError("npm is not on PATH: install Node.js 20+ to run the test OpenID Connect provider")
    subprocess.run([npm, "ci", "--no-fund", "--no-audit", "--silent"], cwd=OIDC_DIR, check=True)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class OidcProvider:
    """The provider as a child process (context manager, or start()/stop())."""

    def __init__(
        self,
        users: dict[str, dict[str, Any]],
        *,
        redirect_uris: list[str] | None = None,
        client_id: str = "jupyterhub",
        client_secret: str | None = None,
        access_token_ttl: int = 3600,
        refresh_token_ttl: int = 86400,
        rotate_refresh_token: bool = False,
        extra_clients: list[dict[str, Any]] | None = None,
        port: int | None = None,
        workdir: Path | None = None,
    ) -> None:
        self.users = users
        self.redirect_uris = redirect_uris or ["http://127.0.0.1:8000/hub/oauth_callback"]
        self.client_id = client_id
        self.client_secret = client_secret or secrets.token_urlsafe(24)
        self.access_token_ttl = access_token_ttl
        self.refresh_token_ttl = refresh_token_ttl
        self.rotate_refresh_token = rotate_refresh_token
        #: more clients, {"client_id", optional "client_secret" (none: a public client), "redirect_uris"}
        self.extra_clients = list(extra_clients or [])
        self.port = port
        self._admin_token = secrets.token_urlsafe(24)
        self._workdir = workdir
        self._tmp: tempfile.TemporaryDirectory | None = None
        self._proc: ManagedProcess | None = None
        self.issuer = ""

    # --- lifecycle ---------------------------------------------------------------

    def start(self, timeout: float = 30.0) -> OidcProvider:
        ensure_installed()
        node = shutil.which("node")
        if node is None:
            raise OidcProviderError("node is not on PATH: install Node.js 20+")
        if self._workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="oidc-provider-")
            self._workdir = Path(self._tmp.name)
        self.port = self.port or free_port()
        config_path = self._workdir / "oidc-config.json"
        config_path.write_text(
            json.dumps(
                {
                    "port": self.port,
                    "client": {
                        "client_id": self.client_id,
                        "client_secret": self.client_secret,
                        "redirect_uris": self.redirect_uris,
                    },
                    "users": self.users,
                    "access_token_ttl": self.access_token_ttl,
                    "refresh_token_ttl": self.refresh_token_ttl,
                    "rotate_refresh_token": self.rotate_refresh_token,
                    "extra_clients": self.extra_clients,
                    "admin_token": self._admin_token,
                }
            )
        )
        config_path.chmod(0o600)
        self.log_path = self._workdir / "oidc-provider.log"
        self._proc = ManagedProcess(
            "oidc-provider", [node, str(OIDC_DIR / "server.js"), str(config_path)], self.log_path, cwd=OIDC_DIR
        ).start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
            for line in text.splitlines():
                if line.startswith("READY "):
                    self.issuer = line.split(" ", 1)[1].strip()
                    return self
            if not self._proc.alive():
                raise OidcProviderError(f"the OpenID Connect provider exited: {text[-2000:]}")
            time.sleep(0.05)
        self.stop()
        raise OidcProviderError(f"the OpenID Connect provider did not start within {timeout:.0f} s")

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.stop()
            self._proc = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
            self._workdir = None

    def __enter__(self) -> OidcProvider:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- test controls ------------------------------------------------------------

    def _admin(self, method: str, path: str, **kwargs: Any) -> dict:
        r = requests.request(
            method,
            f"{self.issuer}/admin/{path}",
            headers={"Authorization": f"Bearer {self._admin_token}"},
            timeout=10,
            **kwargs,
        )
        r.raise_for_status()
        return r.json()

    def stats(self) -> dict[str, dict[str, int]]:
        """Successful token grants per user, counted by the provider:
        ``{"code": {...}, "refresh": {...}, "refresh_failed": {...}}``."""
        return self._admin("GET", "stats")

    def refresh_count(self, user: str) -> int:
        return self.stats().get("refresh", {}).get(user, 0)

    def revoke(self, user: str) -> None:
        """From now on the user's refresh grant and login fail (issued access tokens live on)."""
        self._admin("POST", f"users/{user}/revoke")

    def restore(self, user: str) -> None:
        self._admin("POST", f"users/{user}/restore")

    def set_access_token_ttl(self, seconds: int) -> None:
        """Lifetime of access tokens issued from now on."""
        self._admin("POST", "ttl", json={"access_token_ttl": seconds})

    def authenticator_config(self) -> dict[str, str]:
        """``c.IAMOAuthenticator`` settings for a hub logging in here (tests, demo)."""
        return {"issuer": self.issuer, "client_id": self.client_id, "client_secret": self.client_secret}

    def login_tokens(
        self, username: str, password: str, *, client_id: str | None = None, timeout: float = 30
    ) -> dict[str, Any]:
        """The token answer of an authorization-code login of ``username`` as
        ``client_id`` (default: the main client; an ``extra_clients`` one may be
        public), without a hub: what a client gets when a user logs in to it."""
        client = next((c for c in self.extra_clients if c["client_id"] == client_id), None)
        if client_id is None or client_id == self.client_id:
            client = {
                "client_id": self.client_id,
                "client_secret": self.client_secret,
                "redirect_uris": self.redirect_uris,
            }
        if client is None:
            raise OidcProviderError(f"no client {client_id!r} at this provider")
        redirect_uri = (client.get("redirect_uris") or self.redirect_uris)[0]
        s = requests.Session()
        params = {
            "client_id": client["client_id"],
            "redirect_uri": redirect_uri,
            "response_type": "code",
            "scope": " ".join(DEFAULT_SCOPES),
            "state": secrets.token_urlsafe(8),
        }
        r = s.get(f"{self.issuer}/authorize", params=params, timeout=timeout, allow_redirects=False)
        code = None
        for _ in range(10):
            location = r.headers.get("location")
            if location is None:
                parser = _FormParser()
                parser.feed(r.text)
                if parser.action is None or "username" not in parser.inputs:
                    raise OidcProviderError(f"no login form at {r.url} (HTTP {r.status_code})")
                data = {**parser.inputs, "username": username, "password": password}
                r = s.post(urljoin(r.url, parser.action), data=data, timeout=timeout, allow_redirects=False)
                continue
            location = urljoin(r.url, location)
            if location.startswith(redirect_uri):
                code = parse_qs(urlsplit(location).query).get("code", [None])[0]
                break
            r = s.get(location, timeout=timeout, allow_redirects=False)
        if code is None:
            raise OidcProviderError(f"the provider did not log {username} in to {client['client_id']}")
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
        auth = None
        if client.get("client_secret"):
            auth = (client["client_id"], client["client_secret"])
        else:
            form["client_id"] = client["client_id"]
        r = requests.post(f"{self.issuer}/token", data=form, auth=auth, timeout=timeout)
        if r.status_code != 200:
            raise OidcProviderError(f"the code grant for {client['client_id']} failed: HTTP {r.status_code}")
        return r.json()

    @property
    def discovery_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"


# --- a browser-less login -----------------------------------------------------------


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.inputs: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "form" and self.action is None:
            self.action = a.get("action") or ""
        elif tag == "input" and a.get("name"):
            self.inputs[a["name"] or ""] = a.get("value") or ""


def login_through_hub(
    hub_url: str, username: str, password: str, *, session: requests.Session | None = None, timeout: float = 30
) -> requests.Session:
    """Log in to a hub whose authenticator sends users to :class:`OidcProvider`,
    the way a browser does: ``{hub_url}/hub/oauth_login`` -> the provider's login
    form -> POST username/password -> (consent, granted) -> the hub's callback.

    Returns the session holding the hub's login cookies. Raises
    :class:`OidcProviderError` when the login is refused at any step.
    """
    s = session or requests.Session()
    r = s.get(hub_url.rstrip("/") + "/hub/oauth_login", timeout=timeout)
    if r.status_code >= 400:
        raise OidcProviderError(f"the login for {username} stopped at {r.url.split('?')[0]}: HTTP {r.status_code}")
    parser = _FormParser()
    parser.feed(r.text)
    if parser.action is None or "username" not in parser.inputs:
        raise OidcProviderError(f"no login form at {r.url} (HTTP {r.status_code})")
    data = {**parser.inputs, "username": username, "password": password}
    r = s.post(urljoin(r.url, parser.action), data=data, timeout=timeout)
    if r.status_code >= 400:
        raise OidcProviderError(f"the hub did not log {username} in: HTTP {r.status_code} at {r.url.split('?')[0]}")
    if "/interaction/" in r.url:
        raise OidcProviderError(f"the provider refused the login for {username}")
    if not any(
        c.name.startswith("jupyterhub-session-id") or c.name.startswith("jupyterhub-hub-login") for c in s.cookies
    ):
        raise OidcProviderError(
            f"the hub did not log {username} in (ended at {r.url.split('?')[0]}, HTTP {r.status_code})"
        )
    return s


__all__ = ["DEFAULT_SCOPES", "OidcProvider", "OidcProviderError", "ensure_installed", "free_port", "login_through_hub"]
