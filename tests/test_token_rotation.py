"""Rotation decisions and failure handling of OffloadSpawner, without a cluster.

The spawner is real (as in test_spawner_parity); its Kubernetes client points at
the offline kubeconfig of tests/conftest.py, so every Secret request really
fails (connection refused), which is the failure path under test.
"""

from __future__ import annotations

import asyncio
import time

from jupyterhub.objects import Hub
from traitlets.config import Config

from log_capture import all_logs_at_debug, leaked
from offload_spawner.hub.cli import CliGroup, CliUser
from offload_spawner.hub.spawner import OffloadSpawner
from offload_spawner.identity.tokens import token_digest
from test_tokens import ACCESS, REFRESH, jwt

NEW_ACCESS = jwt({"sub": "u-123", "exp": int(time.time()) + 7200, "jti": "second"})


def spawner_with(auth_state: dict | None) -> OffloadSpawner:
    config = Config()
    config.KubeSpawner.k8s_api_request_timeout = 2
    spawner = OffloadSpawner(
        user=CliUser("alice", [CliGroup("x")], auth_state=auth_state),
        hub=Hub(ip="hub", port=8081, base_url="/hub/"),
        config=config,
    )
    spawner.api_token = "hub-token-abc123"
    # As after a spawn that delivered ACCESS to pod uid "u1".
    spawner._token_pod_uid = "u1"
    spawner._delivered_access_digest = token_digest(ACCESS)
    spawner._delivered_access_expiry = time.time() + 3600
    return spawner


async def test_nothing_to_do_while_the_token_is_current_and_fresh():
    spawner = spawner_with({"access_token": ACCESS})
    assert await spawner.rotate_tokens_if_needed() is False
    assert spawner._rotation_failures == 0


async def test_a_failed_rotation_is_logged_without_tokens_backs_off_and_never_raises():
    spawner = spawner_with({"access_token": NEW_ACCESS, "refresh_token": REFRESH})
    with all_logs_at_debug() as logs:
        assert await spawner.rotate_tokens_if_needed() is False  # the API is unreachable
    assert spawner._rotation_failures == 1
    assert spawner._rotation_not_before > time.monotonic() + 20
    warnings = [line for line in logs if "Rotating the token Secret of jupyter-alice failed" in line]
    assert warnings, logs
    assert leaked(logs, [ACCESS, NEW_ACCESS, REFRESH, "hub-token-abc123"]) == []

    # Within the back-off, poll schedules nothing.
    spawner._schedule_token_rotation()
    assert spawner._rotation_task is None
    # After it, one task at a time.
    spawner._rotation_not_before = 0
    spawner._schedule_token_rotation()
    first = spawner._rotation_task
    spawner._schedule_token_rotation()
    assert spawner._rotation_task is first
    assert await asyncio.wait_for(first, 30) is False
    assert spawner._rotation_failures == 2
    assert spawner._rotation_not_before > time.monotonic() + 50  # doubled


async def test_an_expiring_token_without_a_newer_one_backs_off():
    spawner = spawner_with({"access_token": ACCESS})
    spawner._delivered_access_expiry = time.time() + 60  # below renew_before (600 s)
    with all_logs_at_debug() as logs:
        assert await spawner.rotate_tokens_if_needed() is False
    assert any("no newer access token is available" in line and "WARNING" in line for line in logs)
    assert spawner._rotation_failures == 1


async def test_nothing_is_scheduled_when_no_access_token_was_delivered():
    spawner = spawner_with(None)
    spawner._delivered_access_digest = None
    spawner._schedule_token_rotation()
    assert spawner._rotation_task is None


async def test_state_survives_a_hub_restart_without_tokens():
    spawner = spawner_with({"access_token": ACCESS})
    state = spawner.get_state()
    assert state["offload_tokens"]["pod_uid"] == "u1"
    assert ACCESS not in repr(state) and "hub-token-abc123" not in repr(state)
    again = spawner_with(None)
    again.clear_state()
    assert again._token_pod_uid is None
    again.load_state(state)
    assert again._delivered_access_digest == token_digest(ACCESS)
    assert again._token_pod_uid == "u1"
