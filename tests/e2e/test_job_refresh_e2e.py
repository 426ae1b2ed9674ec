"""The job renews its own access token on the real interLink SLURM stack.

interLink hands the pod's Secret to the SLURM plugin once, when it creates the
job; the token in the server's Secret never changes for the job. With
``tokens.refresh_in_job`` the job's refresher (offload_spawner/identity/job_token_refresher.py,
run by the host's ``python3`` through the ``singularity`` stand-in, which
rewrites the bound paths in its arguments) renews the file in the emptyDir the
real SLURM plugin made for the job, against the test bed's real OpenID Connect
provider issuing short-lived tokens. The Secret keeps the delivered token.
"""

from __future__ import annotations

import asyncio
import base64
import os

import pytest
import requests
from jupyterhub.crypto import CryptKeeper

from testbed.controlplane import free_ports
from testbed.interlink import DEFAULT_NODE
from testbed.oidc import OidcProvider

from .test_interlink_slurm_e2e import PROFILES, SLURM_FLAGS, _job_output, _until

# The SLURM plugin writes the Secret's files only with SHARED_FS=true, which the
# interlink_stack fixture sets (testbed/interlink.py, InterlinkStack).
TTL = 12  # seconds an access token lives; with refresh_at 0.5 the job renews every 6 s
USERS = {"carol": {"password": "pw", "groups": ["ai-infn"]}}


@pytest.fixture(scope="module")
def idp():
    with OidcProvider(USERS, access_token_ttl=TTL) as provider:
        yield provider


@pytest.fixture
async def refresh_hub(spawn_hub, interlink_stack, idp):
    keeper = CryptKeeper.instance()  # auth_state needs an encryption key (JUPYTERHUB_CRYPT_KEY)
    before = keeper.keys
    keeper.keys = [os.urandom(32)]
    (port,) = free_ports(1)
    targets = {
        "slurm": {
            "display_name": "Local SLURM (interLink)",
            "backend": "slurm",
            "node": DEFAULT_NODE,
            "offload": "session",
            "slurm": SLURM_FLAGS,
            "start_timeout": 150,
            "limits": {"cores": 2, "memory": "4G"},
            "tokens": {
                "refresh_token": True,
                # The hub's own (confidential) client: the refresh token was issued to it.
                "refresh_in_job": {
                    "client_id": idp.client_id,
                    "client_secret": idp.client_secret,
                    "token_url": f"{idp.issuer}/token",
                    "refresh_at": 0.5,
                },
            },
        },
    }
    hub = await spawn_hub(
        {
            "offload_targets": targets,
            "profile_list": [{**PROFILES[0], "targets": ["slurm"]}],
            "port": port,
            "ip": "127.0.0.1",
            "http_timeout": 120,
        },
        {"ai-infn": ["carol"]},
        ("carol",),
    )
    hub.app.authenticator.enable_auth_state = True
    yield hub
    keeper.keys = before


async def test_the_jobs_token_file_is_renewed_while_the_secret_is_not(refresh_hub, admin, interlink_stack, idp):
    hub = refresh_hub
    tokens = idp.login_tokens("carol", "pw")
    delivered = tokens["access_token"]
    user = hub.app.users["carol"]
    await user.save_auth_state(
        {"access_token": delivered, "refresh_token": tokens["refresh_token"], "id_token": "x", "scope": []}
    )
    r = await hub.api_spawn("carol", {"profile": "analysis", "target": "slurm"})
    assert r.status_code in (201, 202), r.text
    try:
        await hub.wait_ready("carol", timeout=150)
    except AssertionError:
        outputs = "\n".join(
            f"== {f}:\n{f.read_text(errors='replace')[-3000:]}"
            for folder in interlink_stack.job_dirs()
            for f in sorted(folder.glob("*.out"))
        )
        raise AssertionError(f"the server did not start; the jobs wrote:\n{outputs}") from None
    pod = await admin.pod(hub.pod_name("carol"))
    assert pod["spec"]["nodeName"] == DEFAULT_NODE
    job_dir = interlink_stack.data_root / f"{pod['metadata']['namespace']}-{pod['metadata']['uid']}"
    # The real SLURM plugin's emptyDir for the job (interlink-slurm-plugin/pkg/slurm/prepare.go, mountData).
    fresh = job_dir / "emptyDirs" / "offload-fresh-tokens" / "access_token"

    seen: list[str] = []

    def renewed_twice() -> bool:
        # The server takes longer to start than a token lives: the file may hold a renewed token already.
        token = fresh.read_text().strip() if fresh.exists() else ""
        if token and token != delivered and (not seen or token != seen[-1]):
            seen.append(token)
        return len(seen) >= 2

    try:
        await _until("the job's token file renewed twice", renewed_twice, 120)
    except AssertionError:
        raise AssertionError(f"token files seen: {len(seen)}; {_job_output(interlink_stack, pod)}") from None
    for token in seen:
        r = await asyncio.to_thread(
            requests.get, f"{idp.issuer}/userinfo", headers={"Authorization": f"Bearer {token}"}, timeout=10
        )
        assert r.status_code == 200, r.text
        assert r.json()["sub"] == "carol"

    # The Secret the job was created from still holds the delivered token.
    secret = await admin.secret(f"{hub.pod_name('carol')}-offload")
    assert base64.b64decode(secret["data"]["access_token"]).decode() == delivered
    output = _job_output(interlink_stack, pod)
    assert "renewed the access token" in output
    for value in (*seen, tokens["refresh_token"], idp.client_secret):
        assert value not in output

    await hub.stop("carol")
    await hub.wait_stopped("carol", timeout=60)
    await _until("no SLURM job left", lambda: not interlink_stack.slurm.active_jobs(), 90)
