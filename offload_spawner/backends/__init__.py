"""Backend adapters: the interLink annotations each plugin reads.

One short module per backend, like OAuthenticator's one module per provider.
An adapter turns *typed admin settings* and *validated numbers* into
annotations; user free text never reaches it.
"""

from __future__ import annotations

from ..catalog import Backend
from .base import BackendAdapter
from .docker import DockerAdapter
from .generic import GenericAdapter
from .htcondor import HTCondorAdapter
from .interlink_kubernetes import InterlinkKubernetesAdapter
from .interlink_nats import InterlinkNatsAdapter
from .kubernetes import KubernetesAdapter
from .slurm import SlurmAdapter

ADAPTERS: dict[Backend, BackendAdapter] = {
    Backend.kubernetes: KubernetesAdapter(),
    Backend.slurm: SlurmAdapter(),
    Backend.htcondor: HTCondorAdapter(),
    Backend.docker: DockerAdapter(),
    Backend.interlink_kubernetes: InterlinkKubernetesAdapter(),
    Backend.interlink_nats: InterlinkNatsAdapter(),
    Backend.generic: GenericAdapter(),
}


def adapter_for(backend: Backend) -> BackendAdapter:
    return ADAPTERS[backend]


__all__ = ["ADAPTERS", "BackendAdapter", "adapter_for"]
