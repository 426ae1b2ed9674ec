"""interLink HTCondor plugin: ``backend: htcondor``, settings ``htcondor``."""

from __future__ import annotations

import math
from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator, Field

from ..pipeline.catalog_types import BatchFlag, CatalogModel, pattern
from .base import AcceleratorChoice, BackendAdapter, TargetView

MI = 2**20
#: interlink-htcondor-plugin/handles.py (SubmitHandler): added to its ``singularity exec``
#: line when the container has a command or args, as a server's always has.
OPTIONS_ANNOTATION = "htcondor-job.vk.io/singularity-options"


def _no_trailing_slash(value: str) -> str:
    if value.endswith("/"):
        raise ValueError(
            f"{value!r} ends with '/': the HTCondor plugin puts it in front of images written as an absolute "
            "path ('/...'), so 'docker://' would give 'docker:///...'; images without a leading '/' get "
            "'docker://' from the plugin already"
        )
    return value


class HTCondorSettings(CatalogModel):
    """What the interLink HTCondor plugin reads (interlink-htcondor-plugin/handles.py)."""

    singularity_options: list[BatchFlag] = Field(
        [], description="`htcondor-job.vk.io/singularity-options`, flags `--name[=value]`."
    )
    image_root: (
        Annotated[
            str,
            pattern(r"[a-z]+://[A-Za-z0-9_./:-]*|[A-Za-z0-9_./:-]+", "image root"),
            AfterValidator(_no_trailing_slash),
        ]
        | None
    ) = Field(
        None,
        description=(
            "Put in front of images written as an absolute path not under /cvmfs (htcondor-job.knoc.io/image-root), "
            "e.g. 'oras://registry.example.org' for image '/org/image:tag'. Other images are unaffected: the "
            "plugin uses /cvmfs and docker:// images as they are and prefixes every other one with 'docker://'."
        ),
    )


class HTCondorAdapter(BackendAdapter):
    """interLink HTCondor plugin (interlink-htcondor-plugin/handles.py).

    The plugin sizes the job from the pod *requests* only
    (``produce_htcondor_singularity_script``): it sums ``int(cpu)`` over the
    containers, so a fractional or milli-core request ("1500m") crashes it,
    and reads memory only as ``<digits><k|M|G|Ki|Mi|Gi>`` (anything else, plain
    bytes included, becomes 1 MB). So requests are written as whole cores and
    whole ``Mi``, rounded down (never above the limits; a fractional core below
    1 gives 0, which the plugin turns into 1). It hard-codes a 60-minute wall time.
    """

    name = "htcondor"
    summary = "the interLink HTCondor plugin (settings: `htcondor`)"
    order = 20
    settings_field = "htcondor"
    settings_model = HTCondorSettings
    settings_help = "HTCondor plugin settings (backend `htcondor` only)."
    site_storage: ClassVar[Literal["path"]] = "path"
    storage_bind_annotation = OPTIONS_ANNOTATION
    owned_annotation_prefixes = ("htcondor-job.vk.io/", "htcondor-job.knoc.io/")
    # interlink-htcondor-plugin/handles.py, mountSecrets: for a Secret volume it
    # writes every key of the Secret (not only the volume's items) as the base64
    # text the API gives, sends the files with the job and leaves them after delete.
    volume_files_refusal = (
        "interLink's HTCondor plugin sends every key of a Secret volume's Secret (the server's hub token "
        "included) to the site, as unreadable base64 text"
    )

    def plugin_annotations(self, target: TargetView, selection: AcceleratorChoice) -> dict[str, str]:
        settings = target.backend_settings
        if not isinstance(settings, HTCondorSettings):
            return {}
        out = {}
        if settings.singularity_options:
            out[OPTIONS_ANNOTATION] = " ".join(settings.singularity_options)
        if settings.image_root:
            out["htcondor-job.knoc.io/image-root"] = settings.image_root
        return out

    def requests(self, cores: float, memory: int) -> dict[str, str]:
        return {"cpu": str(math.floor(cores + 1e-9)), "memory": f"{memory // MI}Mi"}


BACKEND = HTCondorAdapter()
