"""This project's helm-values/ with the real Zero-to-JupyterHub chart and the real helm.

* ``helm lint`` and ``helm template`` every values file (schema-validated the
  way a released chart validates: see tests/z2jh_chart.py);
* a hub started the way the chart's hub pod starts it: the rendered hub
  Secret (its ``values.yaml`` and generated secrets) and ConfigMap mounted at
  ``/usr/local/etc/jupyterhub/`` (in a private mount namespace, ``unshare``),
  the chart's own ``files/hub/jupyterhub_config.py`` and ``z2jh.py`` run as
  they are from the chart directory, the hub container's args and env from
  the rendered Deployment, and the real configurable-http-proxy in front, as
  the proxy pod runs it. OffloadSpawner must get its catalog from the values
  and serve each user the form their groups allow.

Needs the chart (tests/upstream_data.py says where it is looked for) and helm
(testbed/build_helm.sh; ``make test`` builds it); skipped with how to get them
otherwise. The RBAC the chart renders is checked against the test bed's
apiserver in tests/e2e/test_chart_rbac_e2e.py.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import yaml

from test_helm_values import VALUES_FILES
from upstream_data import helm_binary, z2jh_chart
from z2jh_chart import find, helm, prepared_chart, render, secret_text

pytestmark = pytest.mark.chart

HUB_ETC = Path("/usr/local/etc")


@pytest.fixture(scope="module")
def helm_bin() -> Path:
    return helm_binary()


@pytest.fixture(scope="module")
def chart(tmp_path_factory) -> Path:
    return prepared_chart(z2jh_chart(), tmp_path_factory.mktemp("chart"))


@pytest.mark.parametrize("values", VALUES_FILES, ids=lambda p: p.name)
def test_helm_lint(helm_bin, chart, values):
    r = helm(helm_bin, "lint", str(chart), "--values", str(values), "--kube-version", "1.35.4")
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize("values", VALUES_FILES, ids=lambda p: p.name)
def test_helm_template_carries_hub_config_into_the_hub_secret(helm_bin, chart, values):
    manifests = render(helm_bin, chart, [values])
    rendered = yaml.safe_load(secret_text(find(manifests, "Secret", "hub"), "values.yaml"))
    mine = yaml.safe_load(values.read_text())
    assert rendered["hub"]["config"]["OffloadSpawner"] == mine["hub"]["config"]["OffloadSpawner"]
    assert rendered["hub"]["config"]["JupyterHub"]["spawner_class"] == "offload"


def test_helm_refuses_values_the_schema_does_not_allow(helm_bin, chart, tmp_path):
    """The schema is in force: a misspelt chart key fails lint and template."""
    values = yaml.safe_load((VALUES_FILES[0]).read_text())
    values["hub"]["extraConfg"] = {}
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(values))
    lint = helm(helm_bin, "lint", str(chart), "--values", str(bad), "--kube-version", "1.35.4")
    assert lint.returncode != 0 and "extraConfg" in lint.stdout + lint.stderr
    with pytest.raises(AssertionError, match="extraConfg"):
        render(helm_bin, chart, [bad])


# --- a hub as the chart's hub pod runs it ------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _private_mounts_work() -> bool:
    if shutil.which("unshare") is None or not HUB_ETC.is_dir():
        return False
    r = subprocess.run(["unshare", "-rm", "true"], capture_output=True, timeout=30)
    return r.returncode == 0


def _hub_env(deployment: dict, secret: dict, namespace: str) -> dict[str, str]:
    """The hub container's env as the kubelet resolves it (other Secrets than
    the chart's are not in this test: a placeholder stands for them)."""
    env = {}
    container = next(c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "hub")
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = str(var["value"])
            continue
        source = var["valueFrom"]
        if "fieldRef" in source:
            assert source["fieldRef"]["fieldPath"] == "metadata.namespace", var
            env[var["name"]] = namespace
        elif source.get("secretKeyRef", {}).get("name") == secret["metadata"]["name"]:
            env[var["name"]] = secret_text(secret, source["secretKeyRef"]["key"])
        else:
            env[var["name"]] = "not-used-by-this-test"
    return env


def _overlay(tmp_path: Path, hub_port: int, api_port: int) -> Path:
    """What this machine needs on top of helm-values/values.yaml: loopback
    addresses instead of the Services' DNS names (hub.extraConfig runs after
    the chart's own config), and a password login instead of IAM."""
    overlay = {
        "hub": {
            "config": {
                "JupyterHub": {"authenticator_class": "dummy"},
                "DummyAuthenticator": {"password": "chart-test"},
                "Authenticator": {"allow_all": True},
                "OffloadSpawner": {"offload_availability": False},
            },
            "extraConfig": {
                "zz-test-machine": "\n".join(
                    [
                        f'c.JupyterHub.hub_bind_url = "http://127.0.0.1:{hub_port}"',
                        f'c.JupyterHub.hub_connect_url = "http://127.0.0.1:{hub_port}"',
                        f'c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{api_port}"',
                        'c.JupyterHub.load_groups = {"ai-infn": {"users": ["carol"]}, "cms": {"users": ["bob", "carol"]}}',
                    ]
                ),
            },
        },
    }
    path = tmp_path / "this-machine.yaml"
    path.write_text(yaml.safe_dump(overlay))
    return path


def _mount_tree(tmp_path: Path, chart_dir: Path, secret: dict, configmap: dict) -> Path:
    """What the hub pod has under /usr/local/etc/jupyterhub (templates/hub/deployment.yaml)."""
    etc = tmp_path / "etc"
    hub = etc / "jupyterhub"
    for sub, source in (("secret", secret), ("config", configmap)):
        (hub / sub).mkdir(parents=True)
        keys = list(source.get("data") or {}) + list(source.get("stringData") or {})
        for key in keys:
            text = secret_text(source, key) if source["kind"] == "Secret" else source["data"][key]
            (hub / sub / key).write_text(text)
    # The chart's own files, used as they are from the chart directory.
    for name in ("jupyterhub_config.py", "z2jh.py"):
        (hub / name).symlink_to(chart_dir / "files" / "hub" / name)
    return etc


def _login(session: requests.Session, base: str, user: str) -> None:
    session.get(base + "login", timeout=30).raise_for_status()
    r = session.post(
        base + "login",
        data={"username": user, "password": "chart-test", "_xsrf": session.cookies.get("_xsrf", "")},
        timeout=60,
    )
    assert r.status_code == 200, r.text[:500]


def test_hub_from_the_chart_config_serves_the_form(helm_bin, chart, tmp_path, requires_chp):
    if not _private_mounts_work():
        pytest.skip("needs `unshare -rm` (user + mount namespaces) to mount the hub Secret at /usr/local/etc")
    values = next(p for p in VALUES_FILES if p.name == "values.yaml")
    port, api_port, hub_port = _free_port(), _free_port(), _free_port()
    manifests = render(helm_bin, chart, [values, _overlay(tmp_path, hub_port, api_port)])
    secret, configmap = find(manifests, "Secret", "hub"), find(manifests, "ConfigMap", "hub")
    deployment = find(manifests, "Deployment", "hub")
    etc = _mount_tree(tmp_path, z2jh_chart(), secret, configmap)

    container = next(c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "hub")
    args = container["args"]
    assert args[:3] == ["jupyterhub", "--config", "/usr/local/etc/jupyterhub/jupyterhub_config.py"], args
    env = {
        **os.environ,
        **_hub_env(deployment, secret, "jhub"),
        # Kubernetes sets these for the chart's Services; z2jh.get_name_env reads them.
        "HUB_SERVICE_PORT": str(hub_port),
        "PROXY_API_SERVICE_PORT": str(api_port),
    }
    env.pop("JUPYTERHUB_CRYPT_KEY", None)
    srv = tmp_path / "srv"
    srv.mkdir()
    hub_log = (tmp_path / "hub.log").open("w")
    proxy = subprocess.Popen(
        [
            "configurable-http-proxy",
            "--ip=127.0.0.1",
            f"--port={port}",
            "--api-ip=127.0.0.1",
            f"--api-port={api_port}",
            f"--default-target=http://127.0.0.1:{hub_port}",
            f"--error-target=http://127.0.0.1:{hub_port}/hub/error",
        ],
        env={**os.environ, "CONFIGPROXY_AUTH_TOKEN": env["CONFIGPROXY_AUTH_TOKEN"]},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    hub = subprocess.Popen(
        [
            "unshare",
            "-rm",
            "sh",
            "-c",
            'mount --bind "$1" /usr/local/etc && shift && exec "$@"',
            "sh",
            str(etc),
            sys.executable,
            "-m",
            *args,
        ],
        cwd=srv,
        env=env,
        stdout=hub_log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}/hub/"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert hub.poll() is None, (tmp_path / "hub.log").read_text()[-5000:]
            try:
                if requests.get(base + "health", timeout=5).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "hub.log").read_text()[-5000:]
            time.sleep(0.5)
        forms = {}
        for user in ("bob", "carol"):
            session = requests.Session()
            _login(session, base, user)
            r = session.get(base + "spawn", timeout=60)
            assert r.status_code == 200
            forms[user] = r.text
    finally:
        for process in (hub, proxy):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
        hub_log.close()
    log = (tmp_path / "hub.log").read_text()
    hub_config = yaml.safe_load(values.read_text())["hub"]["config"]
    targets = hub_config["OffloadSpawner"]["offload_targets"]
    assert f"{len(targets)} target(s)" in log, log[-5000:]
    # The chart's config file was the one that ran (its own log line), from the chart directory.
    assert "Loading /usr/local/etc/jupyterhub/secret/values.yaml" in log, log[-5000:]
    for form in forms.values():
        assert 'id="offload-spawner-form"' in form, form[:2000]
    leonardo = targets["leonardo"]["display_name"]
    assert leonardo in forms["carol"]  # ai-infn
    assert leonardo not in forms["bob"]  # cms only
