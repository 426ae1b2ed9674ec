from __future__ import annotations

from ..catalog import HTCondorSettings, Target
from ..selection import Selection
from .base import BackendAdapter


class HTCondorAdapter(BackendAdapter):
    """interLink HTCondor plugin.

    The plugin takes RequestCpus/RequestMemory from the pod *requests* (so
    targets default to requests == limits) and hard-codes a 60-minute wall time.
    """

    def annotations(self, target: Target, selection: Selection) -> dict[str, str]:
        settings = target.htcondor or HTCondorSettings()
        out = {}
        if settings.singularity_options:
            out["htcondor-job.vk.io/singularity-options"] = " ".join(settings.singularity_options)
        if settings.image_root:
            out["htcondor-job.knoc.io/image-root"] = settings.image_root
        return out
