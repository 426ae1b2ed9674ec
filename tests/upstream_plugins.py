"""Run the real interLink plugins on pods rendered by ``offload-spawner render``.

* HTCondor: the upstream ``interlink-htcondor-plugin/handles.py`` (a Flask
  app module) is imported in a child process (it parses ``sys.argv`` and
  reads ``./SidecarConfig.yaml`` at import) and its ``/create`` route is
  called through Flask's test client with the body interLink sends; the
  submit file it writes is returned. ``condor_submit`` on its PATH is a
  recording stand-in (no HTCondor schedd runs here): it prints what
  ``condor_submit`` prints, so the plugin's job-id parsing runs.
* SLURM: the plugin binary built from its Go source by
  ``testbed/build_interlink.sh`` serves its HTTP API; ``/create`` gets the
  body interLink's API server sends (``RetrievedPodData``:
  interLink-9ed14a4/pkg/interlink/types.go). ``sbatch``/``squeue``/
  ``scancel``/``sinfo`` on its PATH are recording stand-ins (the real
  slurmctld is run by the end-to-end test bed): ``sbatch`` keeps a copy of
  the job script and answers ``Submitted batch job <id>`` as sbatch does.

Both skip (with how to get them) when the upstream sources, Go or the built
binaries are not available.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
BUILD_SCRIPT = REPO / "testbed" / "build_interlink.sh"
HOW_TO_GET = (
    "set OFFLOAD_UPSTREAM_DIR to a folder with the interLink checkouts named in testbed/build_interlink.sh "
    "(or put them in ../shared/upstream)"
)


def upstream_dir() -> Path:
    """Where the upstream sources are (the build script's own lookup), else skip."""
    r = subprocess.run(["bash", str(BUILD_SCRIPT), "--source-dir"], capture_output=True, text=True, timeout=60)
    path = Path(r.stdout.strip()) if r.returncode == 0 else None
    if path is None or not path.is_dir():
        pytest.skip(f"no interLink sources: {HOW_TO_GET}")
    return path


def api_server_quantities(pod: dict[str, Any]) -> dict[str, Any]:
    """The pod's resource quantities as the API server stores them (and
    interLink forwards them): strings; a fractional core as milli-cores."""
    pod = json.loads(json.dumps(pod))

    def canonical(value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return value
        if float(value).is_integer():
            return str(int(value))
        return f"{round(value * 1000)}m"

    for container in pod["spec"].get("containers", []) + pod["spec"].get("initContainers", []):
        resources = container.get("resources") or {}
        for kind in ("limits", "requests"):
            if kind in resources:
                resources[kind] = {k: canonical(v) for k, v in resources[kind].items()}
    return pod


def as_created(pod: dict[str, Any], name: str = "jupyter-alice", namespace: str = "jhub") -> dict[str, Any]:
    """What the API server adds before a virtual kubelet sees the pod."""
    pod = api_server_quantities(pod)
    meta = pod.setdefault("metadata", {})
    meta.setdefault("name", name)
    meta["namespace"] = namespace
    meta["uid"] = str(uuid.uuid4())
    return pod


# --- HTCondor ------------------------------------------------------------------


def htcondor_submit_file(pod: dict[str, Any], tmp_path: Path) -> str:
    """The submit file the upstream HTCondor plugin writes for ``pod`` (as created)."""
    pytest.importorskip("flask", reason="the HTCondor plugin needs Flask: pip install flask")
    plugin = upstream_dir() / "interlink-htcondor-plugin"
    if not (plugin / "handles.py").is_file():
        pytest.skip(f"no interlink-htcondor-plugin/handles.py: {HOW_TO_GET}")
    work = tmp_path / "htcondor"
    (work / ".knoc").mkdir(parents=True)
    bin_dir = work / "bin"
    bin_dir.mkdir()
    # Recording stand-in for condor_submit: keeps its arguments, answers like condor_submit.
    stand_in = bin_dir / "condor_submit"
    stand_in.write_text(
        "#!/bin/sh\n"
        "# Stand-in for HTCondor's condor_submit (no schedd runs in the tests).\n"
        f'echo "$@" >> "{work}/condor_submit.args"\n'
        'echo "Submitting job(s)."\necho "1 job(s) submitted to cluster 4242."\n'
    )
    stand_in.chmod(0o755)
    # The plugin reads ./SidecarConfig.yaml at import (its own example's values).
    shutil.copy(plugin / "SidecarConfig.yaml", work / "SidecarConfig.yaml")
    (work / "request.json").write_text(json.dumps({"pod": pod, "container": []}))
    runner = textwrap.dedent(
        f"""
        import json, sys
        sys.argv = ["handles.py"]
        sys.path.insert(0, {str(plugin)!r})
        import handles
        client = handles.app.test_client()
        r = client.post("/create", data=open("request.json").read())
        print(json.dumps({{"status": r.status_code, "body": r.get_data(as_text=True)}}))
        """
    )
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}"}
    r = subprocess.run([sys.executable, "-c", runner], cwd=work, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout.strip().splitlines()[-1])
    assert result["status"] == 201, result
    meta = pod["metadata"]
    return (work / ".knoc" / f"{meta['name']}-{meta['uid']}.jdl").read_text()


def submit_value(submit_file: str, key: str) -> str:
    for line in submit_file.splitlines():
        name, sep, value = line.partition("=")
        if sep and name.strip().lower() == key.lower():
            return value.strip()
    raise AssertionError(f"no {key} in the submit file:\n{submit_file}")


# --- SLURM ---------------------------------------------------------------------


def slurm_plugin_binary() -> Path:
    upstream_dir()
    if shutil.which("go") is None and not os.environ.get("GO"):
        pytest.skip("no Go toolchain to build the SLURM plugin (https://go.dev/dl/)")
    r = subprocess.run(["bash", str(BUILD_SCRIPT), "--bin-dir"], capture_output=True, text=True, timeout=60)
    binary = Path(r.stdout.strip()) / "slurm-plugin"
    if not binary.is_file():
        # Waits for a build in progress (the script takes a lock), else builds.
        build = subprocess.run(["nice", "bash", str(BUILD_SCRIPT)], capture_output=True, text=True, timeout=1800)
        if build.returncode != 0 or not binary.is_file():
            pytest.skip(f"the SLURM plugin did not build (testbed/build_interlink.sh): {build.stderr[-500:]}")
    return binary


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_SBATCH = """#!/bin/sh
# Stand-in for SLURM's sbatch: keeps the job script, answers as sbatch does.
n=$(ls "{record}" | wc -l)
cp "$1" "{record}/job-$n.slurm"
echo "Submitted batch job $((1000 + n))"
"""
_SQUEUE = """#!/bin/sh
# Stand-in for SLURM's squeue: every job is pending.
echo "PD"
"""
_NOOP = """#!/bin/sh
# Stand-in for SLURM's {name}.
exit 0
"""
_SINFO = """#!/bin/sh
# Stand-in for SLURM's sinfo: one idle node.
echo "testbed 2/0/0/2 16000"
"""


class SlurmPlugin:
    """The upstream SLURM plugin on a free port, with recording batch commands."""

    def __init__(self, binary: Path, work: Path, flavors: dict[str, Any] | None = None) -> None:
        self.work = work
        self.record = work / "sbatch-record"
        self.record.mkdir(parents=True)
        bin_dir = work / "bin"
        bin_dir.mkdir()
        tools = {
            "sbatch": _SBATCH.format(record=self.record),
            "squeue": _SQUEUE,
            "sinfo": _SINFO,
            "scancel": _NOOP.format(name="scancel"),
            "singularity": _NOOP.format(name="singularity"),
        }
        for name, text in tools.items():
            (bin_dir / name).write_text(text)
            (bin_dir / name).chmod(0o755)
        self.port = _free_port()
        config = {
            "SidecarPort": str(self.port),
            "Socket": "",
            "SbatchPath": str(bin_dir / "sbatch"),
            "ScancelPath": str(bin_dir / "scancel"),
            "SqueuePath": str(bin_dir / "squeue"),
            "SinfoPath": str(bin_dir / "sinfo"),
            "SingularityPath": str(bin_dir / "singularity"),
            "ContainerRuntime": "singularity",
            "ImagePrefix": "docker://",
            "ExportPodData": True,
            "DataRootFolder": f"{work}/data/",
            "BashPath": "/bin/bash",
            "EnableProbes": False,
            "VerboseLogging": True,
        }
        if flavors:
            config["Flavors"] = flavors
        (work / "SlurmConfig.yaml").write_text(json.dumps(config))  # JSON is YAML
        env = {
            **os.environ,
            "SLURMCONFIGPATH": str(work / "SlurmConfig.yaml"),
            "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}",
        }
        self.log = open(work / "plugin.log", "wb")
        self.process = subprocess.Popen([str(binary)], cwd=work, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self._wait_listening()

    def _wait_listening(self) -> None:
        for _ in range(300):
            if self.process.poll() is not None:
                raise AssertionError(f"the SLURM plugin exited: {(self.work / 'plugin.log').read_text()[-2000:]}")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.1)
        raise AssertionError("the SLURM plugin did not listen within 30 s")

    def create(self, pod: dict[str, Any], secrets: list[dict[str, Any]] | None = None) -> str:
        """POST /create as interLink's API server does; return the sbatch script it submitted."""
        before = set(self.record.iterdir())
        containers = [
            {"name": c["name"], "configMaps": [], "projectedvolumemaps": [], "secrets": secrets or [], "emptyDirs": []}
            for c in pod["spec"]["containers"]
        ]
        body = json.dumps({"pod": pod, "container": containers}).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/create",
            data=body,
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                assert response.status == 200, response.read()
        except urllib.error.HTTPError as e:
            raise AssertionError(f"/create: {e.code} {e.read()[-1000:]!r}") from None
        (script,) = set(self.record.iterdir()) - before
        return script.read_text()

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


def sbatch_flags(script: str) -> list[str]:
    return [line.removeprefix("#SBATCH ").strip() for line in script.splitlines() if line.startswith("#SBATCH ")]
