"""Stand-ins for HTCondor's ``condor_submit``, ``condor_q``, ``condor_history``, ``condor_rm``, ``condor_hold``.

STAND-IN. No HTCondor package (schedd, startd, shadow, starter) exists on the
machines the tests run on, so these four commands imitate what the real
interLink HTCondor plugin (``interlink-htcondor-plugin/handles.py``) runs and
parses, and run each job on this machine:

* ``condor_submit -pool HOST -remote SCHEDD FILE -spool`` (handles.py,
  ``htcondor_batch_submit``): reads the submit description the plugin wrote
  (``Executable``, ``Output``/``Error``/``Log``, ``transfer_input_files``,
  ``RequestCpus``/``RequestMemory``, ``$(Cluster)``/``$(Process)`` macros;
  relative paths against the current directory, HTCondor's default ``Iwd``),
  queues the job as Idle and prints what condor_submit prints,
  ``1 job(s) submitted to cluster N.``: the plugin takes the id from the last
  word (``split(" ")[-1].split(".")[0]``). A detached starter then copies the
  executable and the transferred input files into a scratch directory (as
  ``should_transfer_files = YES`` does), runs the executable there with a
  job environment of its own (not the submitter's) and writes its stdout and
  stderr to ``Output``/``Error``.
* ``condor_q ID -json`` / ``condor_history ID -json`` (handles.py,
  ``StatusHandler``: ``condor_q {jid} --json``, then ``condor_history`` when
  the queue answer is empty): a JSON array of job ClassAds with HTCondor's
  attribute names: ``JobStatus`` (1 Idle, 2 Running, 3 Removed, 4 Completed,
  5 Held), ``JobStartDate``, ``CompletionDate``, ``ExitCode``, ``HoldReason``...;
  nothing at all when no job matches, as the real tools print with ``-json``.
  ``-spool`` jobs stay in the queue as Completed (HTCondor's default
  ``leave_in_queue`` for spooled jobs, until their output is fetched);
  removed jobs leave it for the history.
* ``condor_rm ID`` (handles.py, ``delete_pod``, which checks the answer for
  "All" or "removed"): ``All jobs in cluster N have been marked for removal``;
  the job's process group gets SIGTERM (SIGKILL 10 s later) and the job goes
  to the history as Removed. An unknown cluster: ``Couldn't find/remove all
  jobs in cluster N``, exit 1. ``condor_rm -all`` removes every job.
* A job whose executable cannot be run goes on hold (``JobStatus`` 5) with a
  starter's ``HoldReason``, as HTCondor holds such jobs; ``condor_hold ID
  [-reason TEXT]`` (what an admin or a site policy does; the plugin never runs
  it) holds a job, evicting it if it runs: ``via condor_hold (by user U)``.

Not imitated: matchmaking (a job starts ``STAND_IN_IDLE_SECONDS`` after it
was queued, 0 by default; the value is read again while the job waits), slots and their resources (the
requests are recorded, not enforced), the output staying in the spool until
``condor_transfer_data`` (it is written to ``Output``/``Error`` directly),
authentication, and every option handles.py does not use.

Configuration: ``CONDOR_CONFIG`` names a file of ``NAME = value`` lines, as
HTCondor's own configuration (handles.py's ``--condor-config`` sets it):
``SPOOL`` (where the queue, the history and the scratch directories live),
``STAND_IN_JOB_PATH`` (the jobs' PATH) and ``STAND_IN_IDLE_SECONDS``. Every
call is appended to ``SPOOL/calls.log`` (one JSON array of argv per line).

Only the Python standard library is used: the commands run with any python3.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

IDLE, RUNNING, REMOVED, COMPLETED, HELD = 1, 2, 3, 4, 5
#: How long a removed job has between SIGTERM and SIGKILL.
KILL_GRACE_SECONDS = 10.0


class Usage(Exception):
    """A command line the real tool would refuse too."""


# --- configuration and the spool ---------------------------------------------------


def read_config() -> dict[str, str]:
    path = os.environ.get("CONDOR_CONFIG", "")
    if not path or not os.path.isfile(path):
        raise SystemExit(
            f"ERROR: CONDOR_CONFIG ({path or 'unset'}) does not name a configuration file "
            "(HTCondor stand-in of the test bed: it needs SPOOL = <dir>)"
        )
    config: dict[str, str] = {}
    for line in Path(path).read_text().splitlines():
        name, eq, value = line.partition("=")
        if eq and not line.lstrip().startswith("#"):
            config[name.strip().upper()] = value.strip()
    if not config.get("SPOOL"):
        raise SystemExit(f"ERROR: no SPOOL in {path}")
    return config


class Spool:
    """The queue (``jobs/N.json``), the history (``history/N.json``), scratch dirs (``execute/``)."""

    def __init__(self, config: dict[str, str]) -> None:
        self.config = config
        self.root = Path(config["SPOOL"])
        for sub in ("jobs", "history", "execute"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        with open(self.root / "lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def record_call(self, argv: list[str]) -> None:
        with open(self.root / "calls.log", "a") as log:
            log.write(json.dumps(argv) + "\n")

    def next_cluster(self) -> int:
        counter = self.root / "next_cluster"
        number = int(counter.read_text()) if counter.exists() else 1
        counter.write_text(str(number + 1))
        return number

    def queue_path(self, cluster: int) -> Path:
        return self.root / "jobs" / f"{cluster}.json"

    def history_path(self, cluster: int) -> Path:
        return self.root / "history" / f"{cluster}.json"

    def pid_path(self, cluster: int) -> Path:
        return self.root / "execute" / f"{cluster}.pid"

    def load(self, path: Path) -> dict[str, Any] | None:
        try:
            ad: dict[str, Any] = json.loads(path.read_text())
            return ad
        except (OSError, ValueError):
            return None

    def save(self, path: Path, ad: dict[str, Any]) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(ad, indent=1))
        tmp.replace(path)

    def queued(self, cluster: int) -> dict[str, Any] | None:
        return self.load(self.queue_path(cluster))

    def to_history(self, cluster: int, ad: dict[str, Any]) -> None:
        self.save(self.history_path(cluster), ad)
        self.queue_path(cluster).unlink(missing_ok=True)

    def clusters(self, where: str) -> list[int]:
        return sorted(int(p.stem) for p in (self.root / where).glob("*.json"))


def set_status(ad: dict[str, Any], status: int) -> None:
    ad["JobStatus"] = status
    ad["EnteredCurrentStatus"] = int(time.time())


def user_log(ad: dict[str, Any], code: int, text: str) -> None:
    """An event in the job's user log (``Log``), in HTCondor's event-log layout."""
    path = ad.get("UserLog")
    if not path:
        return
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    with contextlib.suppress(OSError), open(path, "a") as log:
        log.write(f"{code:03d} ({ad['ClusterId']:03d}.{ad['ProcId']:03d}.000) {stamp} {text}\n...\n")


# --- condor_submit -------------------------------------------------------------------


def parse_submit_file(text: str) -> dict[str, str]:
    """``name = value`` commands (names case-insensitive) up to ``Queue``; ``+Attr`` kept with its plus."""
    commands: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if re.match(r"(?i)^queue\b", line):
            break
        name, eq, value = line.partition("=")
        if not eq:
            raise Usage(f"ERROR: Parse error in submit file: {line!r}")
        name = name.strip()
        # Commands are case-insensitive; ``+Attr`` ClassAd attributes keep their case.
        commands[name if name.startswith("+") else name.lower()] = value.strip()
    return commands


def expand(value: str, cluster: int, process: int) -> str:
    for macro, number in (("Cluster", cluster), ("ClusterId", cluster), ("Process", process), ("ProcId", process)):
        value = re.sub(rf"\$\({macro}\)", str(number), value, flags=re.IGNORECASE)
    return value


def submit(spool: Spool, argv: list[str]) -> int:
    options, files = _options(argv, with_value={"-pool", "-remote", "-name"}, flags={"-spool", "-verbose"})
    if len(files) != 1:
        raise Usage("Usage: condor_submit [options] [- | <submit-file>] (the stand-in takes one submit file)")
    submit_file = Path(files[0])
    try:
        commands = parse_submit_file(submit_file.read_text())
    except OSError as e:
        print(f"ERROR: Failed to open command file ({e.strerror})", file=sys.stderr)
        return 1
    if "executable" not in commands:
        print("ERROR: No 'executable' parameter was provided", file=sys.stderr)
        return 1
    iwd = Path.cwd()
    with spool.locked():
        cluster = spool.next_cluster()

        def path(key: str) -> str:
            value = expand(commands.get(key, ""), cluster, 0)
            return str(iwd / value) if value else ""

        log_path = path("log")
        if log_path and not Path(log_path).parent.is_dir():
            print(f'ERROR: Invalid log file: "{log_path}" (No such file or directory)', file=sys.stderr)
            return 1
        now = int(time.time())
        inputs = [item.strip() for item in commands.get("transfer_input_files", "").split(",") if item.strip()]
        ad: dict[str, Any] = {
            "ClusterId": cluster,
            "ProcId": 0,
            "GlobalJobId": f"{socket.gethostname()}#{cluster}.0#{now}",
            "Owner": os.environ.get("USER", "condor"),
            "QDate": now,
            "Iwd": str(iwd),
            "Cmd": path("executable"),
            "Out": path("output"),
            "Err": path("error"),
            "UserLog": log_path,
            "TransferInput": ",".join(inputs),
            "ShouldTransferFiles": commands.get("should_transfer_files", ""),
            "RequestCpus": _number(commands.get("requestcpus") or commands.get("request_cpus") or "1"),
            "RequestMemory": _number(commands.get("requestmemory") or commands.get("request_memory") or "0"),
            "JobStartDate": None,
            "CompletionDate": 0,
            "LeaveJobInQueue": options.get("-spool") is not None,
            "SubmitHost": options.get("-remote") or socket.gethostname(),
        }
        for name, value in commands.items():
            if name.startswith("+"):
                ad[name[1:]] = value.strip('"')
        set_status(ad, IDLE)
        spool.save(spool.queue_path(cluster), ad)
        user_log(ad, 0, "Job submitted from host: <127.0.0.1>")
    starter_log = spool.root / "execute" / f"{cluster}.starter.log"
    with open(starter_log, "ab") as log:
        subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "starter", str(cluster)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    print("Submitting job(s).")
    print(f"1 job(s) submitted to cluster {cluster}.")
    return 0


def _number(value: str) -> int | str:
    return int(value) if value.isdigit() else value


# --- the starter (a detached child of condor_submit) -----------------------------------


def starter(spool: Spool, cluster: int) -> int:
    """Run the job: Idle -> Running -> Completed (or Held, or Removed by condor_rm)."""
    # Matchmaking stands in as a wait of STAND_IN_IDLE_SECONDS after the job was queued,
    # the configuration read again meanwhile (so a test can keep jobs Idle, then let them go).
    while True:
        ad = spool.queued(cluster)
        if ad is None or ad["JobStatus"] != IDLE:
            return 0  # removed while idle
        idle = float(read_config().get("STAND_IN_IDLE_SECONDS", "0") or 0)
        if time.time() >= ad["QDate"] + idle:
            break
        time.sleep(0.2)
    scratch = spool.root / "execute" / f"dir_{cluster}"
    with spool.locked():
        ad = spool.queued(cluster)
        if ad is None or ad["JobStatus"] != IDLE:
            return 0  # removed while idle
        executable = Path(ad["Cmd"])
        reason = ""
        if not os.access(executable, os.X_OK):
            reason = (
                f"Error from starter on slot1@{socket.gethostname()}: Failed to execute "
                f"'{executable}': (errno=2: 'No such file or directory')"
            )
        else:
            scratch.mkdir(parents=True, exist_ok=True)
            for item in [str(executable), *filter(None, ad["TransferInput"].split(","))]:
                source = Path(ad["Iwd"]) / item
                if source.is_dir():
                    shutil.copytree(source, scratch / source.name, dirs_exist_ok=True)
                elif source.exists():
                    shutil.copy2(source, scratch / source.name)
                else:
                    reason = f"Error from starter: Transfer input files failure: {item}: No such file or directory"
                    break
        if reason:
            ad["HoldReason"] = reason
            ad["HoldReasonCode"] = 6 if "Failed to execute" in reason else 13
            set_status(ad, HELD)
            spool.save(spool.queue_path(cluster), ad)
            user_log(ad, 12, f"Job was held.\n\t{reason}")
            return 0
        env = {
            "PATH": spool.config.get("STAND_IN_JOB_PATH") or "/usr/local/bin:/usr/bin:/bin",
            "HOME": str(scratch),
            "TMPDIR": str(scratch),
            "_CONDOR_SCRATCH_DIR": str(scratch),
            "_CONDOR_SLOT": "slot1",
            "LANG": os.environ.get("LANG", "C.UTF-8"),
        }
        out = open(ad["Out"] or os.devnull, "ab")  # noqa: SIM115 - kept open for the child
        err = open(ad["Err"] or os.devnull, "ab")  # noqa: SIM115
        job = subprocess.Popen(
            [str(scratch / executable.name)],
            cwd=scratch,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
        out.close()
        err.close()
        spool.pid_path(cluster).write_text(str(job.pid))
        ad["JobStartDate"] = int(time.time())
        ad["RemoteHost"] = f"slot1@{socket.gethostname()}"
        set_status(ad, RUNNING)
        spool.save(spool.queue_path(cluster), ad)
        user_log(ad, 1, f"Job executing on host: <127.0.0.1> ({ad['RemoteHost']})")
    exit_code = job.wait()
    with spool.locked():
        spool.pid_path(cluster).unlink(missing_ok=True)
        ad = spool.queued(cluster) or ad
        if ad["JobStatus"] == REMOVED:
            spool.to_history(cluster, ad)
            user_log(ad, 9, "Job was aborted.\n\tvia condor_rm")
            return 0
        if ad["JobStatus"] == HELD:  # condor_hold evicted it: it waits in the queue, held
            return 0
        ad["CompletionDate"] = int(time.time())
        if exit_code < 0:
            ad["ExitBySignal"], ad["ExitSignal"] = True, -exit_code
        else:
            ad["ExitBySignal"], ad["ExitCode"] = False, exit_code
        set_status(ad, COMPLETED)
        if ad.get("LeaveJobInQueue"):
            spool.save(spool.queue_path(cluster), ad)
        else:
            spool.to_history(cluster, ad)
        user_log(ad, 5, f"Job terminated.\n\t(1) Normal termination (return value {max(exit_code, 0)})")
    return 0


# --- condor_q / condor_history -----------------------------------------------------------


def query(spool: Spool, argv: list[str], where: str) -> int:
    options, ids = _options(argv, with_value={"-pool", "-name"}, flags={"-json", "-all", "-nobatch", "-long"})
    if options.get("-json") is None:
        raise Usage("the HTCondor stand-in answers -json queries only (what the interLink plugin asks)")
    wanted = {_cluster(i) for i in ids}
    ads = []
    for cluster in spool.clusters(where):
        if wanted and cluster not in wanted:
            continue
        ad = spool.load(spool.root / where / f"{cluster}.json")
        if ad is not None:
            ads.append({k: v for k, v in ad.items() if v is not None and k != "LeaveJobInQueue"})
    if ads:  # the real tools print nothing at all for no match with -json
        print("[\n" + ",\n".join(json.dumps(ad, indent=2) for ad in ads) + "\n]")
    return 0


# --- condor_rm -------------------------------------------------------------------------------


def remove(spool: Spool, argv: list[str]) -> int:
    options, ids = _options(argv, with_value={"-pool", "-name"}, flags={"-all", "-forcex"})
    if options.get("-all") is not None:
        clusters = spool.clusters("jobs")
    elif ids:
        clusters = [_cluster(i) for i in ids]
    else:
        raise Usage("Usage: condor_rm [options] [cluster | cluster.proc | -all]")
    code = 0
    for cluster in clusters:
        with spool.locked():
            ad = spool.queued(cluster)
            if ad is None:
                print(f"Couldn't find/remove all jobs in cluster {cluster}")
                code = 1
                continue
            pid = _pid(spool, cluster)
            set_status(ad, REMOVED)
            if pid is None:  # nothing runs: straight to the history
                spool.to_history(cluster, ad)
                user_log(ad, 9, "Job was aborted.\n\tvia condor_rm")
            else:
                spool.save(spool.queue_path(cluster), ad)
        if pid is not None:
            _terminate(pid)
        if options.get("-all") is None:
            print(f"All jobs in cluster {cluster} have been marked for removal")
    if options.get("-all") is not None:
        print("All jobs marked for removal.")
    return code


# --- condor_hold (not run by the plugin: what a site admin or a policy does) ------------


def hold(spool: Spool, argv: list[str]) -> int:
    """``condor_hold ID [-reason TEXT]``: the job is held (a running one evicted), with
    HTCondor's hold reason ``via condor_hold (by user U)`` unless a reason is given."""
    options, ids = _options(argv, with_value={"-pool", "-name", "-reason"}, flags=set())
    if not ids:
        raise Usage("Usage: condor_hold [options] cluster | cluster.proc")
    code = 0
    for cluster in (_cluster(i) for i in ids):
        with spool.locked():
            ad = spool.queued(cluster)
            if ad is None or ad["JobStatus"] not in (IDLE, RUNNING):
                print(f"Couldn't find/hold all jobs in cluster {cluster}")
                code = 1
                continue
            pid = _pid(spool, cluster)
            ad["HoldReason"] = options.get("-reason") or f"via condor_hold (by user {os.environ.get('USER', 'root')})"
            ad["HoldReasonCode"] = 1
            set_status(ad, HELD)
            spool.save(spool.queue_path(cluster), ad)
            user_log(ad, 12, f"Job was held.\n\t{ad['HoldReason']}")
        if pid is not None:
            _terminate(pid)
        print(f"All jobs in cluster {cluster} have been held")
    return code


def _pid(spool: Spool, cluster: int) -> int | None:
    try:
        return int(spool.pid_path(cluster).read_text())
    except (OSError, ValueError):
        return None


def _terminate(pid: int) -> None:
    """SIGTERM to the job's process group now, SIGKILL later if it is still there (in a child)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
    if os.fork() == 0:  # the grace period must not hold up condor_rm's answer
        os.setsid()
        # Let go of condor_rm's output: its caller reads that pipe to the end (handles.py, os.popen).
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        deadline = time.monotonic() + KILL_GRACE_SECONDS
        while time.monotonic() < deadline:
            try:
                os.killpg(pid, 0)
            except (ProcessLookupError, PermissionError):
                os._exit(0)
            time.sleep(0.2)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        os._exit(0)


# --- command lines -----------------------------------------------------------------------------


def _options(argv: list[str], with_value: set[str], flags: set[str]) -> tuple[dict[str, str | None], list[str]]:
    """HTCondor tools take ``-opt`` and ``--opt`` alike; unknown options are refused."""
    options: dict[str, str | None] = {}
    rest: list[str] = []
    i = 0
    while i < len(argv):
        word = argv[i]
        if word.startswith("-") and len(word) > 1:
            name = "-" + word.lstrip("-").lower()
            if name in with_value:
                if i + 1 >= len(argv) or argv[i + 1].startswith("-"):
                    raise Usage(f"ERROR: {word} requires another argument")
                options[name] = argv[i + 1]
                i += 2
                continue
            if name in flags:
                options[name] = ""
                i += 1
                continue
            raise Usage(f"ERROR: unknown option {word} (the HTCondor stand-in knows {sorted(with_value | flags)})")
        rest.append(word)
        i += 1
    return options, rest


def _cluster(word: str) -> int:
    head = word.split(".")[0]
    if not head.isdigit():
        raise Usage(f"ERROR: {word!r} is not a cluster id (the HTCondor stand-in selects jobs by id only)")
    return int(head)


def main(tool: str, argv: list[str]) -> int:
    spool = Spool(read_config())
    if tool != "starter":
        spool.record_call([tool, *argv])
    try:
        if tool == "condor_submit":
            return submit(spool, argv)
        if tool == "condor_q":
            return query(spool, argv, "jobs")
        if tool == "condor_history":
            return query(spool, argv, "history")
        if tool == "condor_rm":
            return remove(spool, argv)
        if tool == "condor_hold":
            return hold(spool, argv)
        if tool == "starter":
            return starter(spool, int(argv[0]))
    except Usage as e:
        print(str(e), file=sys.stderr)
        return 1
    raise SystemExit(f"unknown HTCondor stand-in tool {tool!r}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
