"""Spawner side of token delivery: create, rotate and delete the server's Secret.

:class:`TokenDeliveryMixin` sits between :class:`~offload_spawner.hub.spawner.OffloadSpawner`
and KubeSpawner. What goes into the Secret and the pod is decided by the pure
:mod:`offload_spawner.identity.tokens`; this module does the I/O, with the permissions of
Zero-to-JupyterHub's hub Role (secrets: get/list/watch/create/delete, no
patch/update):

* the pod's env holds no token: the plain ``JUPYTERHUB_API_TOKEN`` /
  ``JPY_API_TOKEN`` that JupyterHub and KubeSpawner add are replaced by
  ``secretKeyRef``\\ s, and the token/file volumes are added;
* **ordering**: the Secret needs the pod's uid for its ownerReference, which
  exists only once the pod does, so (like KubeSpawner's internal-ssl Secret)
  the pod is created first and the Secret right after, from the uid the API
  returns. A kubelet retries a container whose referenced Secret is missing
  (CreateContainerConfigError), interLink's virtual kubelet resolves secrets
  when it builds the remote job (the scheduler's binding comes first); the
  window is one API round trip. A stale Secret of the same name (an earlier
  server whose garbage collection is pending) is deleted before the pod is
  created, so the new pod never reads old tokens;
* **rotation**: in ``poll()``, when the delivered access token is within
  ``renew_before`` of its expiry or the user's auth_state holds another one,
  the Secret is replaced (delete + create, same name and owner); one rotation
  per server at a time, failures logged without tokens and retried with back
  off, never raised out of ``poll()``;
* **logging**: KubeSpawner logs the whole pod when its creation fails
  (upstream #639) and kubernetes_asyncio logs response bodies at DEBUG, so
  pods are passed to KubeSpawner in a wrapper whose ``to_str``/``repr`` show
  only the name, and every Secret request is made with
  ``_preload_content=False`` (no body is ever logged).
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from kubernetes_asyncio.client.exceptions import ApiException
from kubernetes_asyncio.client.models import V1EnvVar, V1Pod, V1Volume, V1VolumeMount
from kubespawner.utils import get_k8s_model

from ..pipeline.catalog import TokenPolicy
from ..spawner_base import SpawnerBase
from .server_secret import ACCESS_TOKEN_KEY, HUB_TOKEN_KEY, secret_name
from .tokens import (
    PLAIN_HUB_TOKEN_ENV,
    Delivery,
    auth_tokens,
    build_delivery,
    fresh_secret_for_create,
    jwt_expiry,
    owner_reference,
    token_digest,
    with_tokens,
)

#: Longest wait between two failed rotation attempts, seconds.
MAX_ROTATION_BACKOFF = 1800.0
_STATE_KEY = "offload_tokens"


class TokenSecretError(Exception):
    """A Secret request failed; the message holds names and HTTP status only."""


class _LogSafePod(V1Pod):
    """A V1Pod that shows only its name when KubeSpawner logs it (upstream #639)."""

    @classmethod
    def wrap(cls, pod: V1Pod) -> _LogSafePod:
        safe = cls.__new__(cls)
        safe.__dict__.update(pod.__dict__)
        return safe

    def to_str(self) -> str:
        name = self.metadata.name if self.metadata is not None else "?"
        return f"<pod {name}: spec not logged, it may hold secrets>"

    def __repr__(self) -> str:
        return self.to_str()


def _describe(error: BaseException) -> str:
    """An error for a log line: never an exception's text that could echo a body."""
    if isinstance(error, ApiException):
        return f"HTTP {error.status} {error.reason or ''}".strip()
    if isinstance(error, (TokenSecretError, asyncio.TimeoutError)):
        return str(error) or type(error).__name__
    return type(error).__name__


class TokenDeliveryMixin(SpawnerBase):
    """Deliver the server's tokens through a per-server Secret (see module doc)."""

    _token_delivery: Delivery | None = None
    _token_pod_uid: str | None = None
    _delivered_access_digest: str | None = None
    _delivered_access_expiry: float | None = None
    _rotation_task: asyncio.Task[bool] | None = None
    _rotation_failures: int = 0
    _rotation_not_before: float = 0.0
    #: the policy the running server's Secret was made with (kept in the spawner's state)
    _delivered_policy: TokenPolicy | None = None

    # --- hooks other issues replace or extend ----------------------------------------

    async def fresh_auth_state(self, min_lifetime: float | None = None) -> dict[str, Any] | None:
        """The user's auth_state as stored (OffloadSpawner overrides this with
        the refresh-aware version, offload_spawner.identity.refresh.ensure_fresh)."""
        auth_state: dict[str, Any] | None = await self.user.get_auth_state()
        return auth_state

    async def server_files(self) -> dict[str, str]:
        """Files the server receives, absolute path -> content (stored in its Secret)."""
        return {}

    async def dask_hub_token(self) -> str | None:
        """The scoped hub token of the server's Dask pods (DaskHubTokenMixin replaces this), or None."""
        return None

    def token_policy(self) -> TokenPolicy:
        """The target's token policy; after a hub restart (no plan in memory) the one the
        running server's Secret was made with; else the default one."""
        plan = getattr(self, "_plan", None)
        if plan is not None:
            tokens: TokenPolicy = plan.tokens
            return tokens
        return self._delivered_policy or TokenPolicy()

    # --- the pod: references only ----------------------------------------------------

    def get_env(self) -> dict[str, str]:
        env: dict[str, str] = super().get_env()
        for name in PLAIN_HUB_TOKEN_ENV:
            env.pop(name, None)
        return env

    async def get_pod_manifest(self) -> V1Pod:
        pod: V1Pod = await super().get_pod_manifest()
        policy = self.token_policy()
        auth_state = await self.fresh_auth_state(policy.min_lifetime)
        delivery = build_delivery(
            policy,
            auth_state,
            self.api_token,
            await self.server_files(),
            self.pod_name,
            labels=dict(pod.metadata.labels or {}),
            dask_hub_token=await self.dask_hub_token(),
        )
        container = pod.spec.containers[0]
        ours = {e["name"] for e in delivery.env}
        kept = [e for e in container.env or [] if (e.name if isinstance(e, V1EnvVar) else e["name"]) not in ours]
        # First, so that admin env may refer to them as $(ACCESS_TOKEN).
        container.env = [get_k8s_model(V1EnvVar, e) for e in delivery.env] + kept
        pod.spec.volumes = list(pod.spec.volumes or []) + [get_k8s_model(V1Volume, v) for v in delivery.volumes]
        container.volume_mounts = list(container.volume_mounts or []) + [
            get_k8s_model(V1VolumeMount, m) for m in delivery.volume_mounts
        ]
        self._token_delivery = delivery
        self._delivered_policy = policy
        return pod

    # --- creating the Secret ---------------------------------------------------------

    async def _make_create_pod_request(self, pod: V1Pod, request_timeout: float) -> bool:
        delivery = self._token_delivery
        if delivery is not None and HUB_TOKEN_KEY not in delivery.secret["data"]:
            # The manifest builds without a token (as KubeSpawner's does); a
            # server started without one could never talk to the hub.
            raise TokenSecretError(f"{self.pod_name} has no JupyterHub API token to deliver")
        if delivery is not None:
            await self._delete_secret(delivery.secret["metadata"]["name"])
        created: bool = await super()._make_create_pod_request(_LogSafePod.wrap(pod), request_timeout)
        if not created or delivery is None:
            return created
        try:
            uid = await self._pod_uid()
            body = json.loads(json.dumps(delivery.secret))
            body["metadata"]["ownerReferences"] = [owner_reference(self.pod_name, uid)]
            await self._create_secret(body)
        except Exception as e:  # noqa: BLE001 - whatever went wrong, the pod goes; the log names no token
            self.log.error("Delivering the tokens of %s failed: %s", self.pod_name, _describe(e))
            await self.stop(True)
            raise TokenSecretError(f"could not create the token Secret of {self.pod_name}") from None
        self._token_pod_uid = uid
        self._remember_delivered(body)
        self._token_delivery = None  # tokens are not kept in memory longer than needed
        return True

    async def _pod_uid(self) -> str:
        pod: V1Pod = await asyncio.wait_for(
            self.api.read_namespaced_pod(self.pod_name, self.namespace), self.k8s_api_request_timeout
        )
        return pod.metadata.uid

    def _remember_delivered(self, secret: dict[str, Any]) -> None:
        """Keep a digest and the expiry of the delivered access token, not the token."""
        encoded = (secret.get("data") or {}).get(ACCESS_TOKEN_KEY)
        access = base64.b64decode(encoded).decode() if encoded else None
        self._delivered_access_digest = token_digest(access)
        self._delivered_access_expiry = jwt_expiry(access)

    # Every Secret request reads the raw response: kubernetes_asyncio logs parsed
    # response bodies (Secret data included) at DEBUG.

    async def _secret_request(self, call: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> tuple[int, Any]:
        response = await asyncio.wait_for(call(*args, _preload_content=False, **kwargs), self.k8s_api_request_timeout)
        try:
            body = await response.read()
        finally:
            response.release()
        return response.status, body

    async def _create_secret(self, body: dict[str, Any]) -> None:
        name = body["metadata"]["name"]
        for _ in range(2):
            status, _ = await self._secret_request(self.api.create_namespaced_secret, self.namespace, body)
            if 200 <= status < 300:
                self.log.info("Created Secret %s/%s", self.namespace, name)
                return
            if status != 409:
                break
            await self._delete_secret(name)
        raise TokenSecretError(f"creating Secret {self.namespace}/{name} failed: HTTP {status}")

    async def _read_secret(self, name: str) -> dict[str, Any] | None:
        status, body = await self._secret_request(self.api.read_namespaced_secret, name, self.namespace)
        if status == 404:
            return None
        if not 200 <= status < 300:
            raise TokenSecretError(f"reading Secret {self.namespace}/{name} failed: HTTP {status}")
        secret: dict[str, Any] = json.loads(body)
        return secret

    async def _delete_secret(self, name: str) -> None:
        status, _ = await self._secret_request(self.api.delete_namespaced_secret, name, self.namespace)
        if status == 404:
            return
        if not 200 <= status < 300:
            raise TokenSecretError(f"deleting Secret {self.namespace}/{name} failed: HTTP {status}")
        self.log.info("Deleted Secret %s/%s", self.namespace, name)

    # --- rotation while the server runs ------------------------------------------------

    async def poll(self) -> int | None:
        status: int | None = await super().poll()
        if status is None:
            self._schedule_token_rotation()
        return status

    def _schedule_token_rotation(self) -> None:
        if self._delivered_access_digest is None or not self._token_pod_uid:
            return  # no access token delivered: nothing the pod could see change
        if self._rotation_task is not None and not self._rotation_task.done():
            return
        if time.monotonic() < self._rotation_not_before:
            return
        self._rotation_task = asyncio.ensure_future(self.rotate_tokens_if_needed())

    def _rotation_due(self, auth_state: dict[str, Any] | None, policy: TokenPolicy) -> bool:
        access, _ = auth_tokens(auth_state)
        if access is not None and token_digest(access) != self._delivered_access_digest:
            return True
        expiry = self._delivered_access_expiry
        return expiry is not None and expiry - time.time() < policy.renew_before

    async def rotate_tokens_if_needed(self) -> bool:
        """Replace the Secret if its access token is expiring or outdated. Never raises."""
        try:
            policy = self.token_policy()
            if not self._rotation_due(await self.user.get_auth_state(), policy):
                self._rotation_failures = 0
                return False
            fresh = await self.fresh_auth_state(policy.renew_before)
            access, _ = auth_tokens(fresh)
            if fresh is None or access is None or token_digest(access) == self._delivered_access_digest:
                raise TokenSecretError("no newer access token is available")
            await self._replace_secret(fresh, policy)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - never raises: the next poll tries again, later
            self._rotation_failures += 1
            delay = min(30.0 * 2 ** (self._rotation_failures - 1), MAX_ROTATION_BACKOFF)
            self._rotation_not_before = time.monotonic() + delay
            self.log.warning(
                "Rotating the token Secret of %s failed (%s); next try in %.0f s", self.pod_name, _describe(e), delay
            )
            return False
        self._rotation_failures = 0
        self._rotation_not_before = 0.0
        self.log.info("Rotated the token Secret of %s", self.pod_name)
        return True

    async def _replace_secret(self, auth_state: dict[str, Any], policy: TokenPolicy) -> None:
        name = secret_name(self.pod_name)
        pod_uid = self._token_pod_uid
        if not pod_uid:  # checked before the old Secret is deleted: a Secret without its owner is refused
            raise TokenSecretError(f"the pod of {self.pod_name} is not known here")
        existing = await self._read_secret(name)
        if existing is not None:
            body = fresh_secret_for_create(with_tokens(existing, auth_state, policy))
        elif self.api_token:
            body = build_delivery(policy, auth_state, self.api_token, await self.server_files(), self.pod_name).secret
        else:
            raise TokenSecretError(f"Secret {self.namespace}/{name} is gone and the server's API token is unknown here")
        body["metadata"]["ownerReferences"] = [owner_reference(self.pod_name, pod_uid)]
        # The hub Role has no patch/update on Secrets: replace = delete + create.
        await self._delete_secret(name)
        await self._create_secret(body)
        self._remember_delivered(body)

    # --- stop and state ----------------------------------------------------------------

    async def stop(self, now: bool = False) -> None:
        task = self._rotation_task
        if task is not None and not task.done():
            task.cancel()
        try:
            await super().stop(now)
        finally:
            try:
                await self._delete_secret(secret_name(self.pod_name))
            except Exception as e:  # noqa: BLE001 - the garbage collector removes it with the pod anyway
                self.log.warning("Deleting the token Secret of %s failed: %s", self.pod_name, _describe(e))

    def get_state(self) -> dict[str, Any]:
        state: dict[str, Any] = super().get_state()
        if self._token_pod_uid:
            state[_STATE_KEY] = {
                "pod_uid": self._token_pod_uid,
                "access_sha256": self._delivered_access_digest,
                "access_expires": self._delivered_access_expiry,
                # Which tokens the Secret holds and when they rotate: a restarted hub has no
                # plan in memory, and rotating with the default policy would drop the
                # target's own (a delivered refresh token would no longer be renewed).
                "policy": self._delivered_policy.model_dump(mode="json") if self._delivered_policy else None,
            }
        return state

    def load_state(self, state: dict[str, Any] | None) -> None:
        super().load_state(state)
        saved = (state or {}).get(_STATE_KEY) or {}
        self._token_pod_uid = saved.get("pod_uid")
        self._delivered_access_digest = saved.get("access_sha256")
        self._delivered_access_expiry = saved.get("access_expires")
        self._delivered_policy = None
        if saved.get("policy"):
            try:
                self._delivered_policy = TokenPolicy.model_validate(saved["policy"])
            except ValueError:
                self.log.warning(
                    "The saved token policy of %s is unreadable; rotating with the default one", self.pod_name
                )

    def clear_state(self) -> None:
        super().clear_state()
        self._token_pod_uid = None
        self._delivered_access_digest = None
        self._delivered_access_expiry = None
        self._delivered_policy = None
        self._rotation_failures = 0
        self._rotation_not_before = 0.0


__all__ = ["TokenDeliveryMixin", "TokenSecretError"]
