"""``offload-spawner check|render|form``, run as the installed console script."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import kubernetes_validate
import pytest
import yaml


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "offload_spawner.hub.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )


@pytest.fixture
def values_file(tmp_path, contract_config) -> Path:
    """The same catalog as Zero-to-JupyterHub values (hub.config + singleuser.profileList)."""
    values = {
        "hub": {
            "config": {
                "JupyterHub": {"spawner_class": "offload"},
                "OffloadSpawner": {
                    "offload_targets": contract_config["offload_targets"],
                    "group_limits": contract_config["group_limits"],
                },
            }
        },
        "singleuser": {
            "image": {"name": "quay.io/jupyter/base-notebook", "tag": "2025-01-01"},
            "profileList": contract_config["profile_list"],
        },
    }
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def test_check_accepts_the_contract_example(contract_file):
    r = run("check", "-f", str(contract_file))
    assert r.returncode == 0, r.stderr
    assert "OK" in r.stdout
    assert "target leonardo: slurm (node vk-leonardo, offload session)" in r.stdout
    assert "group cms: 8 cores, 32G" in r.stdout


def test_check_names_the_bad_key(contract_file):
    text = contract_file.read_text().replace('"memory": "180G"', '"memory": "180GB"')
    contract_file.write_text(text)
    r = run("check", "-f", str(contract_file))
    assert r.returncode == 1
    assert "offload_targets.naples.limits.memory" in r.stderr
    assert "180GB" in r.stderr
    assert r.stdout == ""


def test_check_missing_file_is_a_clear_error(tmp_path):
    r = run("check", "-f", str(tmp_path / "nope.py"))
    assert r.returncode == 1
    assert "no such file" in r.stderr
    assert "Traceback" not in r.stderr


def test_check_refuses_a_config_for_another_spawner(tmp_path):
    path = tmp_path / "jupyterhub_config.py"
    path.write_text("c.JupyterHub.spawner_class = 'kubespawner.KubeSpawner'\n")
    r = run("check", "-f", str(path))
    assert r.returncode == 1
    assert "not OffloadSpawner" in r.stderr


def test_render_prints_pod_secrets_files_and_user_options(contract_file):
    r = run(
        "render",
        "-f",
        str(contract_file),
        "--user",
        "carol",
        "--groups",
        "cms,ai-infn,gpu-users",
        "-o",
        "profile=analysis",
        "-o",
        "target=leonardo",
        "-o",
        "cores=8",
        "-o",
        "accelerator=nvidia.com/gpu:a100",
        "-o",
        "accelerator_count=2",
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert set(out) == {"pod", "secrets", "files", "user_options"}
    kubernetes_validate.validate(out["pod"], desired_version="1.34", strict=True)
    assert out["user_options"] == {
        "profile": "analysis",
        "image": "alma9",
        "cores": 8,
        "memory": "4G",
        "accelerator": "nvidia.com/gpu:a100",
        "accelerator_count": 2,
        "target": "leonardo",
    }
    spec = out["pod"]["spec"]
    assert spec["nodeSelector"] == {"kubernetes.io/hostname": "vk-leonardo", "nvidia-gpu-type": "a100"}
    assert out["pod"]["metadata"]["annotations"]["slurm-job.vk.io/flags"] == (
        "--partition=boost_usr_prod --account=icsc_ai --qos=normal --time=04:00:00 --gres=gpu:a100:2 --exclusive"
    )


def test_render_yaml_output(contract_file):
    r = run("render", "-f", str(contract_file), "--user", "bob", "--groups", "cms", "--output", "yaml")
    assert r.returncode == 0, r.stderr
    out = yaml.safe_load(r.stdout)
    assert out["pod"]["spec"]["containers"][0]["image"] == "ghcr.io/org/alma9:1.0"


@pytest.mark.parametrize(
    "option,fragment",
    [
        ("cores=16", "16 cores is above"),
        ("target=leonardo", "You cannot run 'Analysis' on 'leonardo'"),
        ("image=offload", "'offload' is not a choice for Image"),
        ("image--unlisted-choice=ghcr.io/org/a:{x}", "may not contain braces"),
        ("nonsense=1", "Unknown option 'nonsense'"),
    ],
)
def test_render_refused_selection_exits_2_with_one_line(contract_file, option, fragment):
    r = run("render", "-f", str(contract_file), "--user", "bob", "--groups", "cms", "-o", option)
    assert r.returncode == 2
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert fragment in lines[0]


def test_form_holds_nothing_the_user_may_not_use(contract_file):
    r = run("form", "-f", str(contract_file), "--user", "bob", "--groups", "cms")
    assert r.returncode == 0, r.stderr
    html = r.stdout
    assert 'name="profile" value="analysis"' in html
    for hidden in (
        "Dask offload",
        "INFN Naples",
        "CINECA Leonardo",
        "naples",
        "leonardo",
        "ghcr.io/org/offload",
        "NVIDIA GPU",
    ):
        assert hidden not in html, hidden


def test_values_file_is_read_like_the_chart(values_file):
    r = run("check", "-f", str(values_file))
    assert r.returncode == 0, r.stderr
    assert "1 profile(s), 3 target(s)" in r.stdout
    r = run(
        "render",
        "-f",
        str(values_file),
        "--user",
        "hana",
        "--groups",
        "highrate",
        "-o",
        "target=naples",
        "-o",
        "image=offload",
    )
    assert r.returncode == 0, r.stderr
    pod = json.loads(r.stdout)["pod"]
    assert pod["spec"]["containers"][0]["image"] == "ghcr.io/org/offload:1.0"
    assert pod["metadata"]["labels"]["offload-spawner.io/target"] == "naples"


def test_values_file_without_profiles_uses_the_singleuser_image(tmp_path):
    path = tmp_path / "values.yaml"
    path.write_text(
        textwrap.dedent("""
        hub:
          config:
            JupyterHub: {spawner_class: offload}
        singleuser:
          image: {name: quay.io/jupyter/base-notebook, tag: "2025-01-01"}
          cpu: {limit: 2}
    """)
    )
    r = run("render", "-f", str(path), "--user", "eve")
    assert r.returncode == 0, r.stderr
    container = json.loads(r.stdout)["pod"]["spec"]["containers"][0]
    assert container["image"] == "quay.io/jupyter/base-notebook:2025-01-01"
    assert float(container["resources"]["limits"]["cpu"]) == 2


def test_render_shows_the_automatic_choice_with_a_cluster_file(tmp_path):
    from test_auto_target import auto_config, cluster

    config = tmp_path / "jupyterhub_config.py"
    config.write_text(
        "import json\n"
        "c.JupyterHub.spawner_class = 'offload_spawner.OffloadSpawner'\n"
        f"for key, value in json.loads({json.dumps(auto_config())!r}).items():\n"
        "    setattr(c.OffloadSpawner, key, value)\n"
        "c.OffloadSpawner.offload_auto_target = True\n"
    )
    state = tmp_path / "cluster.json"
    state.write_text(json.dumps(cluster()))
    args = [
        "render",
        "-f",
        str(config),
        "--user",
        "carol",
        "--cluster",
        str(state),
        "-o",
        "profile=gpu",
        "-o",
        "target=auto",
        "-o",
        "accelerator=nvidia.com/gpu:a100",
    ]
    r = run(*args)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["target_choice"]["chosen"] == "beta"
    assert out["target_choice"]["candidates"][0] == {
        "target": "alpha",
        "fits": False,
        "why_not": "All 4 NVIDIA GPU a100 on Site Alpha are in use; try again later or pick another target.",
    }
    assert out["user_options"]["target"] == "beta"
    assert out["pod"]["metadata"]["labels"]["offload-spawner.io/target"] == "beta"
    # Without a cluster file availability is unknown: the first ranked target is chosen.
    r = run(*args[:5], *args[7:])
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["target_choice"]["chosen"] == "alpha"
    # Nothing fits: refused, exit 2, one line.
    r = run(*args, "-o", "cores=64")
    assert r.returncode == 2 and r.stderr.startswith("refused: Any available: no target you may use has room now.")
