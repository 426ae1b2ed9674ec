"""interLink NATS plugin (``landerlini/interlink-condorce-plugin``), the plugin
the AI_INFN platform runs.

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
node's hostname are added by :func:`offload_spawner.plan.target_placement`, as
for every virtual-node backend.
"""

from __future__ import annotations

from typing import Any

from ..catalog import Target
from ..selection import Selection
from .base import BackendAdapter

#: natsprovider/NatsGateway.py: the toleration key naming the pod's pool.
POOL_TOLERATION_KEY = "pool.vk.io"
#: natsprovider/apptainer_cmd_builder/from_kubernetes.py: volume annotations.
CVMFS_ANNOTATION_PREFIX = "cvmfs.vk.io/"
FUSE_ANNOTATION_PREFIX = "fuse.vk.io/"


class InterlinkNatsAdapter(BackendAdapter):
    """interLink NATS plugin: the pool toleration and the volume annotations."""

    def annotations(self, target: Target, selection: Selection) -> dict[str, str]:
        if target.nats is None:
            return {}
        out = {f"{CVMFS_ANNOTATION_PREFIX}{volume}": "true" for volume in target.nats.cvmfs_volumes}
        out.update({f"{FUSE_ANNOTATION_PREFIX}{volume}": script for volume, script in target.nats.fuse_volumes.items()})
        return out

    def tolerations(self, target: Target) -> list[dict[str, Any]]:
        if target.nats is None:
            return []
        return [{"key": POOL_TOLERATION_KEY, "operator": "Equal", "value": target.nats.pool, "effect": "NoSchedule"}]
