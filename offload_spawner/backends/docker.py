from __future__ import annotations

from .base import BackendAdapter


class DockerAdapter(BackendAdapter):
    """interLink Docker plugin: no annotation of it has an effect this spawner can
    promise. ``docker-options.vk.io/flags`` go before ``run`` in the plugin and
    the executed command drops them (so ``docker.flags`` is refused at check
    time); an ``xilinx.com/fpga`` limit becomes ``--device`` in the plugin itself."""
