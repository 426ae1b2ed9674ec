"""interLink Kubernetes plugin (a remote cluster): ``backend: interlink-kubernetes``,
settings ``kubernetes_plugin``."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from ..pipeline.catalog_types import CatalogModel, Slug
from .base import AcceleratorChoice, BackendAdapter, TargetView

#: interlink-kubernetes-plugin/src/app/services/kubernetes_plugin_service.py: the
#: claims the plugin uses on the remote cluster.
REMOTE_PVC_ANNOTATION = "interlink.io/remote-pvc"


class InterlinkKubernetesSettings(CatalogModel):
    """What the interLink Kubernetes plugin reads."""

    remote_pvcs: list[Slug] = Field(
        [], description="`interlink.io/remote-pvc`: PVC names the plugin replicates on the remote cluster."
    )


class InterlinkKubernetesAdapter(BackendAdapter):
    """interLink Kubernetes plugin (a remote cluster); it can replicate named PVCs."""

    name = "interlink-kubernetes"
    summary = "the interLink Kubernetes plugin, a remote cluster (settings: `kubernetes_plugin`)"
    order = 40
    settings_field = "kubernetes_plugin"
    settings_model = InterlinkKubernetesSettings
    settings_help = "Kubernetes plugin settings (backend `interlink-kubernetes` only)."
    site_storage: ClassVar[Literal["claim"]] = "claim"
    keeps_claims = True
    owned_annotations = frozenset({REMOTE_PVC_ANNOTATION})

    def plugin_annotations(self, target: TargetView, selection: AcceleratorChoice) -> dict[str, str]:
        settings = target.backend_settings
        if isinstance(settings, InterlinkKubernetesSettings) and settings.remote_pvcs:
            return {REMOTE_PVC_ANNOTATION: ",".join(settings.remote_pvcs)}
        return {}


BACKEND = InterlinkKubernetesAdapter()
