"""Turn a pod's first container into a local process: argv, env, files.

Why: the test bed's virtual kubelet (see :mod:`testbed.virtual_kubelet`) runs
pods as local processes, the way an interLink plugin turns a pod into a
SLURM/HTCondor/Docker job. What it must get right is what interLink resolves
before handing a pod to its plugin:

* **command**: ``command + args`` of the first container. Images are
  ignored (there is no container runtime); the argv runs with this machine's
  Python environment, so a pod must name a command that exists here (the
  e2e hub uses ``jupyterhub-singleuser`` from the current environment).
* **env**: ``value`` (with ``$(VAR)`` references expanded as the kubelet
  does), ``valueFrom.secretKeyRef`` / ``configMapKeyRef`` (read from the API,
  like interLink's virtual kubelet, which sends them in clear to the plugin),
  ``fieldRef`` for the usual downward-API fields, and ``envFrom``. A missing
  non-optional Secret/ConfigMap key is an error (the pod fails); a missing
  Secret/ConfigMap raises :class:`MissingObject` and the virtual kubelet waits
  for it (the kubelet's CreateContainerConfigError), since the hub creates a
  server's Secret just after its pod. The process
  gets only the pod's env plus ``PATH``/``LANG`` from this machine and
  ``HOME`` set to a private directory.
* **volumes**: Secret and ConfigMap volumes become files (``items`` and
  ``defaultMode`` honoured) in ``<pod dir>/volumes/<volume>``, replaced
  atomically; on ``node-local`` the virtual kubelet rewrites them every second
  while the pod runs (:func:`sync_volumes`), so a rotated Secret reaches the
  running process as with a kubelet (which does it within a minute or so), on
  a virtual node only once, at start, as interLink (see
  ``PodRunner.keeps_volume_files_current`` in :mod:`testbed.virtual_kubelet`); a PVC volume is one
  directory per claim (``<state dir>/claims/<namespace>/<claim>``) that
  outlives the pod, as the volume bound to a claim does; emptyDir and any
  other volume type (NFS, CSI, projected service-account tokens, ...) become
  an empty directory. A process cannot see the container's ``mountPath``; instead
  every env value and argv element that *starts with* a mountPath is rewritten
  to the local directory (``BEARER_TOKEN_FILE=/secrets/token`` becomes
  ``<pod dir>/volumes/tokens/token``). A program that hard-codes a mount path
  elsewhere will not find it.
* **network**: the pod gets its own loopback address (``status.podIP`` =
  127.0.0.N) so that many servers can listen on the same containerPort; the
  host of ``JUPYTERHUB_SERVICE_URL`` (where ``jupyterhub-singleuser`` binds;
  KubeSpawner sets it to 0.0.0.0) is rewritten to that address.
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

#: Reads an object's data: (kind "secret"|"configmap", namespace, name) -> {key: bytes} or None if absent.
DataReader = Callable[[str, str, str], Awaitable[dict[str, bytes] | None]]

_VAR_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")
_HOST_ENV = ("PATH", "LANG", "LC_ALL", "TZ")


class ProviderError(Exception):
    """The pod cannot be run; reported as phase Failed, reason ProviderFailed."""


class MissingObject(ProviderError):
    """A Secret/ConfigMap the pod needs does not exist (yet): the kubelet's
    CreateContainerConfigError. The virtual kubelet waits and tries again."""


@dataclass
class LocalProcessSpec:
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    mounts: dict[str, Path] = field(default_factory=dict)


def expand_refs(value: str, env: dict[str, str]) -> str:
    """Kubernetes ``$(VAR)`` expansion: defined vars are substituted, ``$$`` escapes, others stay."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1)
        return env.get(name, m.group(0))

    return _VAR_REF.sub(sub, value)


def rewrite_mounts(value: str, mounts: dict[str, Path]) -> str:
    """Replace a leading container mountPath in ``value`` with its local directory."""
    for mount_path in sorted(mounts, key=len, reverse=True):
        if value == mount_path or value.startswith(mount_path.rstrip("/") + "/"):
            return str(mounts[mount_path]) + value[len(mount_path.rstrip("/")) :]
    return value


def bind_service_url(url: str, pod_ip: str) -> str:
    """``JUPYTERHUB_SERVICE_URL`` with its host replaced by the pod IP (port and path kept)."""
    parts = urlsplit(url)
    netloc = pod_ip if parts.port is None else f"{pod_ip}:{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def _field_ref(pod: dict[str, Any], path: str, pod_ip: str) -> str:
    meta, spec = pod.get("metadata", {}), pod.get("spec", {})
    simple = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName"),
        "status.podIP": pod_ip,
        "status.hostIP": "127.0.0.1",
    }
    if path in simple:
        return simple[path] or ""
    m = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
    if m:
        return (meta.get(m.group(1)) or {}).get(m.group(2), "")
    raise ProviderError(f"fieldRef {path!r} is not supported by the test bed")


async def _key_ref(read: DataReader, kind: str, namespace: str, ref: dict[str, Any], var: str) -> str | None:
    data = await read(kind, namespace, ref["name"])
    optional = bool(ref.get("optional"))
    if data is None:
        if optional:
            return None
        raise MissingObject(f"env {var}: {kind} {namespace}/{ref['name']} not found")
    if ref["key"] not in data:
        if optional:
            return None
        raise ProviderError(f"env {var}: key {ref['key']!r} not found in {kind} {namespace}/{ref['name']}")
    return data[ref["key"]].decode("utf-8", errors="replace")


async def _write_volume(read: DataReader, namespace: str, volume: dict[str, Any], target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for kind, source_key, name_key in (("secret", "secret", "secretName"), ("configmap", "configMap", "name")):
        source = volume.get(source_key)
        if source is None:
            continue
        data = await read(kind, namespace, source[name_key])
        if data is None:
            if source.get("optional"):
                return
            raise MissingObject(f"volume {volume['name']}: {kind} {namespace}/{source[name_key]} not found")
        mode = source.get("defaultMode", 0o644)
        items = source.get("items") or [{"key": k, "path": k} for k in data]
        for item in items:
            if item["key"] not in data:
                if source.get("optional"):
                    continue
                raise ProviderError(f"volume {volume['name']}: key {item['key']!r} not in {kind} {source[name_key]}")
            path = (target / item["path"]).resolve()
            if not path.is_relative_to(target.resolve()):
                raise ProviderError(f"volume {volume['name']}: item path {item['path']!r} escapes the volume")
            path.parent.mkdir(parents=True, exist_ok=True)
            # Replace atomically (as the kubelet's symlink swap does): a running
            # process never reads a half-written file when the Secret changes.
            fresh = path.with_name(f".{path.name}.new")
            fresh.write_bytes(data[item["key"]])
            fresh.chmod(item.get("mode", mode) & 0o777)
            os.replace(fresh, path)


async def prepare(pod: dict[str, Any], pod_ip: str, pod_dir: Path, read: DataReader) -> LocalProcessSpec:
    """Resolve the pod into a :class:`LocalProcessSpec`; raise :class:`ProviderError` if it cannot run."""
    meta, spec = pod["metadata"], pod["spec"]
    namespace = meta["namespace"]
    containers = spec.get("containers") or []
    if not containers:
        raise ProviderError("the pod has no containers")
    container = containers[0]
    argv = list(container.get("command") or []) + list(container.get("args") or [])
    if not argv:
        raise ProviderError(
            f"container {container['name']!r} has no command or args: the test bed ignores images, "
            "so it cannot run an image's entrypoint"
        )

    volumes_dir = pod_dir / "volumes"
    volume_dirs: dict[str, Path] = {}
    for volume in spec.get("volumes") or []:
        claim = (volume.get("persistentVolumeClaim") or {}).get("claimName")
        if claim:
            # A claim outlives its pods, as the volume bound to it does: one
            # directory per claim, beside the pods' directories.
            target = pod_dir.parent.parent / "claims" / namespace / claim
            target.mkdir(parents=True, exist_ok=True)
        else:
            target = volumes_dir / volume["name"]
            await _write_volume(read, namespace, volume, target)
        volume_dirs[volume["name"]] = target
    mounts: dict[str, Path] = {}
    for mount in container.get("volumeMounts") or []:
        local = volume_dirs.get(mount["name"])
        if local is None:
            raise ProviderError(f"volumeMount {mount['mountPath']!r} names unknown volume {mount['name']!r}")
        if mount.get("subPath"):
            local = local / mount["subPath"]
        mounts[mount["mountPath"]] = local

    home = pod_dir / "home"
    home.mkdir(parents=True, exist_ok=True)
    env: dict[str, str] = {k: os.environ[k] for k in _HOST_ENV if k in os.environ}
    env["HOME"] = str(home)

    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        for kind, key in (("secret", "secretRef"), ("configmap", "configMapRef")):
            ref = source.get(key)
            if ref is None:
                continue
            data = await read(kind, namespace, ref["name"])
            if data is None:
                if ref.get("optional"):
                    continue
                raise MissingObject(f"envFrom: {kind} {namespace}/{ref['name']} not found")
            for k, v in data.items():
                env[prefix + k] = v.decode("utf-8", errors="replace")

    for item in container.get("env") or []:
        name = item["name"]
        value_from = item.get("valueFrom")
        if value_from is None:
            env[name] = expand_refs(item.get("value", ""), env)
            continue
        value: str | None
        if "secretKeyRef" in value_from:
            value = await _key_ref(read, "secret", namespace, value_from["secretKeyRef"], name)
        elif "configMapKeyRef" in value_from:
            value = await _key_ref(read, "configmap", namespace, value_from["configMapKeyRef"], name)
        elif "fieldRef" in value_from:
            value = _field_ref(pod, value_from["fieldRef"]["fieldPath"], pod_ip)
        elif "resourceFieldRef" in value_from:
            ref = value_from["resourceFieldRef"]
            kind, _, resource = ref["resource"].partition(".")
            value = str(((container.get("resources") or {}).get(kind) or {}).get(resource, ""))
        else:
            raise ProviderError(f"env {name}: unsupported valueFrom {sorted(value_from)}")
        if value is not None:
            env[name] = value

    env = {k: rewrite_mounts(v, mounts) for k, v in env.items()}
    if "JUPYTERHUB_SERVICE_URL" in env:
        env["JUPYTERHUB_SERVICE_URL"] = bind_service_url(env["JUPYTERHUB_SERVICE_URL"], pod_ip)
    argv = [rewrite_mounts(expand_refs(a, env), mounts) for a in argv]

    cwd = home
    if container.get("workingDir"):
        local = Path(rewrite_mounts(container["workingDir"], mounts))
        if local.is_dir():
            cwd = local
    return LocalProcessSpec(argv=argv, env=env, cwd=cwd, mounts=mounts)


async def sync_volumes(pod: dict[str, Any], pod_dir: Path, read: DataReader) -> None:
    """Rewrite the pod's Secret/ConfigMap volume files from the current objects,
    as a kubelet does periodically. A volume whose object is missing (a rotation
    between its delete and create) or unreadable keeps its files."""
    namespace = pod["metadata"]["namespace"]
    for volume in pod["spec"].get("volumes") or []:
        if "secret" not in volume and "configMap" not in volume:
            continue
        try:
            await _write_volume(read, namespace, volume, pod_dir / "volumes" / volume["name"])
        except ProviderError:
            continue


def decode_data(obj: dict[str, Any], kind: str) -> dict[str, bytes]:
    """The data of a Secret (base64) or ConfigMap (text + binaryData) as bytes."""
    out: dict[str, bytes] = {}
    if kind == "secret":
        for k, v in (obj.get("data") or {}).items():
            out[k] = base64.b64decode(v)
        for k, v in (obj.get("stringData") or {}).items():
            out[k] = v.encode()
    else:
        for k, v in (obj.get("data") or {}).items():
            out[k] = v.encode()
        for k, v in (obj.get("binaryData") or {}).items():
            out[k] = base64.b64decode(v)
    return out
