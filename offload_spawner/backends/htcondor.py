from __future__ import annotations

import math

from ..catalog import HTCondorSettings, Target
from ..selection import Selection
from .base import BackendAdapter

MI = 2**20


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

    def plugin_annotations(self, target: Target, selection: Selection) -> dict[str, str]:
        settings = target.htcondor or HTCondorSettings()
        out = {}
        if settings.singularity_options:
            out["htcondor-job.vk.io/singularity-options"] = " ".join(settings.singularity_options)
        if settings.image_root:
            out["htcondor-job.knoc.io/image-root"] = settings.image_root
        return out

    def requests(self, cores: float, memory: int) -> dict[str, str]:
        return {"cpu": str(math.floor(cores + 1e-9)), "memory": f"{memory // MI}Mi"}
