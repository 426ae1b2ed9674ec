"""The real interLink HTCondor plugin behind its own interLink API server and virtual kubelet.

Why: production runs one virtual kubelet + interLink API server per plugin;
the HTCondor plugin is a Python Flask app (``interlink-htcondor-plugin/handles.py``)
that writes a submit file and an executable per pod and runs
``condor_submit``/``condor_q``/``condor_history``/``condor_rm``. Here:

* the plugin is the **unmodified upstream** ``handles.py`` (from
  ``$OFFLOAD_UPSTREAM_DIR/interlink-htcondor-plugin``, else
  ``../shared/upstream/interlink-htcondor-plugin``), served on 127.0.0.1 by
  ``testbed/htcondor_plugin.py`` (its own ``__main__`` would start Flask's
  debugger on every interface), with this venv's Flask and PyYAML, in a
  working directory laid out as its README says (``SidecarConfig.yaml``,
  ``.knoc/``, ``out/``, ``err/``, ``log/``) and started with
  ``--condor-config``, ``--schedd-host``, ``--collector-host`` and ``--proxy``
  (its ping answers 503 unless the proxy file exists: handles.py,
  ``StatusHandler``, the empty-request path);
* the HTCondor commands are **stand-ins** (``testbed/condor/``: no HTCondor
  exists here): they run each job on this machine and report HTCondor's
  ``JobStatus`` codes; the job's ``singularity exec`` line runs
  ``testbed/singularity`` (the same stand-in as on the SLURM path);
* the interLink API server and virtual kubelet are the real binaries of
  ``testbed/build_interlink.sh`` (``InterlinkChain``), registering node
  ``vk-htcondor`` with interLink's labels and taint.

Known upstream mismatch, kept visible rather than hidden: handles.py answers
a successful ``/create`` with HTTP **201**, and this interLink API server
passes only 200 as success (interLink ``pkg/interlink/api/handler.go``,
``ReqWithError``), so its virtual kubelet marks every pod ``ProviderFailed``
("error creating pod (HTTP 201)") although the job was submitted. With
``accept_created=True`` (the default here) the launcher answers 200 where the
plugin said 201 (``testbed/htcondor_plugin.py --created-as-ok``), so the rest
of the chain can be exercised; ``accept_created=False`` runs the pair exactly
as released (tests/e2e/test_interlink_htcondor_e2e.py shows what then happens).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .controlplane import ControlPlane, log
from .interlink import BUILD_SCRIPT, SINGULARITY_STAND_IN, InterlinkChain, port_listening

HERE = Path(__file__).resolve().parent
CONDOR_STAND_INS = HERE / "condor"
DEFAULT_NODE = "vk-htcondor"
#: The plugin's folder inside the upstream sources, and the commit it is pinned at
#: (the upstream folder's README table; a git checkout answers for itself).
PLUGIN_FOLDER = "interlink-htcondor-plugin"
PLUGIN_COMMIT = "6f5ee3e"
#: The request line Flask's server logs once per pod the plugin is asked to create
#: (handles.py's own ``logging.info`` lines stay below the default WARNING level).
CREATE_REQUEST_LINE = re.compile(r'^[0-9.]+ - - \[[^\]]*\] "POST /create HTTP/[0-9.]+" ', re.MULTILINE)
#: Names the plugin passes to condor_submit's -pool and -remote (the stand-ins record them).
SCHEDD_HOST = "schedd.testbed.local"
COLLECTOR_HOST = "collector.testbed.local"


def htcondor_plugin_dir() -> Path | None:
    """``interlink-htcondor-plugin/`` in the upstream sources (the build script's lookup), or None."""
    result = subprocess.run([str(BUILD_SCRIPT), "--source-dir"], check=False, capture_output=True, text=True)
    if result.returncode != 0:
        return None
    folder = Path(result.stdout.strip()) / PLUGIN_FOLDER
    return folder if (folder / "handles.py").is_file() else None


def htcondor_plugin_missing() -> str | None:
    """Why the HTCondor plugin cannot run here, or None."""
    if htcondor_plugin_dir() is None:
        return (
            "no interlink-htcondor-plugin/handles.py: set OFFLOAD_UPSTREAM_DIR to a folder holding "
            "interlink-htcondor-plugin/ (github.com/interlink-hq/interlink-htcondor-plugin at "
            f"{PLUGIN_COMMIT}), or put ../shared/upstream beside the checkout"
        )
    try:
        import flask  # noqa: F401
        import yaml  # noqa: F401
    except ImportError as e:
        return f"the HTCondor plugin needs Flask and PyYAML ({e}): pip install -e '.[test]'"
    return None


def plugin_commit(folder: Path) -> str:
    """The plugin's commit: git's answer for a checkout, else the upstream README table's row."""
    if (folder / ".git").exists():  # its own checkout, not a folder inside another repository
        head = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "--short", "HEAD"], check=False, capture_output=True, text=True
        )
        if head.returncode == 0 and head.stdout.strip():
            return head.stdout.strip()
    try:
        table = (folder.parent / "README.md").read_text()
    except OSError:
        return PLUGIN_COMMIT
    match = re.search(rf"^\|\s*{PLUGIN_FOLDER}/\s*\|[^|]*\|\s*([0-9a-f]{{7,40}})\b", table, re.MULTILINE)
    return match.group(1) if match else PLUGIN_COMMIT


class HTCondorStack(InterlinkChain):
    """handles.py + HTCondor stand-ins + interLink API server + virtual kubelet for node ``vk-htcondor``."""

    def __init__(
        self,
        control_plane: ControlPlane,
        workdir: Path | str | None = None,
        *,
        node: str = DEFAULT_NODE,
        cpus: int = 16,
        memory: str = "64Gi",
        accept_created: bool = True,
        bin_dir: Path | None = None,
        keep: bool = False,
        echo: Callable[[str], None] = log,
        kubelet: bool = True,
    ) -> None:
        super().__init__(control_plane, workdir, node=node, bin_dir=bin_dir, keep=keep, echo=echo, kubelet=kubelet)
        self.cpus = cpus
        self.memory = memory
        self.accept_created = accept_created
        self.plugin_dir = htcondor_plugin_dir()
        self._job_path = ""

    @property
    def plugin_workdir(self) -> Path:
        """handles.py's working directory: ``SidecarConfig.yaml``, ``.knoc/`` (submit files), out/err/log."""
        return self.workdir / "plugin"

    @property
    def data_root(self) -> Path:
        return self.plugin_workdir / ".knoc"

    @property
    def spool(self) -> Path:
        """The stand-ins' queue, history and scratch directories (``SPOOL`` of the condor config)."""
        return self.workdir / "condor-spool"

    def _start_plugin(self, plugin_port: int, base_env: dict[str, str]) -> dict[str, Any]:
        if self.plugin_dir is None:
            raise RuntimeError(htcondor_plugin_missing() or "no HTCondor plugin")
        work = self.plugin_workdir
        for sub in (".knoc", "out", "err", "log"):
            (work / sub).mkdir(parents=True, exist_ok=True)
        # The plugin's own example configuration (DataRootFolder ".knoc/", relative to its cwd).
        (work / "SidecarConfig.yaml").write_text(
            json.dumps({"CommandPrefix": "", "ExportPodData": True, "DataRootFolder": ".knoc/"}) + "\n"
        )
        job_path = f"{SINGULARITY_STAND_IN.parent}:{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin"
        self._job_path = job_path
        condor_config = self.set_idle_seconds(0)
        proxy = work / "x509up"
        proxy.write_text("test-bed placeholder: the HTCondor stand-ins do not authenticate\n")
        proxy.chmod(0o600)
        argv = [sys.executable, "-m", "testbed.htcondor_plugin", str(self.plugin_dir)]
        if self.accept_created:
            argv.append("--created-as-ok")
        argv += [
            "--port",
            str(plugin_port),
            "--condor-config",
            str(condor_config),
            "--schedd-host",
            SCHEDD_HOST,
            "--collector-host",
            COLLECTOR_HOST,
            "--proxy",
            str(proxy),
        ]
        env = {
            **base_env,
            "PATH": f"{CONDOR_STAND_INS}:{base_env.get('PATH', '/usr/bin:/bin')}",
            "PYTHONPATH": str(HERE.parent),
            "PYTHONUNBUFFERED": "1",
        }
        self._spawn("htcondor-plugin", argv, env, cwd=work)
        self._wait("the HTCondor plugin listening", lambda: port_listening(plugin_port), 60)
        return {"CPU": str(self.cpus), "Memory": self.memory, "Pods": "100"}

    def set_idle_seconds(self, seconds: float) -> Path:
        """Write the stand-ins' condor config (HTCondor's ``NAME = value`` lines): jobs stay
        Idle ``seconds`` after they were queued (jobs already waiting see the new value)."""
        condor_config = self.workdir / "condor_config"
        text = f"SPOOL = {self.spool}\nSTAND_IN_JOB_PATH = {self._job_path}\nSTAND_IN_IDLE_SECONDS = {seconds}\n"
        tmp = condor_config.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(condor_config)
        return condor_config

    def condor(self, tool: str, *args: str) -> subprocess.CompletedProcess[str]:
        """Run an HTCondor command (stand-in) as the site's admin would, e.g. ``condor_hold``."""
        return subprocess.run(
            [str(CONDOR_STAND_INS / tool), *args],
            check=False,
            capture_output=True,
            text=True,
            env={**os.environ, "CONDOR_CONFIG": str(self.workdir / "condor_config")},
            timeout=60,
        )

    def stop(self) -> None:
        """Remove the jobs still queued (as an admin's ``condor_rm -all``), then stop the chain."""
        if self.spool.exists():
            self.condor("condor_rm", "-all")
        super().stop()

    # --- what went through it -------------------------------------------------------

    def pods_submitted(self) -> int:
        """How many pods the plugin was asked to create (one ``POST /create`` each)."""
        return len(CREATE_REQUEST_LINE.findall(self.log_text("htcondor-plugin")))

    def calls(self, tool: str | None = None) -> list[list[str]]:
        """The HTCondor commands run so far (argv, tool first), from the stand-ins' record."""
        try:
            lines = (self.spool / "calls.log").read_text().splitlines()
        except OSError:
            return []
        argvs = [json.loads(line) for line in lines if line.strip()]
        return [a for a in argvs if tool is None or a[0] == tool]

    def job_ad(self, cluster: str | int) -> dict[str, Any] | None:
        """The job's ClassAd from the queue, else the history (None if unknown)."""
        for where in ("jobs", "history"):
            path = self.spool / where / f"{cluster}.json"
            if path.exists():
                ad: dict[str, Any] = json.loads(path.read_text())
                return ad
        return None

    def job_counts(self) -> dict[str, int]:
        """Jobs submitted, and how they ended (completed, removed) so far."""
        ads = (
            [json.loads(p.read_text()) for where in ("jobs", "history") for p in (self.spool / where).glob("*.json")]
            if self.spool.exists()
            else []
        )
        return {
            "submitted": len(ads),
            "completed": sum(ad.get("JobStatus") == 4 for ad in ads),
            "removed": sum(ad.get("JobStatus") == 3 for ad in ads),
        }

    def active_jobs(self) -> list[int]:
        """Clusters Idle, Running or Held (in the queue and not finished)."""
        if not (self.spool / "jobs").exists():
            return []
        return sorted(
            int(p.stem)
            for p in (self.spool / "jobs").glob("*.json")
            if json.loads(p.read_text()).get("JobStatus") in (1, 2, 5)
        )

    def versions(self) -> dict[str, str]:
        stamp, node_info = self.build_stamp(), self.node_info()
        return {
            "interlink_commit": stamp.get("interlink", ""),
            "htcondor_plugin_commit": plugin_commit(self.plugin_dir) if self.plugin_dir else "",
            "kubelet_version": str(node_info.get("kubeletVersion", "")),
        }


__all__ = ["DEFAULT_NODE", "HTCondorStack", "htcondor_plugin_dir", "htcondor_plugin_missing", "plugin_commit"]
