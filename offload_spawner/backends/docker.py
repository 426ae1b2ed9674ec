"""interLink Docker plugin: ``backend: docker``, settings ``docker``."""

from __future__ import annotations

from pydantic import Field, field_validator

from ..pipeline.catalog_types import BatchFlag, CatalogModel
from .base import BackendAdapter


class DockerSettings(CatalogModel):
    """What the interLink Docker plugin reads: nothing this spawner can set.

    ``docker-options.vk.io/flags`` is placed before ``run`` by the plugin (so
    ``--shm-size`` and the like are not ``docker run`` flags there), and the
    executed command drops them; so ``flags`` is refused rather than promise
    an effect. An FPGA limit (``xilinx.com/fpga``) is turned into ``--device`` by
    the plugin itself.
    """

    flags: list[BatchFlag] = Field(
        [],
        description=(
            "Refused when not empty: the Docker plugin does not pass these to 'docker run' "
            "(docker-options.vk.io/flags go before 'run' and are dropped from the executed command)."
        ),
    )

    @field_validator("flags")
    @classmethod
    def _no_flags(cls, value: list[str]) -> list[str]:
        if value:
            raise ValueError(
                "the interLink Docker plugin does not pass docker-options.vk.io/flags to 'docker run' (they go "
                "before 'run' and the executed command drops them): remove 'flags'"
            )
        return value


class DockerAdapter(BackendAdapter):
    """interLink Docker plugin: no annotation of it has an effect this spawner can
    promise. ``docker-options.vk.io/flags`` go before ``run`` in the plugin and
    the executed command drops them (so ``docker.flags`` is refused at check
    time); an ``xilinx.com/fpga`` limit becomes ``--device`` in the plugin itself."""

    name = "docker"
    summary = "the interLink Docker plugin"
    order = 30
    settings_field = "docker"
    settings_model = DockerSettings
    settings_help = "Docker plugin settings (backend `docker` only)."
    owned_annotation_prefixes = ("docker-options.vk.io/",)


BACKEND = DockerAdapter()
