from __future__ import annotations

from ..catalog import SlurmSettings, Target
from ..selection import Selection
from .base import BackendAdapter


class SlurmAdapter(BackendAdapter):
    """interLink SLURM plugin (``slurm-job.vk.io/*``).

    ``--cpus-per-task``/``--mem`` are not written: the plugin takes them from
    the pod limits. A ``nvidia.com/gpu`` limit lets the plugin pick a GPU
    flavor; ``gres_from_accelerators`` also writes ``--gres`` explicitly.
    """

    def annotations(self, target: Target, selection: Selection) -> dict[str, str]:
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
        if settings.gres_from_accelerators and selection.accelerator and selection.accelerator.endswith("/gpu"):
            flags.append(f"--gres=gpu:{selection.accelerator_model}:{selection.accelerator_count}")
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
        if settings.pre_exec:
            out["slurm-job.vk.io/pre-exec"] = settings.pre_exec
        return out
