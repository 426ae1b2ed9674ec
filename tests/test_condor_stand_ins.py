"""The test bed's HTCondor stand-ins (testbed/condor) on their own: what they answer
to the command lines the interLink HTCondor plugin runs (interlink-htcondor-plugin/
handles.py: ``condor_submit -pool C -remote S FILE -spool``, ``condor_q ID --json``,
``condor_history ID --json``, ``condor_rm ID``), and the states they report with
HTCondor's JobStatus codes. The e2e module tests/e2e/test_interlink_htcondor_e2e.py
runs them under the real plugin."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CONDOR = REPO / "testbed" / "condor"
SINGULARITY = REPO / "testbed" / "singularity"
IDLE, RUNNING, REMOVED, COMPLETED, HELD = 1, 2, 3, 4, 5

SUBMIT = """
Executable = {executable}

Log        = log/mm_mul.$(Cluster).$(Process).log
Output     = out/mm_mul.out.$(Cluster).$(Process)
Error      = err/mm_mul.err.$(Cluster).$(Process)

transfer_input_files = {inputs}
should_transfer_files = YES
RequestCpus = 2
RequestMemory = 8192

when_to_transfer_output = ON_EXIT_OR_EVICT
+MaxWallTimeMins = 60

+WMAgent_AgentName = "whatever"

Queue 1
"""


class Pool:
    """A submit directory laid out as the plugin's README says, and a condor config."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.iwd = root / "submit"
        for sub in ("log", "out", "err", ".knoc"):
            (self.iwd / sub).mkdir(parents=True)
        self.config = root / "condor_config"
        self.set_idle(0)

    def set_idle(self, seconds: int) -> None:
        self.config.write_text(
            f"SPOOL = {self.root / 'spool'}\n"
            f"STAND_IN_JOB_PATH = {SINGULARITY.parent}:/usr/bin:/bin\n"
            f"STAND_IN_IDLE_SECONDS = {seconds}\n"
        )

    def run(self, tool: str, *args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "CONDOR_CONFIG": str(self.config)}
        return subprocess.run(
            [str(CONDOR / tool), *args], cwd=self.iwd, env=env, capture_output=True, text=True, timeout=60
        )

    def job(self, script: str, inputs: str = "", name: str = "job") -> Path:
        executable = self.iwd / ".knoc" / f"{name}.sh"
        executable.write_text(script)
        executable.chmod(0o777)
        submit = self.iwd / ".knoc" / f"{name}.jdl"
        submit.write_text(SUBMIT.format(executable=f"./.knoc//{name}.sh", inputs=inputs))
        return submit

    def submit(self, submit: Path, *extra: str) -> str:
        r = self.run(
            "condor_submit",
            "-pool",
            "collector.example",
            "-remote",
            "schedd.example",
            f"./.knoc//{submit.name}",
            *extra,
        )
        assert r.returncode == 0, r.stderr
        # handles.py, htcondor_batch_submit: the id is the last word up to its dot.
        return r.stdout.split(" ")[-1].split(".")[0]

    def ad(self, cluster: str) -> dict | None:
        r = self.run("condor_q", cluster, "--json")
        assert r.returncode == 0, r.stderr
        if not r.stdout.strip():
            r = self.run("condor_history", cluster, "--json")
        return json.loads(r.stdout)[0] if r.stdout.strip() else None

    def wait(self, cluster: str, status: int) -> dict:
        for _ in range(200):
            ad = self.ad(cluster)
            if ad and ad["JobStatus"] == status:
                return ad
            time.sleep(0.1)
        raise AssertionError(f"job {cluster} never reached JobStatus {status}: {self.ad(cluster)}")


@pytest.fixture
def pool(tmp_path):
    return Pool(tmp_path)


def test_a_spooled_job_runs_and_stays_in_the_queue_completed(pool):
    submit = pool.job("#!/bin/bash\necho out-line\necho err-line >&2\nexit 3\n")
    cluster = pool.submit(submit, "-spool")
    assert cluster == "1"
    ad = pool.wait(cluster, COMPLETED)
    assert ad["ExitCode"] == 3 and ad["CompletionDate"] >= ad["JobStartDate"] > 0
    assert (ad["RequestCpus"], ad["RequestMemory"], ad["WMAgent_AgentName"]) == (2, 8192, "whatever")
    # -spool: the job stays in the queue (condor_q answers), as HTCondor leaves spooled jobs.
    assert json.loads(pool.run("condor_q", cluster, "-json").stdout)[0]["JobStatus"] == COMPLETED
    assert (pool.iwd / "out" / f"mm_mul.out.{cluster}.0").read_text() == "out-line\n"
    assert (pool.iwd / "err" / f"mm_mul.err.{cluster}.0").read_text() == "err-line\n"
    events = (pool.iwd / "log" / f"mm_mul.{cluster}.0.log").read_text()
    assert [line[:3] for line in events.splitlines() if line[:3].isdigit()] == ["000", "001", "005"]


def test_without_spool_a_finished_job_leaves_the_queue_for_the_history(pool):
    cluster = pool.submit(pool.job("#!/bin/bash\ntrue\n"))
    for _ in range(200):
        if not pool.run("condor_q", cluster, "-json").stdout.strip():
            break
        time.sleep(0.1)
    history = json.loads(pool.run("condor_history", cluster, "-json").stdout)
    assert history[0]["JobStatus"] == COMPLETED and history[0]["ExitCode"] == 0


def test_condor_rm_removes_a_running_job_and_its_processes(pool):
    pid_file = pool.root / "job.pid"
    cluster = pool.submit(pool.job(f"#!/bin/bash\necho $$ > {pid_file}\nexec sleep 300\n"), "-spool")
    pool.wait(cluster, RUNNING)
    for _ in range(100):
        if pid_file.exists() and pid_file.read_text().strip():
            break
        time.sleep(0.1)
    pid = int(pid_file.read_text())
    r = pool.run("condor_rm", cluster)
    # handles.py's delete_pod takes the answer as success if it says "All" or "removed".
    assert r.returncode == 0 and r.stdout.strip() == f"All jobs in cluster {cluster} have been marked for removal"
    ad = pool.wait(cluster, REMOVED)
    assert not pool.run("condor_q", cluster, "-json").stdout.strip()
    assert ad["JobStatus"] == REMOVED
    for _ in range(100):
        if not Path(f"/proc/{pid}").exists():
            break
        time.sleep(0.1)
    assert not Path(f"/proc/{pid}").exists(), "the job's process outlived condor_rm"


def test_a_job_stays_idle_until_matchmaking_lets_it_go_and_condor_rm_removes_an_idle_job(pool):
    pool.set_idle(3600)
    first = pool.submit(pool.job("#!/bin/bash\ntrue\n", name="first"), "-spool")
    second = pool.submit(pool.job("#!/bin/bash\ntrue\n", name="second"), "-spool")
    assert pool.ad(first)["JobStatus"] == IDLE and "JobStartDate" not in pool.ad(first)
    assert pool.run("condor_rm", second).returncode == 0
    assert json.loads(pool.run("condor_history", second, "-json").stdout)[0]["JobStatus"] == REMOVED
    assert pool.ad(first)["JobStatus"] == IDLE
    pool.set_idle(0)
    assert pool.wait(first, COMPLETED)["ExitCode"] == 0


def test_condor_hold_evicts_a_running_job_and_condor_rm_removes_the_held_job(pool):
    pid_file = pool.root / "job.pid"
    cluster = pool.submit(pool.job(f"#!/bin/bash\necho $$ > {pid_file}\nexec sleep 300\n"), "-spool")
    pool.wait(cluster, RUNNING)
    r = pool.run("condor_hold", cluster)
    assert r.returncode == 0 and r.stdout.strip() == f"All jobs in cluster {cluster} have been held"
    ad = pool.wait(cluster, HELD)
    assert ad["HoldReason"].startswith("via condor_hold (by user "), ad
    pid = int(pid_file.read_text())
    for _ in range(100):
        if not Path(f"/proc/{pid}").exists():
            break
        time.sleep(0.1)
    assert not Path(f"/proc/{pid}").exists(), "the held job's process was not evicted"
    assert pool.ad(cluster)["JobStatus"] == HELD  # it stays held in the queue
    assert pool.run("condor_rm", cluster).returncode == 0
    assert pool.wait(cluster, REMOVED)
    assert pool.run("condor_hold", cluster).returncode == 1  # gone: nothing to hold


def test_an_executable_that_cannot_run_puts_the_job_on_hold(pool):
    submit = pool.job("#!/bin/bash\ntrue\n")
    (pool.iwd / ".knoc" / "job.sh").chmod(0o644)
    ad = pool.wait(pool.submit(submit, "-spool"), HELD)
    assert "Failed to execute" in ad["HoldReason"], ad


def test_input_files_are_transferred_and_the_singularity_line_runs(pool):
    """The executable handles.py writes: ``singularity exec --env ... --bind ./f:/path IMAGE CMD``,
    run from a scratch directory that holds the transferred input files."""
    secret = pool.root / "secrets" / "token"
    secret.parent.mkdir()
    secret.write_text("s3cret\n")
    script = (
        '#!/bin/bash\n\nsingularity exec --env GREETING=hello --env TOKEN_FILE=/run/t/token "--bind" '
        "./token:/run/t/token, docker://busybox /bin/sh -c 'echo $GREETING; cat $TOKEN_FILE; pwd'\n"
    )
    cluster = pool.submit(pool.job(script, inputs=f"{secret},"), "-spool")
    pool.wait(cluster, COMPLETED)
    out = (pool.iwd / "out" / f"mm_mul.out.{cluster}.0").read_text().splitlines()
    assert out[:2] == ["hello", "s3cret"], out
    assert out[2] != str(pool.iwd) and out[2].endswith(f"dir_{cluster}"), out


@pytest.mark.parametrize(
    "args, message",
    [
        (["-pool", "-remote", "x.jdl"], "-pool requires another argument"),
        (["-frobnicate", "x.jdl"], "unknown option -frobnicate"),
        ([], "Usage: condor_submit"),
    ],
)
def test_a_bad_submit_line_is_refused_and_queues_nothing(pool, args, message):
    r = pool.run("condor_submit", *args)
    assert r.returncode == 1 and message in r.stderr, r.stderr
    assert not list((pool.root / "spool" / "jobs").glob("*.json"))


def test_unknown_jobs(pool):
    assert pool.run("condor_q", "42", "--json").stdout == ""  # nothing at all, as condor_q -json prints
    assert pool.run("condor_history", "42", "--json").stdout == ""
    r = pool.run("condor_rm", "42")
    assert r.returncode == 1 and r.stdout.strip() == "Couldn't find/remove all jobs in cluster 42"
    r = pool.run("condor_q", "not-a-job", "-json")
    assert r.returncode == 1 and "is not a cluster id" in r.stderr


def test_without_a_condor_config_the_tools_say_what_they_need(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "CONDOR_CONFIG"}
    r = subprocess.run([str(CONDOR / "condor_q"), "1", "-json"], env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and "CONDOR_CONFIG" in r.stderr and "SPOOL" in r.stderr


# --- where testbed/htcondor.py finds the plugin ------------------------------------------------


def test_the_plugin_commit_comes_from_the_upstream_readme_table(tmp_path):
    from testbed.htcondor import PLUGIN_COMMIT, plugin_commit

    folder = tmp_path / "upstream" / "interlink-htcondor-plugin"
    folder.mkdir(parents=True)
    assert plugin_commit(folder) == PLUGIN_COMMIT  # no table: the pinned commit
    (folder.parent / "README.md").write_text(
        "| folder | repository | commit | what it is |\n|---|---|---|---|\n"
        "| interlink-htcondor-plugin/ | github.com/interlink-hq/interlink-htcondor-plugin | 0a1b2c3 | HTCondor |\n"
    )
    assert plugin_commit(folder) == "0a1b2c3"


def test_without_the_plugin_sources_the_reason_says_how_to_get_them(tmp_path, monkeypatch):
    from testbed.htcondor import htcondor_plugin_dir, htcondor_plugin_missing

    monkeypatch.setenv("OFFLOAD_UPSTREAM_DIR", str(tmp_path))
    assert htcondor_plugin_dir() is None
    why = htcondor_plugin_missing()
    assert why and "OFFLOAD_UPSTREAM_DIR" in why and "interlink-htcondor-plugin" in why
