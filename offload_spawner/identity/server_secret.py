"""The per-server Secret: names, keys and where its contents appear in the pod.

One Secret per server (``<pod name>-offload``) holds what the server receives
but the pod object must not show: the user's tokens, and the files the server
gets (its Dask configuration). Zero-to-JupyterHub's hub Role may create and
delete Secrets but not ConfigMaps, so non-secret files travel in the same
Secret. The pod only refers to it: env through ``valueFrom.secretKeyRef`` and
files through Secret volumes with ``items``.

Pure functions of plain data; the spawner does the I/O.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
from collections.abc import Mapping
from typing import Any

#: Secret data keys of the tokens (also their file names under TOKEN_DIR).
ACCESS_TOKEN_KEY = "access_token"  # noqa: S105 - a name, not a secret
HUB_TOKEN_KEY = "jupyterhub_api_token"  # noqa: S105 - a name, not a secret
REFRESH_TOKEN_KEY = "refresh_token"  # noqa: S105 - a name, not a secret
#: The hub token with the target's ``tokens.dask_hub_scopes``, for the server's Dask pods only.
DASK_HUB_TOKEN_KEY = "dask_jupyterhub_api_token"  # noqa: S105 - a key name
#: Where the token files are mounted; BEARER_TOKEN_FILE points into it
#: (the WLCG bearer-token discovery convention).
TOKEN_DIR = "/var/run/secrets/offload-spawner"  # noqa: S105 - a name, not a secret
TOKEN_VOLUME = "offload-tokens"  # noqa: S105 - a name, not a secret
#: Env var name -> Secret key, for the tokens delivered as env.
TOKEN_ENV = {
    "ACCESS_TOKEN": ACCESS_TOKEN_KEY,
    "JUPYTERHUB_API_TOKEN": HUB_TOKEN_KEY,
    "REFRESH_TOKEN": REFRESH_TOKEN_KEY,
}

_FILE_KEY_PREFIX = "file."
_SECRET_SUFFIX = "-offload"  # noqa: S105 - a name, not a secret


def secret_name(pod_name: str) -> str:
    """The per-server Secret's name (a DNS subdomain, like the pod name it extends)."""
    return f"{pod_name}{_SECRET_SUFFIX}"


def file_key(path: str) -> str:
    """The Secret data key holding the file at absolute ``path``.

    Keys must match ``[-._a-zA-Z0-9]+`` (at most 253 characters); a short hash
    keeps two paths with the same sanitized name apart.
    """
    if not posixpath.isabs(path) or posixpath.normpath(path) != path:
        raise ValueError(f"file path must be absolute and normalized: {path!r}")
    readable = re.sub(r"[^-._a-zA-Z0-9]", "_", posixpath.basename(path))[:200]
    digest = hashlib.sha256(path.encode()).hexdigest()[:10]
    return f"{_FILE_KEY_PREFIX}{digest}.{readable}"


def file_volumes(name: str, files: Mapping[str, str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Volumes and volumeMounts that place ``files`` (absolute path -> content)
    from Secret ``name``: one Secret volume per directory, with ``items``."""
    by_dir: dict[str, list[str]] = {}
    for path in sorted(files):
        file_key(path)  # validates the path
        by_dir.setdefault(posixpath.dirname(path), []).append(path)
    volumes: list[dict[str, Any]] = []
    mounts: list[dict[str, Any]] = []
    for index, (directory, paths) in enumerate(sorted(by_dir.items())):
        volume = f"offload-files-{index}"
        volumes.append(
            {
                "name": volume,
                "secret": {
                    "secretName": name,
                    "items": [{"key": file_key(p), "path": posixpath.basename(p)} for p in paths],
                    "defaultMode": 0o444,
                },
            }
        )
        mounts.append({"name": volume, "mountPath": directory, "readOnly": True})
    return volumes, mounts


__all__ = [
    "ACCESS_TOKEN_KEY",
    "HUB_TOKEN_KEY",
    "REFRESH_TOKEN_KEY",
    "TOKEN_DIR",
    "TOKEN_ENV",
    "TOKEN_VOLUME",
    "file_key",
    "file_volumes",
    "secret_name",
]
