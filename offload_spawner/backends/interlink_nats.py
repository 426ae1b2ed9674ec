"""interLink NATS plugin (``landerlini/interlink-condorce-plugin``), the plugin
the AI_INFN platform runs: ``backend: interlink-nats``, settings ``nats``.

This module is the whole backend: its settings model, its adapter and its
help. The registry (:mod:`offload_spawner.backends`) finds it, and the
``backend`` choice, the catalog's ``Target`` model, the reference and the JSON
schema take it from there.

The plugin's gateway forwards each pod over NATS to the submitters of one
*pool*; a pool's submitter runs it on HTCondor, podman, SLURM or Kubernetes,
as an apptainer job script the gateway builds from the pod. What it reads from
a pod, as of commit 36c73310c29d (file paths in that repository):

* ``natsprovider/NatsGateway.py`` (``retrieve_pool_from_tolerations``): the
  pool is the value of the pod's one toleration with key ``pool.vk.io``; none,
  or more than one, is refused with HTTP 400. Kueue's ResourceFlavors written
  by ``kueue-nats/docker/controller.py`` carry the same toleration
  (``pool.vk.io=<pool>:NoSchedule``).
* ``natsprovider/apptainer_cmd_builder/from_kubernetes.py``
  (``_make_pod_volume_struct``): an annotation ``cvmfs.vk.io/<volume>`` (any
  value) binds the site's ``/cvmfs`` in place of pod volume ``<volume>``; an
  annotation ``fuse.vk.io/<volume>`` holds a script that mounts pod volume
  ``<volume>`` with FUSE. The volume must exist in the pod (an ``emptyDir``
  named alike, set by the profile's ``kubespawner_override``). The same file
  reads the pod label ``user`` into a cache path at the site; this adapter
  does not set it (user text never reaches a site path).
* ``natsprovider/utils.py`` (``compute_pod_resource``): cores, memory and
  ``nvidia.com/gpu`` count come from the containers' *requests* (a limit is
  never read), so the target's ``request_fraction`` should stay 1.

The interLink toleration ``virtual-node.interlink/no-schedule`` and the
node's hostname are added by :func:`offload_spawner.pipeline.plan.target_placement`, as
for every virtual-node backend.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from ..pipeline.catalog_types import CatalogModel, Slug, pattern
from .base import AcceleratorChoice, BackendAdapter, TargetView

#: natsprovider/NatsGateway.py: the toleration key naming the pod's pool.
POOL_TOLERATION_KEY = "pool.vk.io"
#: natsprovider/apptainer_cmd_builder/from_kubernetes.py: volume annotations.
CVMFS_ANNOTATION_PREFIX = "cvmfs.vk.io/"
FUSE_ANNOTATION_PREFIX = "fuse.vk.io/"

# A NATS pool: one token of a NATS subject (no '.', '*', '>' or space) and a label value.
NatsPool = Annotated[
    str, pattern(r"[A-Za-z0-9]([-A-Za-z0-9_]{0,61}[A-Za-z0-9])?", "NATS pool name (letters, digits, '_', '-')")
]


class InterlinkNatsSettings(CatalogModel):
    """What the interLink NATS plugin reads (see offload_spawner.backends.interlink_nats)."""

    pool: NatsPool = Field(description="Pool whose submitters run the pod (toleration pool.vk.io=<pool>).")
    cvmfs_volumes: list[Slug] = Field(
        [], description="Pod volumes the site replaces with its /cvmfs (annotation cvmfs.vk.io/<volume>)."
    )
    fuse_volumes: dict[Slug, str] = Field(
        {},
        description="Pod volumes the site mounts with a FUSE script (annotation fuse.vk.io/<volume>; admin text only).",
    )


class InterlinkNatsAdapter(BackendAdapter):
    """interLink NATS plugin: the pool toleration and the volume annotations."""

    name = "interlink-nats"
    summary = "the interLink NATS plugin, as on the AI_INFN platform (settings: `nats`, with its `pool`)"
    order = 50
    settings_field = "nats"
    settings_model = InterlinkNatsSettings
    settings_required = True
    settings_help = (
        "interLink NATS plugin settings (backend `interlink-nats` only, and required there): "
        "its pool and volume annotations."
    )

    def annotations(self, target: TargetView, selection: AcceleratorChoice) -> dict[str, str]:
        settings = target.backend_settings
        if not isinstance(settings, InterlinkNatsSettings):
            return {}
        out = {f"{CVMFS_ANNOTATION_PREFIX}{volume}": "true" for volume in settings.cvmfs_volumes}
        out.update({f"{FUSE_ANNOTATION_PREFIX}{volume}": script for volume, script in settings.fuse_volumes.items()})
        return out

    def tolerations(self, target: TargetView) -> list[dict[str, Any]]:
        settings = target.backend_settings
        if not isinstance(settings, InterlinkNatsSettings):
            return []
        return [{"key": POOL_TOLERATION_KEY, "operator": "Equal", "value": settings.pool, "effect": "NoSchedule"}]


BACKEND = InterlinkNatsAdapter()
