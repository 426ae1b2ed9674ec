"""Annotations only typed settings may write.

A target's raw ``annotations`` and an override's ``extra_annotations`` may not
set them: a raw ``slurm-job.vk.io/flags`` would replace the checked flags of
``slurm`` (a ``--wrap=...`` typo would run as a job). Each backend names its
own (its module's ``owned_annotation_prefixes`` / ``owned_annotations``).
"""

from __future__ import annotations

from ..backends import ADAPTERS

#: Annotation prefixes written only from typed settings: each backend's
#: (its module's ``owned_annotation_prefixes``, e.g. ``slurm-job.vk.io/``, which
#: interlink-slurm-plugin/pkg/slurm/prepare.go reads) and this package's own.
OWNED_ANNOTATION_PREFIXES = (
    *(prefix for adapter in ADAPTERS.values() for prefix in adapter.owned_annotation_prefixes),
    "offload-spawner.io/",
)
#: Single annotations written from typed settings (the backends' and pod_shape's).
OWNED_ANNOTATIONS = frozenset(
    {key for adapter in ADAPTERS.values() for key in adapter.owned_annotations}
    | {"interlink.eu/disable-offload-init-containers"}
)
#: The target settings that write them, for the message.
_OWNING_SETTINGS = (
    *(
        adapter.settings_field
        for adapter in ADAPTERS.values()
        if adapter.settings_field and (adapter.owned_annotation_prefixes or adapter.owned_annotations)
    ),
    "pod_shape",
)


def owned_annotation(key: str) -> bool:
    """Whether ``key`` is an annotation only typed settings may write."""
    return key in OWNED_ANNOTATIONS or key.startswith(OWNED_ANNOTATION_PREFIXES)


def owned_annotation_message(key: str) -> str:
    return (
        f"{key!r} is written from the typed settings ({', '.join(_OWNING_SETTINGS)}), which are checked; "
        "a raw annotation would replace them unchecked"
    )


__all__ = ["OWNED_ANNOTATIONS", "OWNED_ANNOTATION_PREFIXES", "owned_annotation", "owned_annotation_message"]
