from __future__ import annotations

from ..catalog import InterlinkKubernetesSettings, Target
from ..selection import Selection
from .base import BackendAdapter


class InterlinkKubernetesAdapter(BackendAdapter):
    """interLink Kubernetes plugin (a remote cluster); it can replicate named PVCs."""

    def plugin_annotations(self, target: Target, selection: Selection) -> dict[str, str]:
        settings = target.kubernetes_plugin or InterlinkKubernetesSettings()
        if settings.remote_pvcs:
            return {"interlink.io/remote-pvc": ",".join(settings.remote_pvcs)}
        return {}
