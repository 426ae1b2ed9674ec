"""The job's token refresher as a program, against the test bed's real OpenID
Connect provider (``oidc-provider``, testbed/oidc.py) issuing short-lived tokens.

The program runs as it runs in a job: a separate interpreter with neither
site-packages nor this checkout on its path (``python -I -S``), so it can only
use the standard library. Tokens come from a real authorization-code login of
the user to the refresher's client; the tests watch the token file, ask the
provider's /userinfo whether the new token is valid, and read every line the
program printed for token values.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from offload_spawner.identity import job_token_refresher
from testbed.oidc import OidcProvider

PROGRAM = Path(job_token_refresher.__file__)
USERS = {"alice": {"password": "pw", "groups": ["cms"]}}
TTL = 4  # seconds an access token lives: with refresh_at 0.5 a renewal every 2 s
JOB_CLIENT = "jobs"  # a public client (no secret) the admin registered for jobs
#: How long a test waits for the program to do something before it gives up (not a measured figure).
PATIENCE = 60.0


@pytest.fixture(scope="module")
def idp():
    with OidcProvider(USERS, access_token_ttl=TTL, extra_clients=[{"client_id": JOB_CLIENT}]) as provider:
        yield provider


class Job:
    """The program started in a temporary 'job': delivered files, a writable directory, its output."""

    def __init__(self, tmp_path: Path, tokens: dict, token_url: str, client_id: str, **config) -> None:
        delivered = tmp_path / "delivered"
        delivered.mkdir()
        self.fresh = tmp_path / "fresh"
        self.fresh.mkdir()
        self.secret_values = {tokens["access_token"], tokens["refresh_token"]}
        for key in ("access_token", "refresh_token"):
            (delivered / key).write_text(tokens[key])
            (delivered / key).chmod(0o444)  # as a Secret volume delivers them
        self.paths = [str(delivered / "access_token"), str(delivered / "refresh_token"), str(self.fresh)]
        self.config = {"token_url": token_url, "client_id": client_id, "refresh_at": 0.5, **config}
        if config.get("client_secret"):
            self.secret_values.add(config["client_secret"])
        self.config_path = tmp_path / "refresher.json"
        self.config_path.write_text(json.dumps(self.config))
        self.output = tmp_path / "output.txt"
        self.proc: subprocess.Popen | None = None

    def start(self, *command: str) -> Job:
        argv = [sys.executable, "-I", "-S", str(PROGRAM), str(self.config_path), *self.paths]
        if command:
            argv += ["--", *command]
        with self.output.open("wb") as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env={"PATH": os.environ["PATH"]})
        return self

    def stop(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=PATIENCE)

    def token(self) -> str | None:
        path = self.fresh / "access_token"
        return path.read_text().strip() if path.exists() else None

    def wait_for_tokens(self, count: int) -> list[str]:
        """The distinct tokens the file held, once it held ``count`` of them."""
        seen: list[str] = []
        deadline = time.monotonic() + PATIENCE
        while time.monotonic() < deadline:
            token = self.token()
            if token and (not seen or token != seen[-1]):
                seen.append(token)
                self.secret_values.add(token)
                if len(seen) >= count:
                    return seen
            assert self.proc is None or self.proc.poll() is None, self.text()
            time.sleep(0.05)
        raise AssertionError(f"the token file held {len(seen)} tokens, not {count}: {self.text()}")

    def wait_exit(self) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout=PATIENCE)

    def text(self) -> str:
        return self.output.read_text(errors="replace")

    def assert_no_secret_printed(self) -> None:
        text = self.text()
        for value in self.secret_values:
            assert value not in text


def userinfo(idp: OidcProvider, token: str) -> requests.Response:
    return requests.get(f"{idp.issuer}/userinfo", headers={"Authorization": f"Bearer {token}"}, timeout=10)


def exp_of(token: str) -> float:
    return job_token_refresher.expiry(token, 0.0)[0] or 0.0


def new_job(tmp_path: Path, *args, **kwargs) -> Job:
    path = tmp_path / f"job{len(list(tmp_path.iterdir()))}"
    path.mkdir()
    return Job(path, *args, **kwargs)


@pytest.fixture
def jobs():
    started: list[Job] = []
    yield started
    for j in started:
        if j.proc is not None and j.proc.poll() is None:
            j.proc.kill()
            j.proc.wait()


def test_the_token_file_is_renewed_with_new_valid_tokens_and_none_is_printed(idp, tmp_path, jobs):
    tokens = idp.login_tokens("alice", "pw", client_id=JOB_CLIENT)
    refreshes_before = idp.refresh_count("alice")
    job = new_job(tmp_path, tokens, f"{idp.issuer}/token", JOB_CLIENT)
    jobs.append(job.start())

    seen = job.wait_for_tokens(3)  # the delivered token, then two renewals
    assert seen[0] == tokens["access_token"]
    assert len(set(seen)) == 3
    assert exp_of(seen[0]) < exp_of(seen[1]) < exp_of(seen[2])
    for token in seen[1:]:
        r = userinfo(idp, token)
        assert r.status_code == 200, r.text
        assert r.json()["sub"] == "alice"
    assert idp.refresh_count("alice") >= refreshes_before + 2  # the provider counted the grants
    assert (job.fresh / "access_token").stat().st_mode & 0o777 == 0o600
    assert not [p for p in job.fresh.iterdir() if p.name.startswith(".")]  # no temporary file left

    assert job.stop() == 0
    text = job.text()
    assert "renewed the access token" in text
    job.assert_no_secret_printed()


def test_a_confidential_client_whose_secret_the_admin_sends(idp, tmp_path, jobs):
    tokens = idp.login_tokens("alice", "pw")  # the hub's own client
    job = new_job(tmp_path, tokens, f"{idp.issuer}/token", idp.client_id, client_secret=idp.client_secret)
    jobs.append(job.start())
    seen = job.wait_for_tokens(2)
    assert userinfo(idp, seen[-1]).status_code == 200
    assert job.stop() == 0
    job.assert_no_secret_printed()


def test_a_refused_refresh_stops_the_refresher_with_a_clear_message(idp, tmp_path, jobs):
    tokens = idp.login_tokens("alice", "pw", client_id=JOB_CLIENT)
    job = new_job(tmp_path, tokens, f"{idp.issuer}/token", JOB_CLIENT)
    jobs.append(job.start())
    seen = job.wait_for_tokens(2)
    idp.revoke("alice")
    try:
        assert job.wait_exit() == job_token_refresher.REFUSED_EXIT
    finally:
        idp.restore("alice")
    text = job.text()
    assert "refused to renew the access token (invalid_grant); no more refreshes" in text
    assert "start it again after logging in to the hub again" in text
    assert job.token() == seen[-1]  # the last good token stays in place
    job.assert_no_secret_printed()


def test_a_refresh_token_of_another_client_is_refused(idp, tmp_path, jobs):
    """Providers bind a refresh token to the client it was issued to: the hub's
    refresh token does not work for a separate job client (README, Limitations)."""
    hub_tokens = idp.login_tokens("alice", "pw")
    job = new_job(tmp_path, hub_tokens, f"{idp.issuer}/token", JOB_CLIENT)
    jobs.append(job.start())
    assert job.wait_exit() == job_token_refresher.REFUSED_EXIT
    assert "(invalid_grant)" in job.text()
    job.assert_no_secret_printed()


def test_a_rotated_refresh_token_is_kept(tmp_path, jobs):
    # oidc-provider with rotation: a used refresh token is consumed (reusing it fails), so three
    # renewals in a row prove that each used the refresh token of the answer before.
    with OidcProvider(
        USERS, access_token_ttl=TTL, rotate_refresh_token=True, extra_clients=[{"client_id": JOB_CLIENT}]
    ) as rotating:
        tokens = rotating.login_tokens("alice", "pw", client_id=JOB_CLIENT)
        job = new_job(tmp_path, tokens, f"{rotating.issuer}/token", JOB_CLIENT)
        jobs.append(job.start())
        job.wait_for_tokens(4)
        kept = (job.fresh / "refresh_token").read_text().strip()
        assert kept != tokens["refresh_token"]
        job.secret_values.add(kept)
        assert job.stop() == 0
        assert "refused" not in job.text()
        job.assert_no_secret_printed()


def test_the_command_runs_beside_the_refresher_and_sees_the_file_change(idp, tmp_path, jobs):
    tokens = idp.login_tokens("alice", "pw", client_id=JOB_CLIENT)
    job = new_job(tmp_path, tokens, f"{idp.issuer}/token", JOB_CLIENT)
    # The server's command: waits until the file holds another token than the delivered one, exits 7.
    waiter = (
        "import sys, time\n"
        f"path, first = {str(job.fresh / 'access_token')!r}, open(sys.argv[1]).read().strip()\n"
        f"deadline = time.monotonic() + {PATIENCE}\n"
        "while time.monotonic() < deadline:\n"
        "    try:\n"
        "        if open(path).read().strip() not in ('', first): sys.exit(7)\n"
        "    except FileNotFoundError:\n"
        "        pass\n"
        "    time.sleep(0.05)\n"
        "sys.exit(9)\n"
    )
    jobs.append(job.start(sys.executable, "-I", "-c", waiter, job.paths[0]))
    assert job.wait_exit() == 7  # the command's own status
    job.assert_no_secret_printed()


def test_a_signal_reaches_the_command(idp, tmp_path, jobs):
    tokens = idp.login_tokens("alice", "pw", client_id=JOB_CLIENT)
    job = new_job(tmp_path, tokens, f"{idp.issuer}/token", JOB_CLIENT)
    jobs.append(job.start(sys.executable, "-I", "-c", "import time; time.sleep(600)"))
    job.wait_for_tokens(2)
    assert job.stop() == 128 + signal.SIGTERM  # the command was terminated by the forwarded SIGTERM


def test_an_unreachable_provider_is_retried_without_printing_tokens(tmp_path, jobs):
    # An opaque (non-JWT) token of unknown lifetime is renewed at once; the port is closed.
    tokens = {"access_token": "opaque-access-token-value", "refresh_token": "opaque-refresh-token-value"}
    job = new_job(tmp_path, tokens, "http://127.0.0.1:9/token", JOB_CLIENT)
    jobs.append(job.start())
    deadline = time.monotonic() + PATIENCE
    while "trying again" not in job.text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "renewing the access token failed (cannot reach the token endpoint" in job.text()
    assert job.proc.poll() is None  # still trying
    assert job.stop() == 0
    assert job.token() == tokens["access_token"]
    job.assert_no_secret_printed()


def test_an_unusable_configuration_is_refused_clearly(tmp_path):
    config = tmp_path / "refresher.json"
    config.write_text(json.dumps({"token_url": "file:///etc/passwd", "client_id": "x"}))
    (tmp_path / "a").write_text("access")
    (tmp_path / "b").write_text("refresh")
    (tmp_path / "c").mkdir()
    r = subprocess.run(
        [sys.executable, "-I", "-S", str(PROGRAM), str(config), *(str(tmp_path / n) for n in "abc")],
        capture_output=True,
        text=True,
        timeout=PATIENCE,
    )
    assert r.returncode == job_token_refresher.CONFIG_EXIT
    assert "token_url must be an http(s) URL" in r.stderr
    assert "Traceback" not in r.stderr
    assert not list((tmp_path / "c").iterdir())


def test_without_delivered_tokens_the_command_still_runs(tmp_path):
    config = tmp_path / "refresher.json"
    config.write_text(json.dumps({"token_url": "http://127.0.0.1:9/token", "client_id": "x"}))
    r = subprocess.run(
        [
            sys.executable,
            "-I",
            "-S",
            str(PROGRAM),
            str(config),
            str(tmp_path / "none"),
            str(tmp_path / "none2"),
            str(tmp_path),
            "--",
            sys.executable,
            "-c",
            "raise SystemExit(5)",
        ],
        capture_output=True,
        text=True,
        timeout=PATIENCE,
    )
    assert r.returncode == 5
    assert "no access token was delivered to this job" in r.stderr


@pytest.mark.parametrize(
    ("exp", "start", "now", "expected"),
    [(None, 0.0, 50.0, 0.0), (100.0, 0.0, 10.0, 65.0), (100.0, 0.0, 90.0, 0.0), (100.0, 100.0, 100.0, 0.0)],
)
def test_refresh_delay(exp, start, now, expected):
    assert job_token_refresher.refresh_delay(exp, start, 0.75, now) == expected


def test_expiry_from_a_jwt_or_from_expires_in():
    from test_tokens import jwt

    assert job_token_refresher.expiry(jwt({"exp": 200, "iat": 100}), 150.0) == (200.0, 100.0)
    assert job_token_refresher.expiry("opaque", 10.0, 60) == (70.0, 10.0)
    assert job_token_refresher.expiry("opaque", 10.0) == (None, 10.0)


def test_an_unwritable_directory_is_said_and_the_command_still_runs(tmp_path):
    config = tmp_path / "refresher.json"
    config.write_text(json.dumps({"token_url": "http://127.0.0.1:9/token", "client_id": "x"}))
    (tmp_path / "a").write_text("access-token-value")
    (tmp_path / "r").write_text("refresh-token-value")
    r = subprocess.run(
        [
            sys.executable,
            "-I",
            "-S",
            str(PROGRAM),
            str(config),
            str(tmp_path / "a"),
            str(tmp_path / "r"),
            str(tmp_path / "missing-dir"),
            "--",
            sys.executable,
            "-c",
            "raise SystemExit(4)",
        ],
        capture_output=True,
        text=True,
        timeout=PATIENCE,
    )
    assert r.returncode == 4
    assert "cannot write into" in r.stderr and "the access token will not be renewed" in r.stderr
    assert "token-value" not in r.stderr
