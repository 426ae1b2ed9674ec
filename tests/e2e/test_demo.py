"""The demo, as a person runs it (`make demo` runs `python demo/run.py`).

It starts its own test bed, the IAM-like OpenID Connect provider and a hub as
child processes; this test logs in as each demo user through the provider (no
browser: the same HTTP requests a browser makes), checks that each sees a
different form, starts a JupyterLab on the SLURM-like virtual node, then stops
the demo with SIGINT (what Ctrl-C sends) and checks that nothing of it is left
running.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from testbed.interlink import interlink_sources_missing
from testbed.oidc import free_port, login_through_hub
from testbed.slurm import slurm_missing

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "demo"


def _wait_for(predicate, timeout: float, what: str, proc: subprocess.Popen, log: Path):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc.poll() is not None:
            pytest.fail(f"the demo exited ({proc.returncode}) before {what}:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)
    pytest.fail(f"timed out waiting for {what}:\n{log.read_text()[-3000:]}")


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in args:
            found.append(args)
    return found


@pytest.fixture
def demo(request, tmp_path):
    """The demo as `make demo` starts it; a test module may add environment (``DEMO_ENV``)."""
    port = free_port()
    log = tmp_path / "demo.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "demo" / "run.py")],
            cwd=ROOT,
            env=dict(os.environ, DEMO_PORT=str(port), PYTHONUNBUFFERED="1", **getattr(request.module, "DEMO_ENV", {})),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield proc, port, log
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


def test_the_demo_logs_users_in_spawns_jupyterlab_and_stops_cleanly(demo):
    proc, port, log = demo
    hub = f"http://127.0.0.1:{port}"
    text = _wait_for(lambda: "Ctrl-C stops" in log.read_text() and log.read_text(), 180, "the demo's banner", proc, log)
    assert f"demo hub: {hub}/" in text
    for user in ("bob", "carol", "dave", "hana", "nobody"):
        assert re.search(rf"^\s+{user}\s+groups:", text, re.M), f"{user} is not listed"
    testbed_dir = re.search(r"admin kubeconfig \(kubectl\): (\S+)/admin\.kubeconfig", text).group(1)
    idp_port = int(re.search(r"OpenID Connect provider\): http://127\.0\.0\.1:(\d+)", text).group(1))
    _wait_for(
        lambda: requests.get(f"{hub}/hub/api", timeout=2).ok if _listening(port) else False, 60, "the hub", proc, log
    )

    # Each user logs in at the provider and sees what their IAM groups allow.
    forms = {}
    for user in ("bob", "carol", "hana", "nobody"):
        session = login_through_hub(hub, user, PASSWORD)
        forms[user] = session.get(f"{hub}/hub/spawn", timeout=30).text
    targets = {
        user: set(re.findall(r'<option value="(cluster|naples|leonardo|docker)"', html)) for user, html in forms.items()
    }
    assert targets["carol"] >= {"cluster", "leonardo", "docker"}
    assert "naples" in targets["hana"] and "leonardo" not in targets["hana"]
    assert targets["bob"] == {"cluster"}
    assert 'value="analysis"' not in forms["nobody"] and 'value="teaching"' in forms["nobody"]
    assert len({frozenset(t) for t in targets.values()}) >= 3
    # Availability is shown: the demo hub may read the sites' nodes, which publish capacity.
    assert 'data-availability="leonardo" data-status="up"' in forms["carol"], forms["carol"][-3000:]
    # The SLURM target runs on the real interLink stack where it can (node vk-slurm, the 2
    # GPUs of its config), else on the imitation's vk-leonardo (4 GPUs); the banner says which.
    slurm_conf = re.search(r"see its jobs with SLURM_CONF=(\S+) squeue", text)
    if slurm_missing() or interlink_sources_missing():
        assert slurm_conf is None
        assert "SLURM target (leonardo): the test bed's imitation (node vk-leonardo), because " in text, text
    else:
        assert slurm_conf, text
    assert f"NVIDIA GPU a100: {2 if slurm_conf else 4} total" in forms["carol"]
    assert "does not publish its free capacity" not in forms["carol"]
    # The demo's sites reach the hub (local processes, declared `network: mesh`): no warning says otherwise.
    assert "may not reach the hub" not in log.read_text()

    # carol starts a GPU server on the SLURM-like virtual node and reaches JupyterLab.
    session = login_through_hub(hub, "carol", PASSWORD)
    session.get(f"{hub}/hub/spawn", timeout=30)
    fields = {
        "image": "alma9",
        "cores": "2",
        "memory": "2G",
        "target": "leonardo",
        "accelerator": "nvidia.com/gpu:a100",
        "accelerator_count": "1",
    }
    data = {
        "_xsrf": session.cookies.get("_xsrf"),
        "profile": "analysis",
        **{f"profile-option-analysis--{k}": v for k, v in fields.items()},
    }
    r = session.post(f"{hub}/hub/spawn/carol", data=data, allow_redirects=False, timeout=30)
    assert r.status_code == 302, r.text[-2000:]
    lab = _wait_for(
        lambda: (lambda r: r.ok and "JupyterLab" in r.text and r)(session.get(f"{hub}/user/carol/lab", timeout=30)),
        180,
        "carol's JupyterLab",
        proc,
        log,
    )
    assert lab.url.startswith(f"{hub}/user/carol/lab")
    if slurm_conf:  # carol's server is a job of the real SLURM
        squeue = subprocess.run(
            ["squeue", "-h", "-o", "%T|%P|%C"],
            capture_output=True,
            text=True,
            check=True,
            env=dict(os.environ, SLURM_CONF=slurm_conf.group(1)),
            timeout=60,
        )
        assert squeue.stdout.split() == ["RUNNING|boost_usr_prod|2"], squeue

    # Ctrl-C: the demo stops the hub (and carol's server), the provider and the test bed.
    os.killpg(proc.pid, signal.SIGINT)
    assert proc.wait(timeout=90) == 0, log.read_text()[-3000:]
    assert not _listening(port) and not _listening(idp_port)
    left = _processes_mentioning(testbed_dir) + _processes_mentioning(f"--port {port} ")
    assert left == [], left
    assert "Traceback" not in log.read_text().split("Ctrl-C stops", 1)[1], log.read_text()[-3000:]
