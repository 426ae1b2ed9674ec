from __future__ import annotations

from ..catalog import SlurmSettings, Target
from ..selection import Selection
from .base import BackendAdapter


class SlurmAdapter(BackendAdapter):
    """interLink SLURM plugin (``slurm-job.vk.io/*``, read in
    interlink-slurm-plugin/pkg/slurm/prepare.go).

    ``--cpus-per-task``/``--mem`` are not written: the plugin takes them from
    the pod limits, and the job's ``--uid`` from ``securityContext.runAsUser``
    (see pod_shape). The plugin never turns a GPU limit into ``--gres`` (only
    a configured flavor's flags can), so a chosen GPU is requested here, in the
    site's GRES names, unless ``gres_from_accelerators`` is off.
    """

    def plugin_annotations(self, target: Target, selection: Selection) -> dict[str, str]:
        settings = target.slurm or SlurmSettings()
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
            out["slurm-job.vk.io/singularity-mounts"] = " ".join(
                f"--bind {mount.bind_spec()}" for mount in settings.singularity_mounts
            )
        if settings.mpi_flags:
            out["slurm-job.vk.io/mpi-flags"] = " ".join(settings.mpi_flags)
        if settings.pre_exec:
            out["slurm-job.vk.io/pre-exec"] = settings.pre_exec
        return out
