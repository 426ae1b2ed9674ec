"""A tiny synchronous Kubernetes REST client and kubeconfig writer.

Why not kubernetes_asyncio here: the control plane is started from plain
synchronous code (a session-scoped pytest fixture, the ``python -m testbed``
CLI) where no event loop may run, and bootstrapping needs only a handful of
requests (namespace, RBAC objects, a TokenRequest, readiness probes). The
asynchronous client is what the virtual kubelet and the tests use.
"""

from __future__ import annotations

import http.client
import json
import ssl
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .pki import CertKey


class KubeError(Exception):
    """An API answer with an unexpected status code."""

    def __init__(self, method: str, path: str, status: int, body: Any) -> None:
        message = body.get("message", body) if isinstance(body, dict) else body
        super().__init__(f"{method} {path}: HTTP {status}: {message}")
        self.status = status
        self.body = body


class KubeRest:
    """JSON over HTTPS to one API server, authenticated by client cert or bearer token."""

    def __init__(
        self,
        server: str,
        ca_file: Path,
        *,
        client: CertKey | None = None,
        token: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        parts = urlsplit(server)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 443
        self.token = token
        self.timeout = timeout
        self.context = ssl.create_default_context(cafile=str(ca_file))
        if client is not None:
            self.context.load_cert_chain(str(client.cert), str(client.key))

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        content_type: str = "application/json",
    ) -> tuple[int, Any]:
        """Send one request; return (status, decoded JSON or text). Never raises on HTTP status."""
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = content_type
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        conn = http.client.HTTPSConnection(self.host, self.port, context=self.context, timeout=self.timeout)
        try:
            conn.request(method, path, body=data, headers=headers)
            response = conn.getresponse()
            raw = response.read().decode()
        finally:
            conn.close()
        try:
            decoded: Any = json.loads(raw)
        except ValueError:
            decoded = raw
        return response.status, decoded

    def call(self, method: str, path: str, body: Any = None, ok: tuple[int, ...] = (200, 201), **kw: Any) -> Any:
        """Like :meth:`request` but raise :class:`KubeError` unless the status is in ``ok``."""
        status, decoded = self.request(method, path, body, **kw)
        if status not in ok:
            raise KubeError(method, path, status, decoded)
        return decoded

    def ensure(self, collection: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Create ``obj`` in ``collection`` (a list path); an existing object is left as it is."""
        return self.call("POST", collection, obj, ok=(200, 201, 409))


def write_kubeconfig(
    path: Path,
    server: str,
    ca_file: Path,
    user: str,
    *,
    client: CertKey | None = None,
    token: str | None = None,
    namespace: str | None = None,
) -> Path:
    """Write a one-context kubeconfig (JSON is valid YAML) and return its path."""
    credentials: dict[str, str] = {}
    if client is not None:
        credentials = {"client-certificate": str(client.cert), "client-key": str(client.key)}
    if token is not None:
        credentials["token"] = token
    context: dict[str, str] = {"cluster": "testbed", "user": user}
    if namespace:
        context["namespace"] = namespace
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "testbed", "cluster": {"server": server, "certificate-authority": str(ca_file)}}],
        "users": [{"name": user, "user": credentials}],
        "contexts": [{"name": "testbed", "context": context}],
        "current-context": "testbed",
    }
    path.write_text(json.dumps(config, indent=2) + "\n")
    path.chmod(0o600)
    return path
