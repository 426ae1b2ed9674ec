"""What a backend module declares: :class:`BackendAdapter`.

A backend is one module of :mod:`offload_spawner.backends` holding its
settings model (a :class:`~offload_spawner.pipeline.catalog_types.CatalogModel`, when
the plugin reads settings) and its adapter, an instance of a subclass of
:class:`BackendAdapter` named ``BACKEND``. The adapter's class attributes are
everything the rest of the package asks of a backend: the ``backend`` value
admins write, the one line of help, the settings field of a target, whether
its pods leave the cluster, how site storage reaches it, which annotations
only its typed settings may write. Its methods turn typed admin settings and
validated numbers into annotations, tolerations and resource requests; user
free text never reaches them.

Nothing here imports the catalog (the catalog imports the backends to build
its ``Target`` model), so a target and a selection are seen through the small
protocols below.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, Protocol

from ..pipeline.catalog_types import CatalogModel

#: Annotation that makes interLink create a session's wstunnel shadow pod in the
#: pod's own namespace instead of ``<namespace>-wstunnel``
#: (interLink/pkg/virtualkubelet/virtualkubelet.go, createDummyPod).
SHADOW_SAME_NS_ANNOTATION = "interlink.eu/shadow-same-ns"


class TargetView(Protocol):
    """What an adapter reads of a catalog ``Target``."""

    @property
    def offload(self) -> str: ...

    @property
    def backend_settings(self) -> CatalogModel | None:
        """The target's settings for its own backend (None when not given)."""
        ...


class AcceleratorChoice(Protocol):
    """What an adapter reads of a user's ``Selection``: the chosen accelerator."""

    @property
    def accelerator(self) -> str | None: ...

    @property
    def accelerator_model(self) -> str | None: ...

    @property
    def accelerator_count(self) -> int: ...


class BackendAdapter:
    """Annotations, tolerations (and resource formats) for one interLink plugin. The default adds none."""

    #: the ``backend`` value admins write for it (unique)
    name: ClassVar[str]
    #: one line for the ``backend`` help text and the reference
    summary: ClassVar[str]
    #: where it comes in the ``backend`` choice and the help (lower first, then by name)
    order: ClassVar[int] = 50
    #: does the pod leave the cluster (bound to an interLink virtual node)?
    virtual: ClassVar[bool] = True
    #: the target field holding this backend's settings (None: it takes none)
    settings_field: ClassVar[str | None] = None
    #: the model of that field
    settings_model: ClassVar[type[CatalogModel] | None] = None
    #: must a target of this backend give its settings?
    settings_required: ClassVar[bool] = False
    #: the settings field's description (reference, JSON schema)
    settings_help: ClassVar[str] = ""
    #: how a catalog ``storage`` volume reaches a server on the site: a site
    #: ``path`` bound into the container (in ``storage_bind_annotation``), a
    #: remote ``claim``, or None (it cannot: such a target offers no volume)
    site_storage: ClassVar[Literal["path", "claim"] | None] = None
    #: the annotation the ``--bind`` options of site paths go into
    storage_bind_annotation: ClassVar[str | None] = None
    #: the plugin replicates claims on its site: a session pod keeps its PVC
    #: volumes by default (``pod_shape.volumes``), listed in ``interlink.io/remote-pvc``
    keeps_claims: ClassVar[bool] = False
    #: annotation prefixes (and whole keys) only typed settings may write: a raw
    #: target annotation or ``extra_annotations`` with one of them is refused
    owned_annotation_prefixes: ClassVar[tuple[str, ...]] = ()
    owned_annotations: ClassVar[frozenset[str]] = frozenset()
    #: why token files (a Secret volume) must not be sent to this plugin's jobs
    #: (None: they may): the catalog then delivers the tokens as env only
    volume_files_refusal: ClassVar[str | None] = None

    def gpu_refusal(self, target: TargetView) -> str | None:
        """Why a GPU chosen for a server on ``target`` would not reach the batch
        system (None: it would). The catalog refuses a target or profile that
        offers a GPU there, with this reason."""
        return None

    def annotations(self, target: TargetView, selection: AcceleratorChoice) -> dict[str, str]:
        """Everything a pod for ``target`` carries for interLink and its plugin."""
        out = dict(self.interlink_annotations()) if self.virtual else {}
        out.update(self.plugin_annotations(target, selection))
        return out

    def interlink_annotations(self) -> dict[str, str]:
        """What interLink's virtual kubelet itself reads, the same for every plugin.

        interLink puts a pod's wstunnel shadow pod (which copies the pod's
        labels) in ``<namespace>-wstunnel`` unless the pod says otherwise
        (interLink/pkg/virtualkubelet/virtualkubelet.go, createDummyPod): keep
        it in the user's namespace, where the hub and the users' NetworkPolicy
        (a podSelector, same namespace) reach it.
        """
        return {SHADOW_SAME_NS_ANNOTATION: "true"}

    def plugin_annotations(self, target: TargetView, selection: AcceleratorChoice) -> dict[str, str]:
        return {}

    def tolerations(self, target: TargetView) -> list[dict[str, Any]]:
        """Tolerations the plugin reads besides interLink's own (typed admin settings only)."""
        return []

    def requests(self, cores: float, memory: int) -> dict[str, str] | None:
        """Resource requests written the way this plugin reads them, or None
        for Kubernetes' own form (KubeSpawner's numbers)."""
        return None


__all__ = ["SHADOW_SAME_NS_ANNOTATION", "AcceleratorChoice", "BackendAdapter", "TargetView"]
