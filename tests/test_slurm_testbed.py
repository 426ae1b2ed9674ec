"""The test bed's SLURM cluster and the singularity stand-in, on their own.

SLURM here is the real one (Debian slurm-wlm): these tests show that it
refuses what a real cluster of this shape refuses, runs what the interLink
SLURM plugin's job script runs (through testbed/singularity), and that stop
leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from pathlib import Path

import pytest

from testbed.procs import pid_alive
from testbed.slurm import SlurmCluster, slurm_missing

SINGULARITY = Path(__file__).resolve().parents[1] / "testbed" / "singularity"


@pytest.fixture(scope="module")
def slurm():
    why = slurm_missing()
    if why:
        pytest.skip(why)
    cluster = SlurmCluster().start()
    yield cluster
    cluster.stop()


def _wait_job(slurm: SlurmCluster, jid: str) -> str:
    for _ in range(120):
        state = dict(slurm.jobs()).get(jid, "")
        if state in ("COMPLETED", "FAILED", "CANCELLED"):
            return state
        time.sleep(0.5)
    raise AssertionError(f"job {jid} did not finish: {slurm.jobs()}")


def test_sbatch_refuses_what_the_cluster_has_not(slurm):
    r = slurm.run("sbatch", "-p", "no_such_partition", "--wrap", "true", check=False)
    assert r.returncode != 0
    assert "sbatch: error: invalid partition specified: no_such_partition" in r.stderr
    r = slurm.run("sbatch", "--gres=gpu:a100:3", "--wrap", "true", check=False)
    assert r.returncode != 0 and "Requested node configuration is not available" in r.stderr, r.stderr
    # What the catalog's SLURM target asks for is accepted.
    jid = slurm.run(
        "sbatch",
        "--parsable",
        "-p",
        "boost_usr_prod",
        "--account",
        "icsc_ai",
        "--qos",
        "normal",
        "--time",
        "00:05:00",
        "--gres=gpu:a100:2",
        "--wrap",
        "true",
    ).stdout.strip()
    assert _wait_job(slurm, jid) == "COMPLETED"


def test_a_job_script_runs_the_container_command_through_the_stand_in(slurm, tmp_path):
    envfile = tmp_path / "c_envfile.properties"
    # As the SLURM plugin's createEnvFile writes it: shell-quoted values.
    envfile.write_text("GREETING='hello world'\nQUOTED='it'\"'\"'s'\nTOKEN_FILE=/var/run/secrets/t/token\n")
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "token").write_text("s3cret")
    out = tmp_path / "out.txt"
    script = tmp_path / "job.sh"
    script.write_text(
        "#!/bin/bash\n"
        f"{SINGULARITY} exec --nv --no-eval --containall --env-file {envfile} "
        f"--bind {secrets}:/var/run/secrets/t:ro docker://quay.io/jupyter/base-notebook:latest "
        f"/bin/sh -c 'echo \"$GREETING|$QUOTED|$(cat $TOKEN_FILE)|${{SLURM_CONF:-none}}\" > {out}'\n"
    )
    log = tmp_path / "job.out"
    jid = slurm.run("sbatch", "--parsable", "-D", str(tmp_path), "-o", str(log), str(script)).stdout.strip()
    assert _wait_job(slurm, jid) == "COMPLETED", log.read_text() if log.exists() else "no job output"
    # Only the env file's variables reach the command (--containall), bind paths point at the host.
    assert out.read_text().strip() == "hello world|it's|s3cret|none"


def test_the_stand_in_refuses_an_image_entrypoint_and_skips_host_changing_commands(tmp_path):
    r = subprocess.run(
        [str(SINGULARITY), "run", "--containall", "docker://busybox"],
        check=False,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert r.returncode == 127 and "entrypoint cannot run without the image" in r.stderr
    r = subprocess.run(
        [str(SINGULARITY), "exec", "docker://k8s-network-tools", "iptables", "-A", "OUTPUT"],
        check=False,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert r.returncode == 0 and "not running 'iptables' on the host" in r.stderr


def test_stop_cancels_jobs_and_leaves_no_daemon():
    why = slurm_missing()
    if why:
        pytest.skip(why)
    cluster = SlurmCluster().start()
    pids = [p.pid for p in cluster.processes]
    jid = cluster.run("sbatch", "--parsable", "--wrap", "sleep 300").stdout.strip()
    for _ in range(60):
        if dict(cluster.jobs()).get(jid) == "RUNNING":
            break
        time.sleep(0.5)
    workdir = cluster.workdir
    cluster.stop()
    assert not workdir.exists()
    assert not any(pid_alive(pid) for pid in pids if pid)
    r = subprocess.run(["pgrep", "-f", "sleep 300"], check=False, capture_output=True, text=True)
    # slurmstepd's job is gone with the cluster (scancel before the daemons stop).
    for pid in r.stdout.split():
        cmdline = Path(f"/proc/{pid}/environ")
        with contextlib.suppress(OSError):
            assert str(workdir) not in cmdline.read_bytes().decode(errors="replace")
