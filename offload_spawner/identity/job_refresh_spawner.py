"""Spawner side of the refresher in the job (see offload_spawner.identity.job_refresh).

:class:`JobRefreshMixin` adds, for a target with ``tokens.refresh_in_job``, the
refresher's files to the server's Secret (``server_files``) and the emptyDir,
``BEARER_TOKEN_FILE`` and the wrapped command to the pod (``get_pod_manifest``).
The token endpoint defaults to the hub authenticator's ``token_url`` (read here,
at the edge).
"""

from __future__ import annotations

from typing import Any

from kubernetes_asyncio.client.models import V1EnvVar, V1KeyToPath, V1Volume, V1VolumeMount
from kubespawner.utils import get_k8s_model

from ..pipeline.catalog import RefreshInJob
from ..spawn_errors import spawn_error
from .job_refresh import (
    REFRESHER_DIR,
    JobRefreshError,
    job_refresh_parts,
    key_named,
    refresher_files,
    wrapped_command,
)

#: What a user sees when the refresher cannot be set up, before the reason (configuration text, no secret).
SETUP_FAILED = "This server cannot be started: the hub cannot set up the renewal of its access token on this site"


class JobRefreshMixin:
    """Start the server through the token refresher where its target asks for it."""

    def _refresh_in_job(self) -> RefreshInJob | None:
        policy = self.token_policy()  # type: ignore[attr-defined]
        settings: RefreshInJob | None = policy.refresh_in_job
        return settings

    def job_refresher_files(self) -> dict[str, str]:
        """The refresher's program and settings, for the server's Secret (none
        where the target does not opt in); OffloadSpawner's ``server_files`` adds them."""
        settings = self._refresh_in_job()
        if settings is None:
            return {}
        authenticator = getattr(self, "authenticator", None)
        hub_token_url = getattr(authenticator, "token_url", None) or None
        try:
            return refresher_files(settings, hub_token_url)
        except JobRefreshError as e:
            self.log.error("The token refresher of %s cannot be set up: %s", self.pod_name, e)  # type: ignore[attr-defined]
            raise spawn_error(f"{SETUP_FAILED} ({e}). Please tell the hub's admins.", "config", 500) from None

    async def get_pod_manifest(self) -> Any:
        pod = await super().get_pod_manifest()  # type: ignore[misc]
        settings = self._refresh_in_job()
        if settings is None:
            return pod
        parts = job_refresh_parts(settings)
        container = pod.spec.containers[0]
        try:
            container.command = wrapped_command(parts.command_prefix, container.command, container.args)
        except JobRefreshError as e:
            self.log.error("The token refresher of %s cannot be set up: %s", self.pod_name, e)  # type: ignore[attr-defined]
            raise spawn_error(f"{SETUP_FAILED} ({e}). Please tell the hub's admins.", "config", 500) from None
        self._name_refresher_files_as_keys(pod)
        ours = {e["name"] for e in parts.env}
        kept = [e for e in container.env or [] if (e.name if isinstance(e, V1EnvVar) else e["name"]) not in ours]
        container.env = kept + [get_k8s_model(V1EnvVar, e) for e in parts.env]
        pod.spec.volumes = list(pod.spec.volumes or []) + [get_k8s_model(V1Volume, v) for v in parts.volumes]
        container.volume_mounts = list(container.volume_mounts or []) + [
            get_k8s_model(V1VolumeMount, m) for m in parts.volume_mounts
        ]
        return pod

    @staticmethod
    def _name_refresher_files_as_keys(pod: Any) -> None:
        """The Secret volume mounted at REFRESHER_DIR places each file under its key's name."""
        mounted = {m.name for c in pod.spec.containers for m in c.volume_mounts or [] if m.mount_path == REFRESHER_DIR}
        for volume in pod.spec.volumes or []:
            secret = volume.secret
            if volume.name not in mounted or secret is None:
                continue
            if isinstance(secret, dict):  # get_k8s_model keeps nested dicts as they are
                secret["items"] = key_named(list(secret.get("items") or []))
            elif secret.items:
                items = [{"key": i.key, "path": i.path} for i in secret.items]
                secret.items = [get_k8s_model(V1KeyToPath, i) for i in key_named(items)]


__all__ = ["SETUP_FAILED", "JobRefreshMixin"]
