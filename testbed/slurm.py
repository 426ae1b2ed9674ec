"""A real SLURM cluster on this machine: munged + slurmctld + slurmd, one node.

Why: the interLink SLURM plugin turns a pod into an ``sbatch`` script and
reads the job back with ``squeue``; what ``sbatch`` accepts or refuses (an
unknown partition, a GRES the node does not have), how a job queues while
another one holds the cores, and what ``scancel`` leaves behind are decided by
SLURM itself. Debian's ``slurm-wlm`` and ``munge`` packages (installed by
``make setup``) run it here as root, without systemd and without touching
``/etc``: every file (munge key and socket, ``slurm.conf``, ``gres.conf``,
state, spool, logs) lives in one temporary directory, and the daemons listen
on free loopback ports, so two test beds on one machine do not meet.

Shape: one node named after this host with its real core count, partitions
shaped like the demo catalog's SLURM target (``boost_usr_prod``, plus
``lrd_all_serial``), GPU GRES that only counts (``gpu:a100:2``; no GPU is there or bound).
Accounting is off, so ``--account`` and ``--qos`` are not checked.
Finished jobs stay visible to ``squeue --states=all`` for a day
(``MinJobAge``), which is how :meth:`SlurmCluster.job_counts` counts them.

Client commands (``sbatch``, ``squeue``, ...) find this cluster through
``SLURM_CONF``; :attr:`SlurmCluster.env` is the environment to run them with.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Self

from .controlplane import free_ports, log
from .procs import ManagedProcess

#: Partitions the demo catalog's SLURM target names (demo/jupyterhub_config.py).
DEFAULT_PARTITIONS: tuple[str, ...] = ("boost_usr_prod", "lrd_all_serial")
GPU_TYPE = "a100"
GPU_COUNT = 2
#: SLURM job states that are over (squeue's long names).
FINISHED_STATES = frozenset(
    {
        "COMPLETED",
        "CANCELLED",
        "FAILED",
        "TIMEOUT",
        "NODE_FAIL",
        "PREEMPTED",
        "BOOT_FAIL",
        "DEADLINE",
        "OUT_OF_MEMORY",
        "REVOKED",
        "SPECIAL_EXIT",
    }
)
SLURM_BIN = Path("/usr/bin")


def slurm_missing() -> str | None:
    """Why SLURM cannot run here, or None when it can."""
    for binary in ("slurmctld", "slurmd", "munged"):
        if not (shutil.which(binary) or Path("/usr/sbin", binary).exists()):
            return f"{binary} not found: install Debian's slurm-wlm and munge (make setup does)"
    if os.geteuid() != 0:
        return "the SLURM test bed runs slurmd as root (it starts jobs as their users)"
    return None


def _sbin(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


class SlurmError(RuntimeError):
    pass


class SlurmCluster:
    """Start with :meth:`start` (or ``with SlurmCluster() as slurm:``), stop with :meth:`stop`."""

    def __init__(
        self,
        workdir: Path | str | None = None,
        *,
        partitions: tuple[str, ...] = DEFAULT_PARTITIONS,
        gpus: int = GPU_COUNT,  # at most 4
        keep: bool = False,
        echo: Callable[[str], None] = log,
    ) -> None:
        self._own_workdir = workdir is None
        self.workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="offload-slurm-"))
        self.partitions = partitions
        self.gpus = gpus
        self.keep = keep
        self.echo = echo
        self.node = socket.gethostname().split(".")[0]
        self.cpus = os.cpu_count() or 1
        self.memory_mb = 8192
        self.processes: list[ManagedProcess] = []

    # --- paths and environment -------------------------------------------------

    @property
    def conf(self) -> Path:
        return self.workdir / "etc" / "slurm.conf"

    @property
    def env(self) -> dict[str, str]:
        """Environment for SLURM client commands (and the plugin that runs them)."""
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def command(self, name: str) -> str:
        """Absolute path of a client command (``sbatch``, ``squeue``, ``scancel``, ``sinfo``)."""
        return str(SLURM_BIN / name)

    def run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a client command against this cluster (in its work directory, where
        ``sbatch`` writes the output of jobs that name no ``--output``)."""
        result = subprocess.run(
            [self.command(argv[0]), *argv[1:]],
            check=False,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            cwd=self.workdir,
        )
        if check and result.returncode != 0:
            raise SlurmError(f"{' '.join(argv)}: exit {result.returncode}: {result.stderr.strip()}")
        return result

    # --- lifecycle ---------------------------------------------------------------

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> SlurmCluster:
        t0 = time.monotonic()
        why = slurm_missing()
        if why:
            raise SlurmError(why)
        try:
            self._start()
        except BaseException:
            for proc in self.processes:
                self.echo(f"== {proc.name} (log {proc.log_path}):\n{proc.tail()}")
            self.stop()
            raise
        self.echo(
            f"slurm ready in {time.monotonic() - t0:.1f}s (node {self.node}, {self.cpus} CPUs, "
            f"partitions {', '.join(self.partitions)}, gres gpu:{GPU_TYPE}:{self.gpus})"
        )
        return self

    def stop(self) -> None:
        """Cancel every job, stop slurmd, slurmctld and munged, remove the work directory."""
        t0 = time.monotonic()
        if any(p.name == "slurmctld" and p.alive() for p in self.processes):
            try:
                ids = self.active_jobs()
                if ids:
                    self.run("scancel", *ids, check=False)
                    # scancel only asks: slurmd signals the job's steps a moment later,
                    # and stopping slurmd first would leave them running (seen on a
                    # loaded machine).
                    deadline = time.monotonic() + 20
                    while time.monotonic() < deadline and self.active_jobs():
                        time.sleep(0.3)
            except (OSError, subprocess.TimeoutExpired, SlurmError):
                pass  # a squeue that fails has nothing more to say: stop the daemons
        while self.processes:
            self.processes.pop().stop()
        self._kill_job_processes()
        if self._own_workdir and not self.keep:
            shutil.rmtree(self.workdir, ignore_errors=True)
        self.echo(f"slurm stopped in {time.monotonic() - t0:.1f}s")

    def _kill_job_processes(self) -> None:
        """Kill what is left of this cluster's jobs once its daemons are gone: the
        processes whose environment slurmd gave a job id and this cluster's work
        directory (SLURM_CONF and friends)."""
        marker = str(self.workdir).encode()
        for environ in Path("/proc").glob("[0-9]*/environ"):
            pid = int(environ.parent.name)
            if pid == os.getpid():
                continue
            try:
                env = environ.read_bytes()
            except OSError:
                continue
            if b"SLURM_JOB_ID=" in env and marker in env:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)

    def _spawn(self, name: str, argv: list[str]) -> ManagedProcess:
        proc = ManagedProcess(name, argv, self.workdir / "log" / f"{name}.log", env=self.env, cwd=self.workdir).start()
        self.processes.append(proc)
        return proc

    def _wait(self, what: str, check: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            for proc in self.processes:
                if not proc.alive():
                    raise SlurmError(f"{proc.name} exited while waiting for {what}:\n{proc.tail()}")
            if time.monotonic() > deadline:
                raise SlurmError(f"timed out after {timeout:.0f}s waiting for {what}")
            time.sleep(0.3)

    def _start(self) -> None:
        w = self.workdir
        for sub in ("etc", "log", "state", "spool", "munge", "run"):
            (w / sub).mkdir(parents=True, exist_ok=True)
        # munge refuses keys and directories that others can read or write.
        (w / "munge").chmod(0o700)
        key = w / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        socket_path = w / "munge" / "munge.socket"
        self._spawn(
            "munged",
            [
                _sbin("munged"),
                "--foreground",
                "--force",
                f"--socket={socket_path}",
                f"--key-file={key}",
                f"--pid-file={w / 'munge' / 'munged.pid'}",
                f"--seed-file={w / 'munge' / 'munged.seed'}",
                f"--log-file={w / 'log' / 'munged-own.log'}",
            ],
        )
        self._wait("the munge socket", socket_path.exists, 20)

        ctld_port, slurmd_port = free_ports(2)
        self._write_config(socket_path, ctld_port, slurmd_port)
        self._spawn("slurmctld", [_sbin("slurmctld"), "-D", "-i", "-f", str(self.conf)])
        self._wait("slurmctld", lambda: self.run("sinfo", "-h", check=False).returncode == 0, 30)
        self._spawn("slurmd", [_sbin("slurmd"), "-D", "-f", str(self.conf), "-N", self.node])
        self._wait(
            f"node {self.node} idle",
            lambda: self.run("sinfo", "-h", "-N", "-o", "%t", check=False).stdout.split()[:1] == ["idle"],
            60,
        )

    def _write_config(self, munge_socket: Path, ctld_port: int, slurmd_port: int) -> None:
        w = self.workdir
        lines = [
            "ClusterName=testbed",
            f"SlurmctldHost={self.node}(127.0.0.1)",
            f"SlurmctldPort={ctld_port}",
            f"SlurmdPort={slurmd_port}",
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=socket={munge_socket}",
            f"StateSaveLocation={w / 'state'}",
            f"SlurmdSpoolDir={w / 'spool'}",
            f"SlurmctldPidFile={w / 'run' / 'slurmctld.pid'}",
            f"SlurmdPidFile={w / 'run' / 'slurmd.pid'}",
            f"SlurmctldLogFile={w / 'log' / 'slurmctld-own.log'}",
            f"SlurmdLogFile={w / 'log' / 'slurmd-own.log'}",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            "SchedulerType=sched/backfill",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core_Memory",
            "ReturnToService=2",
            "MinJobAge=86400",
            "KillWait=5",
            "MpiDefault=none",
            "GresTypes=gpu",
            (
                f"NodeName={self.node} NodeAddr=127.0.0.1 CPUs={self.cpus} RealMemory={self.memory_mb} "
                f"Gres=gpu:{GPU_TYPE}:{self.gpus} State=UNKNOWN"
            ),
        ]
        for i, partition in enumerate(self.partitions):
            default = " Default=YES" if i == 0 else ""
            lines.append(f"PartitionName={partition} Nodes={self.node} State=UP MaxTime=INFINITE{default}")
        self.conf.write_text("\n".join(lines) + "\n")
        # GPU GRES that only counts: slurmd 22.05 drops a GPU without File= (and
        # Flags=CountOnly does not stop that), so each "GPU" names a harmless
        # character device; with TaskPlugin=task/none nothing is bound or hidden.
        devices = ",".join(["/dev/null", "/dev/zero", "/dev/full", "/dev/random"][: self.gpus])
        (w / "etc" / "gres.conf").write_text(f"NodeName={self.node} Name=gpu Type={GPU_TYPE} File={devices}\n")

    # --- what happened -------------------------------------------------------------

    def jobs(self) -> list[tuple[str, str]]:
        """(job id, state) of every job this cluster has seen (finished ones included)."""
        out = self.run("squeue", "-h", "-a", "--states=all", "-o", "%i|%T").stdout
        return [tuple(line.split("|", 1)) for line in out.splitlines() if "|" in line]  # type: ignore[misc]

    def active_jobs(self) -> list[str]:
        """Ids of jobs pending or running (what a bare ``squeue`` lists)."""
        return self.run("squeue", "-h", "-o", "%i").stdout.split()

    def job_counts(self) -> dict[str, int]:
        jobs = self.jobs()
        return {"submitted": len(jobs), "finished": sum(state in FINISHED_STATES for _, state in jobs)}

    def version(self) -> str:
        return subprocess.run([_sbin("slurmctld"), "-V"], check=False, capture_output=True, text=True).stdout.strip()

    def describe(self) -> dict[str, str]:
        return {"slurm.conf": str(self.conf), "export": f"SLURM_CONF={self.conf}", "work dir": str(self.workdir)}


__all__ = ["DEFAULT_PARTITIONS", "SlurmCluster", "SlurmError", "slurm_missing"]
