from __future__ import annotations

from typing import Any

from ..catalog import SHADOW_SAME_NS_ANNOTATION, Target
from ..selection import Selection


class BackendAdapter:
    """Annotations, tolerations (and resource formats) for one interLink plugin. The default adds none."""

    #: does the pod leave the cluster (bound to an interLink virtual node)?
    virtual: bool = True

    def annotations(self, target: Target, selection: Selection) -> dict[str, str]:
        """Everything a pod for ``target`` carries for interLink and its plugin."""
        out = dict(self.interlink_annotations(target)) if self.virtual else {}
        out.update(self.plugin_annotations(target, selection))
        return out

    def interlink_annotations(self, target: Target) -> dict[str, str]:
        """What interLink's virtual kubelet itself reads, the same for every plugin.

        interLink puts a pod's wstunnel shadow pod (which copies the pod's
        labels) in ``<namespace>-wstunnel`` unless the pod says otherwise
        (interLink/pkg/virtualkubelet/virtualkubelet.go, createDummyPod): keep
        it in the user's namespace, where the hub and the users' NetworkPolicy
        (a podSelector, same namespace) reach it.
        """
        return {SHADOW_SAME_NS_ANNOTATION: "true"}

    def plugin_annotations(self, target: Target, selection: Selection) -> dict[str, str]:
        return {}

    def tolerations(self, target: Target) -> list[dict[str, Any]]:
        """Tolerations the plugin reads besides interLink's own (typed admin settings only)."""
        return []

    def requests(self, cores: float, memory: int) -> dict[str, str] | None:
        """Resource requests written the way this plugin reads them, or None
        for Kubernetes' own form (KubeSpawner's numbers)."""
        return None
