"""interLink SLURM plugin: ``backend: slurm``, settings ``slurm``.

The plugin reads ``slurm-job.vk.io/*`` annotations
(interlink-slurm-plugin/pkg/slurm/prepare.go) and writes them into the job
script; every value here is typed and pattern-checked so it can be copied
verbatim.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field, field_validator

from ..pipeline.catalog_types import BatchFlag, BatchWord, CatalogModel, ModelName, pattern
from .base import AcceleratorChoice, BackendAdapter, TargetView

SlurmTime = Annotated[
    str, pattern(r"(\d+-)?\d{1,2}(:\d{2}){0,2}|\d+", "SLURM time limit (e.g. 04:00:00 or 1-00:00:00)")
]
SitePath = Annotated[
    str, pattern(r"/[A-Za-z0-9_.+@/-]*", "absolute path on the site (letters, digits, '_', '.', '+', '@', '-', '/')")
]

#: prepare.go (prepareRuntimeCommand): written unquoted into the job script's container line.
MOUNTS_ANNOTATION = "slurm-job.vk.io/singularity-mounts"

_NO_GRES = (
    "the SLURM plugin writes no --gres for a GPU limit; set slurm.gres_from_accelerators (default true) "
    "or slurm.flavor (a plugin flavor whose flags request the GPUs)"
)


class BindMount(CatalogModel):
    """A site directory bound into the container (``--bind source:target[:ro]``)."""

    source: SitePath = Field(description="Absolute path of the directory on the site.")
    target: SitePath | None = Field(None, description="Where it appears in the container (default: same as source).")
    read_only: bool = Field(False, description="Bind it read-only (`:ro`).")

    def bind_spec(self) -> str:
        return f"{self.source}:{self.target or self.source}" + (":ro" if self.read_only else "")


class SlurmSettings(CatalogModel):
    """What the interLink SLURM plugin reads (interlink-slurm-plugin/pkg/slurm/prepare.go), as typed settings."""

    partition: BatchWord | None = Field(None, description="`--partition=` in `slurm-job.vk.io/flags`.")
    account: BatchWord | None = Field(None, description="`--account=` in `slurm-job.vk.io/flags`.")
    qos: BatchWord | None = Field(None, description="`--qos=` in `slurm-job.vk.io/flags`.")
    time_limit: SlurmTime | None = Field(
        None, description="`--time=` in `slurm-job.vk.io/flags` (`04:00:00`, `1-00:00:00`)."
    )
    flavor: BatchWord | None = Field(
        None, description="A flavor of the plugin's config (slurm-job.vk.io/flavor): its flags, UID and defaults."
    )
    extra_flags: list[BatchFlag] = Field(
        [], description="More `#SBATCH` flags, each `--name` or `--name=value` without spaces or quotes."
    )
    gres_from_accelerators: bool = Field(
        True,
        description=(
            "Write --gres=<gres_name>:<type>:<count> for a chosen GPU (*/gpu). The plugin itself never turns "
            "a GPU limit into --gres (only a configured flavor can): turn this off only when 'flavor' requests "
            "the GPUs."
        ),
    )
    gres_name: BatchWord = Field("gpu", description="The site's GRES name for GPUs (slurm.conf GresTypes).")
    gres_types: dict[ModelName, BatchWord | Literal[""]] = Field(
        {},
        description=(
            "The site's GRES type per accelerator model (gres.conf Type); a model not listed is used as the "
            "type; '' requests the GPUs without a type (--gres=gpu:<count>)."
        ),
    )
    image_root: Annotated[str, pattern(r"[a-z]+://|[A-Za-z0-9_./:-]+", "image root")] | None = Field(
        None,
        description=(
            "`slurm-job.vk.io/image-root`: put in front of images without a URI scheme (over the plugin's "
            "`ImagePrefix`), e.g. `docker://`."
        ),
    )
    singularity_options: list[BatchFlag] = Field(
        [], description="`slurm-job.vk.io/singularity-options`, flags as above."
    )
    singularity_mounts: list[BindMount] = Field(
        [],
        description=(
            "Site directories bound into the container (CVMFS, data areas): slurm-job.vk.io/singularity-mounts."
        ),
    )
    mpi_flags: list[BatchFlag] | None = Field(
        None,
        description=(
            "Run the container under 'mpiexec -np $SLURM_NTASKS <flags>' (slurm-job.vk.io/mpi-flags); "
            "unset: no MPI. Needs at least one flag (the plugin reads the value 'true' as no MPI). The SLURM "
            "plugin at commit f8451d9 loses the mpiexec prefix (it edits a copy of each command), so there it "
            "has no effect yet."
        ),
    )
    pre_exec: str | None = Field(
        None,
        description="Shell lines run before the payload (admin text only; users never reach it).",
    )

    @field_validator("mpi_flags")
    @classmethod
    def _mpi_flags(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and not value:
            raise ValueError("give at least one mpiexec flag (e.g. --bind-to=core), or leave mpi_flags unset")
        return value

    def gres_flag(self, model: str | None, count: int) -> str:
        """``--gres=`` for ``count`` GPUs of ``model``, in the site's GRES names."""
        kind = self.gres_types.get(model, model) if model else ""
        return f"--gres={self.gres_name}:{kind}:{count}" if kind else f"--gres={self.gres_name}:{count}"


class SlurmAdapter(BackendAdapter):
    """interLink SLURM plugin (``slurm-job.vk.io/*``, read in
    interlink-slurm-plugin/pkg/slurm/prepare.go).

    ``--cpus-per-task``/``--mem`` are not written: the plugin takes them from
    the pod limits, and the job's ``--uid`` from ``securityContext.runAsUser``
    (see pod_shape). The plugin never turns a GPU limit into ``--gres`` (only
    a configured flavor's flags can), so a chosen GPU is requested here, in the
    site's GRES names, unless ``gres_from_accelerators`` is off.
    """

    name = "slurm"
    summary = "the interLink SLURM plugin (settings: `slurm`)"
    order = 10
    settings_field = "slurm"
    settings_model = SlurmSettings
    settings_help = "SLURM plugin settings (backend `slurm` only) -> `slurm-job.vk.io/*` annotations."
    site_storage: ClassVar[Literal["path"]] = "path"
    storage_bind_annotation = MOUNTS_ANNOTATION
    owned_annotation_prefixes = ("slurm-job.vk.io/",)

    @staticmethod
    def settings(target: TargetView) -> SlurmSettings:
        settings = target.backend_settings
        return settings if isinstance(settings, SlurmSettings) else SlurmSettings()

    def gpu_refusal(self, target: TargetView) -> str | None:
        # The plugin writes no --gres for a GPU limit (prepare.go), only a flavor's flags can.
        if target.offload != "session":
            return None
        settings = self.settings(target)
        return None if settings.gres_from_accelerators or settings.flavor is not None else _NO_GRES

    def plugin_annotations(self, target: TargetView, selection: AcceleratorChoice) -> dict[str, str]:
        settings = self.settings(target)
        flags = []
        for name, value in (
            ("partition", settings.partition),
            ("account", settings.account),
            ("qos", settings.qos),
            ("time", settings.time_limit),
        ):
            if value:
                flags.append(f"--{name}={value}")
        if (
            settings.gres_from_accelerators
            and selection.accelerator
            and selection.accelerator.endswith("/gpu")
            and selection.accelerator_count
        ):
            flags.append(settings.gres_flag(selection.accelerator_model, selection.accelerator_count))
        flags.extend(settings.extra_flags)
        out = {}
        if flags:
            out["slurm-job.vk.io/flags"] = " ".join(flags)
        if settings.flavor:
            out["slurm-job.vk.io/flavor"] = settings.flavor
        if settings.image_root:
            out["slurm-job.vk.io/image-root"] = settings.image_root
        if settings.singularity_options:
            out["slurm-job.vk.io/singularity-options"] = " ".join(settings.singularity_options)
        if settings.singularity_mounts:
            # Written unquoted into the job script's container line (prepareRuntimeCommand).
            out[MOUNTS_ANNOTATION] = " ".join(f"--bind {mount.bind_spec()}" for mount in settings.singularity_mounts)
        if settings.mpi_flags:
            out["slurm-job.vk.io/mpi-flags"] = " ".join(settings.mpi_flags)
        if settings.pre_exec:
            out["slurm-job.vk.io/pre-exec"] = settings.pre_exec
        return out


BACKEND = SlurmAdapter()
