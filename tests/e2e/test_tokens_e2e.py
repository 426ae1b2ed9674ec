"""Tokens end to end: a real hub delivers a user's tokens to a real server
through the server's Secret, rotates them while the server runs, and never
shows them anywhere else.

Two places, because they differ in what a rotation reaches:

* a server on the hub's own cluster (node-local): a kubelet re-syncs Secret
  volumes, so the running server's token file follows the rotation (the test
  bed's virtual kubelet imitates that re-sync on node-local, and like
  interLink not on its virtual nodes);
* a session on the real interLink stack (SLURM plugin, real SLURM): interLink's
  virtual kubelet sends the pod's Secrets to the plugin once, when it creates
  the job (interLink ``pkg/virtualkubelet/execute.go``, ``remoteExecution``
  CREATE builds ``req.Secrets``), and the plugin writes them into the job script
  (interlink-slurm-plugin ``pkg/slurm/prepare.go``, ``mountData``); the
  Secret rotates in Kubernetes but the running job keeps the first token.

How the test sees what the server sees: the pod's command is a two-line shell
wrapper (admin config, no user text) that writes its environment to
``$HOME/probe-env`` and links ``$HOME/probe-bearer`` to ``$BEARER_TOKEN_FILE``
before it execs ``jupyterhub-singleuser``; the test reads both through the
server's own contents API (via configurable-http-proxy, with a user token), so
it reads the environment the server started with and the token file as the
running server sees it now.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from jupyterhub.crypto import CryptKeeper
from jupyterhub.tests.utils import async_requests, public_url

from log_capture import all_logs_at_debug, leaked
from test_tokens import jwt
from testbed.controlplane import free_ports
from testbed.interlink import DEFAULT_NODE, job_id

from .conftest import NAMESPACE, SINGLEUSER

PROBE = 'env > "$HOME/probe-env"; ln -sf "$BEARER_TOKEN_FILE" "$HOME/probe-bearer"; exec "$@"'
TARGETS: dict[str, Any] = {
    "cluster": {"display_name": "This cluster", "backend": "kubernetes"},
    "slurm": {
        "display_name": "Local SLURM (interLink)",
        "backend": "slurm",
        "node": DEFAULT_NODE,
        "offload": "session",
        "slurm": {"partition": "boost_usr_prod"},
        "start_timeout": 150,
    },
}
PROFILES = [
    {"display_name": "Analysis", "slug": "analysis"},
    {
        "display_name": "Broken env",
        "slug": "broken",
        # An env var name the API server refuses: the pod create fails with HTTP 422.
        "kubespawner_override": {"environment": {"BAD=NAME": "x", "ADMIN_SECRET": "admin-secret-do-not-log"}},
    },
]


def access_token(n: int) -> str:
    return jwt(
        {
            "sub": "7f0c-carol",
            "iss": "https://iam.example.org/",
            "exp": int(time.time()) + 3600,
            "jti": f"access-{n}-{os.urandom(8).hex()}",
            "wlcg.groups": ["/ai-infn"],
        }
    )


REFRESH = jwt({"jti": f"refresh-{os.urandom(8).hex()}"})


@pytest.fixture
async def hub(spawn_hub):
    keeper = CryptKeeper.instance()  # auth_state needs an encryption key (JUPYTERHUB_CRYPT_KEY)
    before = keeper.keys
    keeper.keys = [os.urandom(32)]
    hub = await spawn_hub(
        {
            "offload_targets": TARGETS,
            "profile_list": PROFILES,
            "cmd": ["/bin/sh", "-c", PROBE, "probe", SINGLEUSER],
        },
        {},
        ("carol",),
    )
    hub.app.authenticator.enable_auth_state = True
    yield hub
    keeper.keys = before


@pytest.fixture
async def slurm_hub(spawn_hub, interlink_stack):
    """A hub whose sessions on ``slurm`` run through the real interLink stack. The job
    reports pod IP 127.0.0.1 (interLink's virtual kubelet), so the server listens
    there on a free port of its own; it starts in its HOME (the job's own folder,
    which the singularity stand-in makes), where the probe writes its files."""
    keeper = CryptKeeper.instance()
    before = keeper.keys
    keeper.keys = [os.urandom(32)]
    (port,) = free_ports(1)
    hub = await spawn_hub(
        {
            "offload_targets": TARGETS,
            "profile_list": PROFILES,
            "port": port,
            "ip": "127.0.0.1",
            "http_timeout": 120,
            "cmd": ["/bin/sh", "-c", 'cd "$HOME"; ' + PROBE, "probe", SINGLEUSER],
        },
        {},
        ("carol",),
    )
    hub.app.authenticator.enable_auth_state = True
    yield hub
    keeper.keys = before


async def read_file(hub, user: str, token: str, path: str) -> str:
    r = await hub.via_proxy(user, f"api/contents/{path}?content=1&type=file&format=text", token)
    assert r.status_code == 200, (r.status_code, r.text[:300])
    return r.json()["content"]


def env_file(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


async def test_tokens_reach_the_server_only_through_its_secret_and_rotate(hub, admin):
    """On the hub's own cluster, where the kubelet re-syncs Secret volumes."""
    user = hub.app.users["carol"]
    first, second = access_token(1), access_token(2)
    await user.save_auth_state({"access_token": first, "refresh_token": REFRESH, "id_token": "x", "scope": []})
    with all_logs_at_debug() as logs:
        r = await hub.api_spawn("carol", {"profile": "analysis", "target": "cluster"})
        assert r.status_code in (201, 202), r.text
        await hub.wait_ready("carol", timeout=60)
        spawner = user.spawner
        hub_token = spawner.api_token
        secrets = [first, second, REFRESH, hub_token]

        pod = await admin.pod(spawner.pod_name)
        assert pod["spec"]["nodeName"] == "node-local"
        assert leaked([json.dumps(pod)], secrets) == []
        env = {e["name"]: e for e in pod["spec"]["containers"][0]["env"]}
        assert env["ACCESS_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == f"{spawner.pod_name}-offload"
        assert "value" not in env["JUPYTERHUB_API_TOKEN"]

        secret = await admin.secret(f"{spawner.pod_name}-offload")
        assert secret["metadata"]["ownerReferences"] == [
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": spawner.pod_name,
                "uid": pod["metadata"]["uid"],
                "controller": False,
                "blockOwnerDeletion": True,
            }
        ]
        assert base64.b64decode(secret["data"]["access_token"]).decode() == first

        # What the running server sees.
        api = await hub.token("carol")
        seen = env_file(await read_file(hub, "carol", api, "probe-env"))
        assert seen["ACCESS_TOKEN"] == first
        assert seen["JUPYTERHUB_API_TOKEN"] == hub_token
        assert "REFRESH_TOKEN" not in seen  # not delivered unless the admin opts in
        assert seen["BEARER_TOKEN_FILE"].endswith("/volumes/offload-tokens/access_token")
        assert await read_file(hub, "carol", api, "probe-bearer") == first

        # A new token in the auth_state: the next poll rotates the Secret ...
        await user.save_auth_state({"access_token": second, "refresh_token": REFRESH, "id_token": "x", "scope": []})
        assert await spawner.poll() is None
        assert await asyncio.wait_for(spawner._rotation_task, 30) is True
        rotated = await admin.secret(f"{spawner.pod_name}-offload")
        assert base64.b64decode(rotated["data"]["access_token"]).decode() == second
        assert base64.b64decode(rotated["data"]["jupyterhub_api_token"]).decode() == hub_token
        assert rotated["metadata"]["ownerReferences"] == secret["metadata"]["ownerReferences"]
        # ... and the running server's token file shows the new token.
        for _ in range(100):
            if await read_file(hub, "carol", api, "probe-bearer") == second:
                break
            await asyncio.sleep(0.2)
        else:
            raise AssertionError("the rotated token did not reach the running server's BEARER_TOKEN_FILE")
        # Nothing new: the next poll leaves the Secret alone.
        assert await spawner.poll() is None
        assert await asyncio.wait_for(spawner._rotation_task, 30) is False

        events = await admin.core.list_namespaced_event(NAMESPACE, _preload_content=False)
        assert leaked([(await events.read()).decode()], secrets) == []
        pod = await admin.pod(spawner.pod_name)
        assert leaked([json.dumps(pod)], secrets) == []

        pod_name = spawner.pod_name
        await hub.stop("carol")
        await hub.wait_stopped("carol")
        assert await admin.secret(f"{pod_name}-offload") is None
        assert await admin.pod(pod_name) is None

    assert leaked(logs, secrets) == []
    assert any("Rotated the token Secret" in line for line in logs)
    assert any(" DEBUG " in line for line in logs)


async def test_a_failed_pod_create_logs_and_shows_no_secret(hub, admin):
    """KubeSpawner logs the whole pod when its creation fails (upstream #639): not here."""
    user = hub.app.users["carol"]
    token = access_token(3)
    await user.save_auth_state({"access_token": token, "refresh_token": REFRESH})
    with all_logs_at_debug() as logs:
        r = await hub.api_spawn("carol", {"profile": "broken"})
        pending = await async_requests.get(
            public_url(hub.app) + "hub/spawn-pending/carol", cookies=hub.cookies["carol"]
        )
        await hub.wait_spawn_failed("carol", timeout=30)
    marker = "admin-secret-do-not-log"
    assert r.status_code >= 400 or r.status_code == 202, r.text
    assert leaked([r.text, pending.text], [token, REFRESH, marker]) == []
    failures = [line for line in logs if " ERROR " in line or " WARNING " in line]
    assert any("Failed for <pod" in line and "not logged" in line for line in failures), "the create did not fail"
    # The pod dump (with its env) is not in the error log; no token is in any log line.
    # (KubeSpawner logs admin kubespawner_override values at DEBUG: admin config, not a pod dump.)
    assert leaked(failures, [marker]) == []
    assert leaked(logs, [token, REFRESH]) == []
    assert await admin.pod(user.spawner.pod_name) is None
    assert await admin.secret(f"{user.spawner.pod_name}-offload") is None


async def test_on_the_real_interlink_stack_the_job_keeps_the_token_it_started_with(slurm_hub, admin, interlink_stack):
    """The tokens reach the SLURM job only through the server's Secret (as interLink's
    virtual kubelet resolves it), and a rotation replaces the Secret in Kubernetes but
    never reaches the running job: interLink sends Secrets to the plugin once, at create."""
    hub = slurm_hub
    user = hub.app.users["carol"]
    first, second = access_token(4), access_token(5)
    await user.save_auth_state({"access_token": first, "refresh_token": REFRESH, "id_token": "x", "scope": []})
    with all_logs_at_debug() as logs:
        r = await hub.api_spawn("carol", {"profile": "analysis", "target": "slurm"})
        assert r.status_code in (201, 202), r.text
        await hub.wait_ready("carol", timeout=150)
        spawner = user.spawner
        pod_name, hub_token = spawner.pod_name, spawner.api_token
        secrets = [first, second, REFRESH, hub_token]

        pod = await admin.pod(pod_name)
        assert pod["spec"]["nodeName"] == DEFAULT_NODE
        assert job_id(pod), pod["metadata"].get("annotations")
        assert leaked([json.dumps(pod)], secrets) == []
        env = {e["name"]: e for e in pod["spec"]["containers"][0]["env"]}
        assert env["ACCESS_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == f"{pod_name}-offload"

        # What the job's server sees: the values interLink resolved from the Secret at create.
        api = await hub.token("carol")
        seen = env_file(await read_file(hub, "carol", api, "probe-env"))
        assert seen["ACCESS_TOKEN"] == first
        assert seen["JUPYTERHUB_API_TOKEN"] == hub_token
        assert "REFRESH_TOKEN" not in seen
        job_dir = interlink_stack.data_root / f"{NAMESPACE}-{pod['metadata']['uid']}"
        # The SLURM plugin wrote the Secret volume's files into the job's folder and bound them
        # (the singularity stand-in shows a bound path as the host path it binds).
        assert seen["BEARER_TOKEN_FILE"].startswith(f"{job_dir}/"), seen["BEARER_TOKEN_FILE"]
        bearer_file = await asyncio.to_thread(Path(seen["BEARER_TOKEN_FILE"]).is_file)
        assert bearer_file, (seen["BEARER_TOKEN_FILE"], sorted(job_dir.rglob("*")))
        assert await read_file(hub, "carol", api, "probe-bearer") == first

        # The rotation replaces the Secret in Kubernetes ...
        await user.save_auth_state({"access_token": second, "refresh_token": REFRESH, "id_token": "x", "scope": []})
        assert await spawner.poll() is None
        assert await asyncio.wait_for(spawner._rotation_task, 30) is True
        rotated = await admin.secret(f"{pod_name}-offload")
        assert base64.b64decode(rotated["data"]["access_token"]).decode() == second
        # ... and the pod is still the same running job (the rotation did not restart it) ...
        await asyncio.sleep(12)  # two of the virtual kubelet's status rounds after the rotation
        pod = await admin.pod(pod_name)
        assert pod["status"]["phase"] == "Running", pod["status"]
        assert job_id(pod) and interlink_stack.slurm.active_jobs(), interlink_stack.slurm.jobs()
        # ... whose token file still holds the first token: interLink does not re-send Secrets.
        assert await read_file(hub, "carol", api, "probe-bearer") == first
        # The plugin wrote the first token into the job's files; the second is nowhere there.
        job_files = [f.read_text(errors="replace") for f in job_dir.rglob("*") if f.is_file()]
        assert leaked(job_files, [first]) != [], "the first token should be in the job's files"
        assert leaked(job_files, [second]) == [], "a rotated token reached the running job's files"

        await hub.stop("carol")
        await hub.wait_stopped("carol", timeout=60)
        await admin.wait_pod(pod_name, lambda p: p is None, "deleted", timeout=90)
        assert await admin.secret(f"{pod_name}-offload") is None

    assert leaked(logs, secrets) == []
    assert any("Rotated the token Secret" in line for line in logs)
