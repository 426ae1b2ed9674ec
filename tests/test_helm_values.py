"""The Zero-to-JupyterHub files in ``helm-values/``.

Which file is what (one rule): ``rbac-*.yaml`` are Kubernetes manifests an
admin applies with kubectl (checked against the Kubernetes 1.34 schema with
kubernetes-validate); every other ``*.yaml`` is a values file for the chart,
validated the way ``helm`` does it — merged over the chart's default values,
then checked against the chart's values schema (the chart is found by
tests/upstream_data.py; without it those tests skip) — and its
``hub.config`` loaded into the spawner by ``offload-spawner check`` run as a
subprocess.

"""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from upstream_data import z2jh_chart

ROOT = Path(__file__).resolve().parents[1]
HELM_VALUES = ROOT / "helm-values"


def is_rbac_manifest(path: Path) -> bool:
    """The one rule: ``rbac-*.yaml`` are manifests, everything else is chart values."""
    return path.name.startswith("rbac-")


def yaml_files() -> list[Path]:
    return sorted(p for p in HELM_VALUES.iterdir() if p.suffix in (".yaml", ".yml"))


VALUES_FILES = [p for p in yaml_files() if not is_rbac_manifest(p)]
RBAC_FILES = [p for p in yaml_files() if is_rbac_manifest(p)]


def helm_merge(defaults: dict, overrides: dict) -> dict:
    """Helm's coalescing of user values over chart defaults: maps merge
    recursively, anything else (lists too) replaces, and a null deletes."""
    merged = copy.deepcopy(defaults)
    for key, value in overrides.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = helm_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


@pytest.fixture(scope="module")
def chart_validator():
    chart = z2jh_chart()
    schema = yaml.safe_load((chart / "values.schema.yaml").read_text())
    defaults = yaml.safe_load((chart / "values.yaml").read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    validator = cls(schema)

    def errors(values: dict) -> list[str]:
        merged = helm_merge(defaults, values)
        return [
            f"{'.'.join(str(p) for p in e.absolute_path) or '(top)'}: {e.message}"
            for e in validator.iter_errors(merged)
        ]

    return errors


def start_cli(*args: str) -> subprocess.Popen:
    # Run from the checkout so that its offload_spawner is the one imported.
    return subprocess.Popen(
        [sys.executable, "-m", "offload_spawner.hub.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )


def finish(proc: subprocess.Popen) -> subprocess.CompletedProcess:
    stdout, stderr = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


@pytest.fixture(scope="module")
def check_runs() -> dict[str, subprocess.CompletedProcess]:
    """``offload-spawner check`` on every values file, started together (each
    run takes seconds, mostly imports)."""
    procs = {p.name: start_cli("check", "-f", str(p)) for p in VALUES_FILES}
    return {name: finish(proc) for name, proc in procs.items()}


def _hub_config(values: dict) -> dict:
    return (values.get("hub") or {}).get("config") or {}


# --- which file is what -------------------------------------------------------


def test_there_are_values_files():
    names = {p.name for p in VALUES_FILES}
    assert {"values.yaml", "values-minimal.yaml"} <= names


@pytest.mark.parametrize("path", VALUES_FILES, ids=lambda p: p.name)
def test_values_file_is_not_a_manifest(path):
    """A manifest named like a values file would be validated as values: refuse it."""
    docs = list(yaml.safe_load_all(path.read_text()))
    assert len(docs) == 1 and isinstance(docs[0], dict), f"{path.name}: one mapping of chart values"
    assert not {"kind", "apiVersion"} & docs[0].keys(), f"{path.name} looks like a manifest: name it rbac-*.yaml"


@pytest.mark.parametrize("path", RBAC_FILES, ids=lambda p: p.name)
def test_rbac_file_holds_only_manifests(path):
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    assert docs, f"{path.name} is empty"
    for doc in docs:
        assert {"kind", "apiVersion"} <= doc.keys(), f"{path.name}: every document needs kind and apiVersion"


# --- chart schema -------------------------------------------------------------


@pytest.mark.parametrize("path", VALUES_FILES, ids=lambda p: p.name)
def test_values_file_validates_against_the_chart_schema(path, chart_validator):
    assert chart_validator(yaml.safe_load(path.read_text())) == []


def test_chart_schema_refuses_bad_values(chart_validator):
    """The schema check can fail: a misspelt chart key and a wrong type."""
    values = yaml.safe_load((HELM_VALUES / "values.yaml").read_text())
    values["hub"]["extraConfg"] = {}
    values["scheduling"]["userPods"]["nodeAffinity"]["matchNodePurpose"] = "always"
    errors = chart_validator(values)
    assert any(e.startswith("hub:") and "extraConfg" in e for e in errors), errors
    assert any(e.startswith("scheduling.userPods.nodeAffinity.matchNodePurpose:") for e in errors), errors


def test_helm_merge_follows_helm():
    defaults = {"a": {"b": 1, "c": [1, 2]}, "d": 1}
    assert helm_merge(defaults, {"a": {"c": [3]}, "d": None}) == {"a": {"b": 1, "c": [3]}}
    assert defaults == {"a": {"b": 1, "c": [1, 2]}, "d": 1}


# --- hub.config through the spawner -----------------------------------------


@pytest.mark.parametrize("path", VALUES_FILES, ids=lambda p: p.name)
def test_check_loads_the_values_into_the_spawner(path, check_runs):
    values = yaml.safe_load(path.read_text())
    hub_config = _hub_config(values)
    assert hub_config["JupyterHub"]["spawner_class"] == "offload"
    assert hub_config["JupyterHub"]["authenticator_class"] == "iam"
    r = check_runs[path.name]
    assert r.returncode == 0, r.stderr
    assert f"{path}: OK" in r.stdout
    # The catalog really arrived: every target and profile is in the summary.
    profiles = hub_config["OffloadSpawner"].get("profile_list") or values["singleuser"]["profileList"]
    assert f"{len(profiles)} profile(s)" in r.stdout
    for slug, target in hub_config["OffloadSpawner"]["offload_targets"].items():
        assert f"target {slug}: {target['backend']} " in r.stdout
    for profile in profiles:
        assert f"profile {profile['slug']}: " in r.stdout


def test_check_names_a_typo_in_hub_config(tmp_path, capsys):
    """The same command, in this process (its code path is the one above)."""
    from offload_spawner.hub.cli import main

    text = (HELM_VALUES / "values.yaml").read_text()
    assert text.count("partition: boost_usr_prod") == 1
    bad = tmp_path / "values.yaml"
    bad.write_text(text.replace("partition: boost_usr_prod", "partiton: boost_usr_prod"))
    assert main(["check", "-f", str(bad)]) == 1
    out, err = capsys.readouterr()
    assert "offload_targets.leonardo.slurm.partiton" in err
    assert out == ""


def test_values_hold_no_secret():
    """Secrets come from Kubernetes Secrets, never from these files."""
    for path in VALUES_FILES:
        values = yaml.safe_load(path.read_text())
        hub_config = _hub_config(values)
        assert "client_secret" not in hub_config.get("IAMOAuthenticator", {}), path.name
        assert "CryptKeeper" not in hub_config, path.name
        assert not (values.get("hub") or {}).get("cookieSecret"), path.name
        env = (values.get("hub") or {}).get("extraEnv") or {}
        assert env.get("OAUTH_CLIENT_SECRET", {}).get("valueFrom", {}).get("secretKeyRef"), path.name


# --- RBAC manifests -----------------------------------------------------------


def validate_manifests(text: str) -> None:
    for doc in yaml.safe_load_all(text):
        if doc is not None:
            kubernetes_validate.validate(doc, desired_version="1.34", strict=True)


@pytest.mark.parametrize("path", RBAC_FILES, ids=lambda p: p.name)
def test_rbac_manifest_validates_for_kubernetes_1_34(path):
    validate_manifests(path.read_text())


def test_rbac_validation_refuses_a_bad_manifest():
    """The manifest check can fail: a misspelt field in a ClusterRole."""
    good = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "example"},
        "rules": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "watch"]}],
    }
    validate_manifests(yaml.safe_dump(good))
    bad = copy.deepcopy(good)
    bad["rules"][0]["verb"] = bad["rules"][0].pop("verbs")
    with pytest.raises(kubernetes_validate.ValidationError):
        validate_manifests(yaml.safe_dump(bad))


def test_check_names_a_misspelt_setting(tmp_path, capsys):
    """A misspelt trait name would otherwise pass as an empty catalog."""
    from offload_spawner.hub.cli import main

    text = (HELM_VALUES / "values-minimal.yaml").read_text()
    assert text.count("      group_limits:") == 1
    bad = tmp_path / "values.yaml"
    bad.write_text(text.replace("      group_limits:", "      group_limit:"))
    assert main(["check", "-f", str(bad)]) == 1
    out, err = capsys.readouterr()
    assert "OffloadSpawner.group_limit: not a setting of OffloadSpawner (did you mean 'group_limits'?)" in err
    assert out == ""


# --- the example catalog gives the pods it promises ------------------------------


def _render(capsys, *args: str) -> dict:
    import json

    from offload_spawner.hub.cli import main

    code = main(["render", "-f", str(HELM_VALUES / "values.yaml"), *args])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)["pod"]


def test_example_gpu_session_on_leonardo(capsys, tmp_path):
    auth_state = tmp_path / "auth_state.json"
    auth_state.write_text('{"oauth_user": {"preferred_username": "carol", "uid": 41003}}')
    pod = _render(
        capsys,
        "--user",
        "carol",
        "--groups",
        "ai-infn",
        "--auth-state",
        str(auth_state),
        "-o",
        "profile=ai",
        "-o",
        "target=leonardo",
        "-o",
        "accelerator=nvidia.com/gpu:a100",
        "-o",
        "accelerator_count=1",
        "-o",
        "cores=8",
        "-o",
        "memory=64G",
    )
    assert pod["spec"]["nodeSelector"] == {"kubernetes.io/hostname": "vk-leonardo", "nvidia-gpu-type": "a100"}
    assert pod["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    annotations = pod["metadata"]["annotations"]
    flags = annotations["slurm-job.vk.io/flags"]
    assert flags == "--partition=boost_usr_prod --account=icsc_ai --qos=normal --time=04:00:00 --gres=gpu:1"
    # The target's own binds, then the user's storage (CVMFS, their $WORK).
    assert annotations["slurm-job.vk.io/singularity-mounts"] == (
        "--bind /leonardo_work/icsc_ai:/data --bind /cvmfs:/cvmfs:ro --bind /leonardo_work/carol:/work"
    )
    assert annotations["interlink.eu/shadow-same-ns"] == "true"
    env = {e["name"]: e for e in pod["spec"]["containers"][0]["env"]}
    assert env["JUPYTERHUB_API_URL"]["value"] == "https://hub.example.org/hub/api"
    # Tokens only by reference; the pod shape for a SLURM job.
    assert "secretKeyRef" in env["JUPYTERHUB_API_TOKEN"]["valueFrom"] and "value" not in env["JUPYTERHUB_API_TOKEN"]
    assert pod["spec"]["securityContext"]["runAsUser"] == 41003  # the user's own UID, from their IAM claim
    assert pod["spec"]["automountServiceAccountToken"] is False


def test_example_fpga_session_on_the_docker_site(capsys):
    pod = _render(
        capsys,
        "--user",
        "carol",
        "--groups",
        "ai-infn",
        "-o",
        "profile=ai",
        "-o",
        "target=fpga",
        "-o",
        "image=vitis",
        "-o",
        "accelerator=xilinx.com/fpga:u55c",
        "-o",
        "accelerator_count=1",
    )
    assert pod["spec"]["nodeSelector"] == {"kubernetes.io/hostname": "vk-docker", "xilinx-fpga-type": "u55c"}
    assert pod["spec"]["containers"][0]["resources"]["limits"]["xilinx.com/fpga"] == "1"
    assert pod["spec"]["containers"][0]["image"] == "ghcr.io/example-org/vitis-notebook:3.5"
    assert "docker-options.vk.io/flags" not in pod["metadata"]["annotations"]


def test_example_dask_target_keeps_the_session_here(capsys):
    pod = _render(
        capsys,
        "--user",
        "hana",
        "--groups",
        "highrate",
        "-o",
        "profile=analysis",
        "-o",
        "target=naples",
        "-o",
        "image=dask",
    )
    assert "kubernetes.io/hostname" not in (pod["spec"].get("nodeSelector") or {})
    assert pod["metadata"]["labels"]["offload-spawner.io/target"] == "naples"
    assert pod["spec"]["containers"][0]["image"] == "ghcr.io/example-org/alma9-dask:1.0"
    mounts = {m["mountPath"] for m in pod["spec"]["containers"][0]["volumeMounts"]}
    assert "/etc/dask" in mounts  # the Dask configuration, from the per-server Secret


def test_example_refuses_what_a_group_may_not_use(capsys):
    from offload_spawner.hub.cli import main

    code = main(
        [
            "render",
            "-f",
            str(HELM_VALUES / "values.yaml"),
            "--user",
            "bob",
            "--groups",
            "cms",
            "-o",
            "profile=analysis",
            "-o",
            "target=naples",
        ]
    )
    assert code == 2
    assert "naples" in capsys.readouterr().err
