from __future__ import annotations

from ..catalog import DockerSettings, Target
from ..selection import Selection
from .base import BackendAdapter


class DockerAdapter(BackendAdapter):
    """interLink Docker plugin; it turns an ``xilinx.com/fpga`` limit into ``--device`` itself."""

    def annotations(self, target: Target, selection: Selection) -> dict[str, str]:
        settings = target.docker or DockerSettings()
        if settings.flags:
            return {"docker-options.vk.io/flags": " ".join(settings.flags)}
        return {}
