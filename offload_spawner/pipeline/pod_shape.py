"""Reshape the server pod for an interLink virtual node.

A pod KubeSpawner builds for this cluster carries things a remote site cannot
use or must not get: PVC volumes (only interLink's Kubernetes plugin can
replicate them), Zero-to-JupyterHub's privileged init containers (e.g.
``block-cloud-metadata``), a ServiceAccount token, and a UID the SLURM plugin
reads from ``securityContext.runAsUser``. :func:`shape_pod` changes the V1Pod
KubeSpawner made (in place, also returned), following a target's typed
:class:`~offload_spawner.pipeline.catalog.PodShapeSettings`. It is pure (no I/O) and
is applied only to session-offload targets; in-cluster pods are not touched.

List items may be kubernetes models or plain dicts (KubeSpawner keeps some
admin-given items as dicts), so both are read and written.
"""

from __future__ import annotations

from typing import Any

from kubernetes_asyncio.client.models import V1EmptyDirVolumeSource, V1PodSecurityContext, V1SecurityContext, V1Volume

from ..backends import ADAPTERS
from ..backends.interlink_kubernetes import REMOTE_PVC_ANNOTATION
from .catalog import PodShapeSettings

DISABLE_INIT_ANNOTATION = "interlink.eu/disable-offload-init-containers"


def _get(obj: Any, attr: str, key: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj.get(key, obj.get(attr))
    return getattr(obj, attr, None)


def _set(obj: Any, attr: str, key: str, value: Any) -> None:
    if isinstance(obj, dict):
        obj.pop(attr, None)
        obj[key] = value
    else:
        setattr(obj, attr, value)


def _claim(volume: Any) -> str | None:
    """The claim name of a PVC volume, else None."""
    source = _get(volume, "persistent_volume_claim", "persistentVolumeClaim")
    return _get(source, "claim_name", "claimName") if source is not None else None


def _is_privileged(container: Any) -> bool:
    context = _get(container, "security_context", "securityContext")
    if context is None:
        return False
    capabilities = _get(context, "capabilities", "capabilities")
    return bool(
        _get(context, "privileged", "privileged")
        or _get(context, "run_as_user", "runAsUser") == 0
        or (capabilities is not None and _get(capabilities, "add", "add"))
    )


def _all_containers(spec: Any) -> list[Any]:
    return list(spec.containers or []) + list(spec.init_containers or [])


def _shape_volumes(pod: Any, mode: str | list[str], remote_pvc_annotation: bool) -> None:
    spec = pod.spec
    volumes = list(spec.volumes or [])
    pvcs = {_get(v, "name", "name"): claim for v in volumes if (claim := _claim(v)) is not None}
    if not pvcs:
        return
    if mode == "keep":
        keep = set(pvcs)
    elif isinstance(mode, list):
        keep = set(mode) & set(pvcs)
    else:
        keep = set()
    dropped = set(pvcs) - keep if mode == "drop" else set()
    out = []
    for volume in volumes:
        name = _get(volume, "name", "name")
        if name not in pvcs or name in keep:
            out.append(volume)
        elif name not in dropped:
            out.append(V1Volume(name=name, empty_dir=V1EmptyDirVolumeSource()))
    spec.volumes = out or None
    if dropped:
        for container in _all_containers(spec):
            mounts = _get(container, "volume_mounts", "volumeMounts") or []
            kept = [m for m in mounts if _get(m, "name", "name") not in dropped]
            _set(container, "volume_mounts", "volumeMounts", kept or None)
    if remote_pvc_annotation and keep:
        add_to_list_annotation(pod, REMOTE_PVC_ANNOTATION, sorted(pvcs[name] for name in keep))


def add_to_list_annotation(pod: Any, key: str, names: list[str]) -> None:
    """Add ``names`` to the comma-separated list in annotation ``key`` (kept in
    order, no repeats): interLink reads both of its list annotations this way."""
    annotations = dict(pod.metadata.annotations or {})
    listed = [n for n in (annotations.get(key) or "").split(",") if n]
    listed += [n for n in dict.fromkeys(names) if n not in listed]
    annotations[key] = ",".join(listed)
    pod.metadata.annotations = annotations


def _shape_init_containers(pod: Any, mode: str) -> None:
    spec = pod.spec
    privileged = [c for c in spec.init_containers or [] if _is_privileged(c)]
    if not privileged or mode == "keep":
        return
    if mode == "drop":
        spec.init_containers = [c for c in spec.init_containers if c not in privileged] or None
        return
    add_to_list_annotation(pod, DISABLE_INIT_ANNOTATION, [_get(c, "name", "name") for c in privileged])


def _shape_security(pod: Any, shape: PodShapeSettings) -> None:
    spec = pod.spec
    pod_fields = {"run_as_user": shape.run_as_user, "run_as_group": shape.run_as_group, "fs_group": shape.fs_group}
    pod_fields = {k: v for k, v in pod_fields.items() if v is not None}
    if pod_fields:
        if spec.security_context is None:
            spec.security_context = V1PodSecurityContext()
        for attr, value in pod_fields.items():
            _set(spec.security_context, attr, _CAMEL[attr], value)
    # A container's own runAsUser/runAsGroup would win over the pod's: make them agree,
    # so the site sees one UID (the SLURM plugin runs the job as runAsUser).
    for attr in ("run_as_user", "run_as_group"):
        value = pod_fields.get(attr)
        if value is None:
            continue
        for container in spec.containers or []:
            context = _get(container, "security_context", "securityContext")
            if context is None:
                context = V1SecurityContext() if not isinstance(container, dict) else {}
                _set(container, "security_context", "securityContext", context)
            _set(context, attr, _CAMEL[attr], value)


#: Zero-to-JupyterHub's ``scheduling.userPods.nodeAffinity.matchNodePurpose: require`` label.
NODE_PURPOSE_LABEL = "hub.jupyter.org/node-purpose"


def _drop_node_purpose_affinity(pod: Any) -> None:
    affinity = pod.spec.affinity
    node_affinity = _get(affinity, "node_affinity", "nodeAffinity")
    required = _get(
        node_affinity,
        "required_during_scheduling_ignored_during_execution",
        "requiredDuringSchedulingIgnoredDuringExecution",
    )
    if required is None:
        return
    terms = []
    for term in _get(required, "node_selector_terms", "nodeSelectorTerms") or []:
        expressions = _get(term, "match_expressions", "matchExpressions") or []
        kept = [e for e in expressions if _get(e, "key", "key") != NODE_PURPOSE_LABEL]
        if kept or _get(term, "match_fields", "matchFields"):
            _set(term, "match_expressions", "matchExpressions", kept or None)
            terms.append(term)
    if terms:
        _set(required, "node_selector_terms", "nodeSelectorTerms", terms)
    else:
        _set(
            node_affinity,
            "required_during_scheduling_ignored_during_execution",
            "requiredDuringSchedulingIgnoredDuringExecution",
            None,
        )


_CAMEL = {"run_as_user": "runAsUser", "run_as_group": "runAsGroup", "fs_group": "fsGroup"}


def shape_pod(pod: Any, shape: PodShapeSettings, backend: str) -> Any:
    """Apply ``shape`` (see :meth:`Target.effective_pod_shape`) to ``pod`` (a V1Pod), in place."""
    adapter = ADAPTERS.get(backend)
    _shape_volumes(pod, shape.volumes or "emptydir", adapter is not None and adapter.keeps_claims)
    _shape_init_containers(pod, shape.privileged_init_containers)
    _shape_security(pod, shape)
    pod.spec.automount_service_account_token = shape.automount_service_account_token
    if not shape.keep_node_purpose_affinity:
        _drop_node_purpose_affinity(pod)
    return pod


__all__ = ["DISABLE_INIT_ANNOTATION", "NODE_PURPOSE_LABEL", "REMOTE_PVC_ANNOTATION", "shape_pod"]
