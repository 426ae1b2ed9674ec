"""Token delivery: the per-server Secret and the pod's references to it.

Given a :class:`~offload_spawner.pipeline.catalog.TokenPolicy`, the user's auth_state
(``None`` without an identity provider: only the hub token is delivered), the
server's JupyterHub API token, the server's files and the pod name, build

* the Secret manifest (base64 ``data``, the server's labels, an ownerReference
  to the pod once its uid is known),
* the env entries (``valueFrom.secretKeyRef`` only, never a value, plus
  ``BEARER_TOKEN_FILE`` pointing at the access-token file),
* the volumes and volumeMounts (the token volume with ``items`` for exactly the
  delivered token keys, and :func:`~offload_spawner.identity.server_secret.file_volumes`),
* a redacted copy of the Secret for display.

Pure functions of plain data; the spawner does the I/O. Token values only ever
appear in the Secret's ``data`` (base64), nowhere else in what is built here.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import posixpath
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..pipeline.catalog import TokenPolicy
from .refresh import jwt_expiry
from .server_secret import (
    ACCESS_TOKEN_KEY,
    DASK_HUB_TOKEN_KEY,
    HUB_TOKEN_KEY,
    REFRESH_TOKEN_KEY,
    TOKEN_DIR,
    TOKEN_ENV,
    TOKEN_VOLUME,
    file_key,
    file_volumes,
    secret_name,
)

#: Env var that tells WLCG bearer-token discovery where the token file is.
BEARER_TOKEN_FILE_ENV = "BEARER_TOKEN_FILE"  # noqa: S105 - an env var name
#: Env names KubeSpawner/JupyterHub put the hub token under as a plain value.
PLAIN_HUB_TOKEN_ENV = ("JUPYTERHUB_API_TOKEN", "JPY_API_TOKEN")
#: File mode of the token and file volumes. Group/other read is harmless inside
#: a single-user container and keeps the files readable when the server runs as
#: a non-root uid without fsGroup (Secret files are owned by root then).
VOLUME_MODE = 0o444
#: Label naming the Secret's role, for ``kubectl get secret -l``.
ROLE_LABEL = "offload-spawner.io/secret"


@dataclass(frozen=True)
class Delivery:
    """What one server gets: the Secret and the pod-side references to it."""

    secret: dict[str, Any]
    env: list[dict[str, Any]] = field(default_factory=list)
    volumes: list[dict[str, Any]] = field(default_factory=list)
    volume_mounts: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class TokenReferences:
    """How a pod refers to the tokens of the per-server Secret: env and files."""

    env: list[dict[str, Any]] = field(default_factory=list)
    volumes: list[dict[str, Any]] = field(default_factory=list)
    volume_mounts: list[dict[str, Any]] = field(default_factory=list)


def auth_tokens(auth_state: Mapping[str, Any] | None) -> tuple[str | None, str | None]:
    """(access token, refresh token) from an OAuthenticator auth_state, if present."""
    if not auth_state:
        return None, None
    access = auth_state.get("access_token")
    refresh = auth_state.get("refresh_token")
    return (
        access if isinstance(access, str) and access else None,
        refresh if isinstance(refresh, str) and refresh else None,
    )


def token_digest(token: str | None) -> str | None:
    """A SHA-256 digest to recognise a token later without keeping it."""
    return hashlib.sha256(token.encode()).hexdigest() if token else None


def secret_data(
    policy: TokenPolicy,
    auth_state: Mapping[str, Any] | None,
    hub_token: str | None,
    files: Mapping[str, str],
    dask_hub_token: str | None = None,
) -> dict[str, str]:
    """The Secret's content as text: the delivered tokens and the files
    (and ``dask_hub_token``, the scoped hub token of the Dask pods, when given).

    Without a hub token (a spawner asked for its pod before JupyterHub gave it
    one, as KubeSpawner allows) there is no hub token key, and so no reference
    to it in the pod; creating such a server is refused where the pod is
    created (token_delivery.py)."""
    access, refresh = auth_tokens(auth_state)
    channels = delivered_channels(policy)
    data: dict[str, str] = {HUB_TOKEN_KEY: hub_token} if hub_token else {}
    if access and any(channels[ACCESS_TOKEN_KEY]):
        data[ACCESS_TOKEN_KEY] = access
    if refresh and any(channels[REFRESH_TOKEN_KEY]):
        data[REFRESH_TOKEN_KEY] = refresh
    if dask_hub_token:
        data[DASK_HUB_TOKEN_KEY] = dask_hub_token
    for path, content in files.items():
        data[file_key(path)] = content
    return data


def encode_data(data: Mapping[str, str]) -> dict[str, str]:
    return {key: base64.b64encode(value.encode()).decode() for key, value in sorted(data.items())}


def secret_manifest(
    name: str,
    data: Mapping[str, str],
    labels: Mapping[str, str] | None = None,
    owner: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A Secret holding ``data`` (text, stored base64), owned by ``owner`` when given."""
    metadata: dict[str, Any] = {"name": name, "labels": {**(labels or {}), ROLE_LABEL: "server"}}
    if owner is not None:
        metadata["ownerReferences"] = [dict(owner)]
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": metadata, "data": encode_data(data)}


def owner_reference(pod_name: str, pod_uid: str) -> dict[str, Any]:
    """The Secret belongs to the pod: Kubernetes deletes it with the pod."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "name": pod_name,
        "uid": pod_uid,
        "blockOwnerDeletion": True,
        "controller": False,
    }


def _secret_env(var: str, name: str, key: str, optional: bool = False) -> dict[str, Any]:
    ref: dict[str, Any] = {"name": name, "key": key}
    if optional:
        ref["optional"] = True
    return {"name": var, "valueFrom": {"secretKeyRef": ref}}


def delivered_channels(policy: TokenPolicy) -> dict[str, tuple[bool, bool]]:
    """Secret key -> (as env, as file) for every token ``policy`` delivers."""
    return {
        ACCESS_TOKEN_KEY: (policy.access_token.env, policy.access_token.file),
        HUB_TOKEN_KEY: (policy.hub_token.env, policy.hub_token.file),
        REFRESH_TOKEN_KEY: (policy.refresh_token, policy.refresh_token),
    }


#: ``tokens.dask_pods`` names -> the Secret keys they stand for.
DASK_POD_TOKENS = {"access_token": ACCESS_TOKEN_KEY, "hub_token": HUB_TOKEN_KEY}


def dask_token_references(policy: TokenPolicy, name: str) -> TokenReferences:
    """What a server's Dask scheduler and workers read of Secret ``name``: the
    channels ``policy`` gives the server, limited to the tokens
    ``policy.dask_pods`` names (they run on the target's site; the server's hub
    token would give the site the hub's API as the user, so it goes only when
    named). The one decision the Dask spec calls, beside the server's.

    The hub token they read is not the server's: the same env name and file
    name refer to the Secret's :data:`DASK_HUB_TOKEN_KEY`, a token with only
    ``policy.dask_hub_scopes`` (the spawner issues it)."""
    refs = token_references(policy, name, only=frozenset(DASK_POD_TOKENS[t] for t in policy.dask_pods))

    def scoped(key: str) -> str:
        return DASK_HUB_TOKEN_KEY if key == HUB_TOKEN_KEY else key

    env = copy.deepcopy(refs.env)
    for item in env:
        ref = item.get("valueFrom", {}).get("secretKeyRef")
        if ref is not None:
            ref["key"] = scoped(ref["key"])
    volumes = copy.deepcopy(refs.volumes)
    for volume in volumes:
        for entry in volume.get("secret", {}).get("items", []):
            entry["key"] = scoped(entry["key"])  # the file keeps its name
    return TokenReferences(env, volumes, refs.volume_mounts)


def token_references(
    policy: TokenPolicy, name: str, present: Collection[str] | None = None, only: Collection[str] | None = None
) -> TokenReferences:
    """The env entries and token volume through which a pod reads the tokens of
    Secret ``name``, as ``policy`` says: the one decision for the server and
    for its Dask pods alike.

    ``present``: the token keys the Secret holds. None when the caller does not
    know them (the Dask cluster spec is written without any token value): then
    the user's IAM tokens are referenced as optional, since a user who did not
    log in through OAuth has none.
    """
    env: list[dict[str, Any]] = []
    file_keys: list[str] = []
    optional_files = False
    channels = delivered_channels(policy)
    for var, key in TOKEN_ENV.items():
        as_env, as_file = channels[key]
        if (
            not (as_env or as_file)
            or (present is not None and key not in present)
            or (only is not None and key not in only)
        ):
            continue
        optional = present is None and key != HUB_TOKEN_KEY
        if as_env:
            env.append(_secret_env(var, name, key, optional))
        if as_file:
            file_keys.append(key)
            optional_files = optional_files or optional
    if ACCESS_TOKEN_KEY in file_keys:
        env.append({"name": BEARER_TOKEN_FILE_ENV, "value": posixpath.join(TOKEN_DIR, ACCESS_TOKEN_KEY)})
    volumes: list[dict[str, Any]] = []
    mounts: list[dict[str, Any]] = []
    if file_keys:
        source: dict[str, Any] = {
            "secretName": name,
            "items": [{"key": k, "path": k} for k in sorted(file_keys)],
            "defaultMode": VOLUME_MODE,
        }
        if optional_files:
            # A missing optional key leaves its file out instead of failing the pod.
            source["optional"] = True
        volumes.append({"name": TOKEN_VOLUME, "secret": source})
        mounts.append({"name": TOKEN_VOLUME, "mountPath": TOKEN_DIR, "readOnly": True})
    return TokenReferences(env, volumes, mounts)


def build_delivery(
    policy: TokenPolicy,
    auth_state: Mapping[str, Any] | None,
    hub_token: str | None,
    files: Mapping[str, str],
    pod_name: str,
    labels: Mapping[str, str] | None = None,
    pod_uid: str | None = None,
    dask_hub_token: str | None = None,
) -> Delivery:
    """Everything the spawner needs to deliver tokens and files to one server
    (``dask_hub_token``: the scoped hub token of its Dask pods, stored only)."""
    name = secret_name(pod_name)
    data = secret_data(policy, auth_state, hub_token, files, dask_hub_token)
    owner = owner_reference(pod_name, pod_uid) if pod_uid else None
    secret = secret_manifest(name, data, labels, owner)

    tokens = token_references(policy, name, present=data.keys())
    more_volumes, more_mounts = file_volumes(name, files)
    return Delivery(
        secret=secret,
        env=tokens.env,
        volumes=tokens.volumes + more_volumes,
        volume_mounts=tokens.volume_mounts + more_mounts,
    )


def with_tokens(secret: Mapping[str, Any], auth_state: Mapping[str, Any] | None, policy: TokenPolicy) -> dict[str, Any]:
    """A copy of an existing Secret with the user's IAM tokens replaced (rotation).

    The hub token and the files stay as they are: the hub does not keep the
    server's API token across restarts, the Secret does. A token the pod does not
    reference (not delivered at spawn) is not added.
    """
    out = copy.deepcopy(dict(secret))
    data = dict(out.get("data") or {})
    access, refresh = auth_tokens(auth_state)
    if ACCESS_TOKEN_KEY in data and access:
        data[ACCESS_TOKEN_KEY] = base64.b64encode(access.encode()).decode()
    if REFRESH_TOKEN_KEY in data and refresh and policy.refresh_token:
        data[REFRESH_TOKEN_KEY] = base64.b64encode(refresh.encode()).decode()
    out["data"] = data
    return out


def fresh_secret_for_create(secret: Mapping[str, Any]) -> dict[str, Any]:
    """An existing Secret as a create body: only name, labels, owner and data."""
    meta = secret.get("metadata") or {}
    metadata = {k: meta[k] for k in ("name", "labels", "ownerReferences") if meta.get(k)}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": secret.get("type", "Opaque"),
        "metadata": metadata,
        "data": dict(secret.get("data") or {}),
    }


def redacted(secret: Mapping[str, Any]) -> dict[str, Any]:
    """The Secret for display: every value replaced by ``<redacted: N bytes>``."""
    out = copy.deepcopy(dict(secret))
    sizes: dict[str, int] = {}
    for key, value in (secret.get("data") or {}).items():
        sizes[key] = len(base64.b64decode(value))
    for key, value in (secret.get("stringData") or {}).items():
        sizes[key] = len(value.encode())
    out.pop("stringData", None)
    out["data"] = {key: f"<redacted: {size} bytes>" for key, size in sorted(sizes.items())}
    return out


__all__ = [
    "BEARER_TOKEN_FILE_ENV",
    "PLAIN_HUB_TOKEN_ENV",
    "Delivery",
    "TokenReferences",
    "auth_tokens",
    "build_delivery",
    "delivered_channels",
    "fresh_secret_for_create",
    "jwt_expiry",
    "owner_reference",
    "redacted",
    "secret_data",
    "secret_manifest",
    "token_digest",
    "token_references",
    "with_tokens",
]
