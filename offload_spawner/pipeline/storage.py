"""Where a user's files are: the catalog's ``storage`` volumes on each target.

Pure logic, plain data in and out. For the chosen target and the user's
groups it decides which volumes the server gets and how each backend gets
them:

* in this cluster (``kubernetes`` targets, and the servers of offload
  ``dask`` targets): a Kubernetes volume — a claim per user (created on the
  first spawn through KubeSpawner's own ``storage_pvc_ensure`` machinery), an
  existing claim, an NFS export or an inline CSI volume (e.g. CVMFS);
* SLURM targets: a singularity ``--bind`` in ``slurm-job.vk.io/singularity-mounts``,
  which the interLink SLURM plugin puts verbatim on the container's command line
  (``interlink-slurm-plugin/pkg/slurm/prepare.go``, ``prepareRuntimeCommand``:
  the annotation, then ``singularity-options``, joined with spaces into the job
  script);
* HTCondor targets: the same ``--bind`` in ``htcondor-job.vk.io/singularity-options``,
  which the interLink HTCondor plugin adds to its ``singularity exec`` line
  when the container has a command or args, as a server's always has
  (``interlink-htcondor-plugin/handles.py``, ``SubmitHandler``);
* interlink-kubernetes targets: a claim volume, listed in
  ``interlink.io/remote-pvc`` so the plugin uses the remote cluster's claim
  (``interlink-kubernetes-plugin/src/app/services/kubernetes_plugin_service.py``);
* other backends: nothing — the form says the volume is not there, and a
  ``required`` volume refuses the target.

``{username}`` in a path or claim name becomes the user's safe slug (the
``safe`` scheme KubeSpawner uses for ``{username}``: lowercase letters, digits
and ``-`` only), never the raw name, so that it is safe in a path, a claim
name and a shell word.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..backends import adapter_for
from .catalog import Catalog, SiteStorage, Target, Volume
from .units import format_memory

#: The env var that tells the server what is where (one line per volume).
SUMMARY_ENV = "OFFLOAD_STORAGE"
_VOLUME_PREFIX = "offload-storage-"


@dataclass(frozen=True)
class StorageLine:
    """One volume as one user sees it for one target (the form's summary)."""

    name: str
    display_name: str
    mount_path: str
    read_only: bool
    #: can this target mount it?
    available: bool
    #: a checkbox on the form (else always mounted where it can be)
    offered: bool
    required: bool
    #: what it is there, in the user's words ("your 10G volume", "$WORK")
    detail: str

    def text(self) -> str:
        if not self.available:
            return f"no {self.display_name} here"
        mode = " (read-only)" if self.read_only else ""
        detail = f" ({self.detail})" if self.detail else ""
        return f"{self.display_name}{detail} at {self.mount_path}{mode}"


@dataclass(frozen=True)
class ClaimRequest:
    """The per-user claim a server in this cluster needs (KubeSpawner creates it once)."""

    name: str
    size: int
    storage_class: str | None
    access_modes: tuple[str, ...]


@dataclass(frozen=True)
class StoragePlan:
    """What a server's pod carries for its storage."""

    #: pod volumes and the first container's mounts, as Kubernetes JSON
    volumes: tuple[dict[str, Any], ...] = ()
    volume_mounts: tuple[dict[str, Any], ...] = ()
    #: singularity binds, by annotation (joined onto an admin's value with a space)
    annotations: dict[str, str] = field(default_factory=dict)
    #: claims to list in interlink.io/remote-pvc
    remote_claims: tuple[str, ...] = ()
    claim: ClaimRequest | None = None
    lines: tuple[StorageLine, ...] = ()

    @property
    def summary(self) -> str:
        """The ``OFFLOAD_STORAGE`` text: what is where, one volume a line."""
        return "\n".join(line.text() for line in self.lines)


def fill_username(template: str, username_slug: str) -> str:
    """``{username}`` -> the user's safe slug (the only placeholder; nothing else is parsed)."""
    return template.replace("{username}", username_slug)


def _visible(volume: Volume, groups: Iterable[str]) -> bool:
    return volume.allowed_groups is None or not set(groups).isdisjoint(volume.allowed_groups)


def _site(volume: Volume, slug: str | None, target: Target | None) -> SiteStorage | None:
    """How a remote target gets the volume; None when it cannot."""
    if target is None or slug is None or not target.runs_session_remotely:
        return None
    return volume.targets.get(slug)


def _runs_here(target: Target | None) -> bool:
    return target is None or not target.runs_session_remotely


def _detail(volume: Volume, site: SiteStorage | None, here: bool) -> str:
    if site is not None and site.description:
        return site.description
    if volume.description:
        return volume.description
    if here and volume.cluster is not None and volume.cluster.kind == "pvc":
        return f"your {format_memory(volume.cluster.size)} volume"
    return ""


def storage_lines(catalog: Catalog, target_slug: str | None, groups: Iterable[str]) -> tuple[StorageLine, ...]:
    """The volumes this user may have, and whether ``target_slug`` can mount each."""
    groups = frozenset(groups)
    target = catalog.offload_targets.get(target_slug) if target_slug else None
    here = _runs_here(target)
    lines = []
    for name, volume in catalog.storage.items():
        if not _visible(volume, groups):
            continue
        site = _site(volume, target_slug, target)
        available = volume.cluster is not None if here else site is not None
        lines.append(
            StorageLine(
                name=name,
                display_name=volume.display_name,
                mount_path=volume.mount_path,
                read_only=volume.read_only,
                available=available,
                offered=volume.offered,
                required=volume.required,
                detail=_detail(volume, site, here),
            )
        )
    return tuple(lines)


def _cluster_volume(name: str, volume: Volume, username_slug: str) -> tuple[dict[str, Any], ClaimRequest | None]:
    source = volume.cluster
    if source is None:  # callers pass only volumes the hub's cluster mounts
        raise ValueError(f"storage {name!r} has no cluster source")
    pod_volume: dict[str, Any] = {"name": _VOLUME_PREFIX + name}
    claim = None
    if source.kind == "pvc":
        claim_name = fill_username(source.claim_name or "claim-{username}", username_slug)
        claim = ClaimRequest(claim_name, source.size, source.storage_class, tuple(source.access_modes))
        pod_volume["persistentVolumeClaim"] = {"claimName": claim_name}
    elif source.kind == "claim":
        pod_volume["persistentVolumeClaim"] = {"claimName": source.claim_name}
    elif source.kind == "nfs":
        pod_volume["nfs"] = {"server": source.server, "path": fill_username(source.path or "/", username_slug)}
    else:
        csi: dict[str, Any] = {"driver": source.driver}
        if source.volume_attributes:
            csi["volumeAttributes"] = dict(source.volume_attributes)
        pod_volume["csi"] = csi
    if volume.read_only and "persistentVolumeClaim" in pod_volume:
        pod_volume["persistentVolumeClaim"]["readOnly"] = True
    if volume.read_only and "csi" in pod_volume:
        pod_volume["csi"]["readOnly"] = True
    return pod_volume, claim


def _bind(site_path: str, volume: Volume, username_slug: str) -> str:
    # singularity --bind src:dest[:ro]; SitePath and MountPath hold no ',' ':' or space.
    return f"--bind {fill_username(site_path, username_slug)}:{volume.mount_path}{':ro' if volume.read_only else ''}"


def build_storage(
    catalog: Catalog,
    target_slug: str | None,
    groups: Iterable[str],
    username_slug: str,
    chosen: Iterable[str] | None = None,
) -> StoragePlan:
    """The storage of a server on ``target_slug`` for a user of ``groups``.

    ``chosen`` names the offered volumes the user ticked (None: the defaults,
    i.e. all of them). Volumes the target cannot mount are left out; whether
    that refuses the spawn is the selection's decision (``required``).
    """
    target = catalog.offload_targets.get(target_slug) if target_slug else None
    here = _runs_here(target)
    chosen_set = None if chosen is None else frozenset(chosen)
    lines = []
    volumes: list[dict[str, Any]] = []
    mounts: list[dict[str, Any]] = []
    binds: list[str] = []
    remote_claims: list[str] = []
    claim = None
    for line in storage_lines(catalog, target_slug, groups):
        if line.offered and chosen_set is not None and line.name not in chosen_set:
            continue
        lines.append(line)
        if not line.available:
            continue
        volume = catalog.storage[line.name]
        mount: dict[str, Any] = {"name": _VOLUME_PREFIX + line.name, "mountPath": volume.mount_path}
        if volume.read_only:
            mount["readOnly"] = True
        if here:
            pod_volume, pvc = _cluster_volume(line.name, volume, username_slug)
            claim = pvc or claim
            volumes.append(pod_volume)
            mounts.append(mount)
            continue
        site = volume.targets[target_slug]  # type: ignore[index]
        if adapter_for(target.backend).site_storage == "claim":  # type: ignore[union-attr]
            claim_name = fill_username(site.claim or "", username_slug)
            pod_volume = {"name": _VOLUME_PREFIX + line.name, "persistentVolumeClaim": {"claimName": claim_name}}
            if volume.read_only:
                pod_volume["persistentVolumeClaim"]["readOnly"] = True
            volumes.append(pod_volume)
            mounts.append(mount)
            remote_claims.append(claim_name)
        else:
            binds.append(_bind(site.path or "/", volume, username_slug))
    annotations: dict[str, str] = {}
    key = adapter_for(target.backend).storage_bind_annotation if target is not None else None
    if binds and key:
        annotations[key] = " ".join(binds)
    return StoragePlan(
        volumes=tuple(volumes),
        volume_mounts=tuple(mounts),
        annotations=annotations,
        remote_claims=tuple(remote_claims),
        claim=claim,
        lines=tuple(lines),
    )


def join_annotations(base: dict[str, str], extra: dict[str, str]) -> dict[str, str]:
    """``base`` with ``extra`` added; a key in both gets both values, space-separated
    (singularity takes several ``--bind`` options, and both plugins join with spaces)."""
    out = dict(base)
    for key, value in extra.items():
        out[key] = f"{out[key]} {value}" if out.get(key) else value
    return out
