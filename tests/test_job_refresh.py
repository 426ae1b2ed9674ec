"""``tokens.refresh_in_job``: the settings, what the pod and its Secret get, and
the refusals (the program itself: test_job_refresher.py)."""

from __future__ import annotations

import json

import kubernetes_validate
import pytest

from offload_spawner.identity.job_refresh import (
    CONFIG_FILE,
    CONFIG_PATH,
    FRESH_ACCESS_TOKEN,
    PROGRAM_FILE,
    PROGRAM_PATH,
    JobRefreshError,
    displayed_files,
    job_refresh_parts,
    program_source,
    refresher_config,
    refresher_files,
    wrapped_command,
)
from offload_spawner.pipeline.catalog import CatalogError, RefreshInJob, TokenPolicy, build_catalog
from test_cli import run
from test_cli_tokens import RENDER, auth_state_file, no_token_in  # noqa: F401 - a fixture

HUB_TOKEN_URL = "https://iam.example.org/token"
SECRET = "job-client-secret-value"
#: the delivered token files and the writable directory, as the refresher's arguments
TOKEN_PATHS = [
    "/var/run/secrets/offload-spawner/access_token",
    "/var/run/secrets/offload-spawner/refresh_token",
    "/var/run/offload-spawner-fresh",
]
GOOD = {"refresh_token": True, "refresh_in_job": {"client_id": "jobs"}}


def target(tokens: dict) -> dict:
    return {"t": {"display_name": "T", "backend": "slurm", "node": "vk-t", "tokens": tokens}}


def test_settings_opt_in_per_target():
    catalog = build_catalog(None, target(GOOD))
    settings = catalog.offload_targets["t"].tokens.refresh_in_job
    assert settings == RefreshInJob(client_id="jobs")
    assert settings.refresh_at == 0.75 and settings.python == "python3" and settings.client_secret is None
    assert TokenPolicy().refresh_in_job is None  # off unless a target opts in


@pytest.mark.parametrize(
    ("tokens", "message"),
    [
        ({"refresh_in_job": {"client_id": "jobs"}}, "refresh_in_job needs refresh_token: true"),
        ({**GOOD, "access_token": {"env": True, "file": False}}, "refresh_in_job needs access_token.file: true"),
        (
            {"access_token": {"file": False}, "refresh_in_job": {"client_id": "jobs"}},
            "access_token.file: true (the refresher renews the token file) and refresh_token: true",
        ),
        ({**GOOD, "refresh_in_job": {}}, "offload_targets.t.tokens.refresh_in_job.client_id"),
        ({**GOOD, "refresh_in_job": {"client_id": "a b"}}, "offload_targets.t.tokens.refresh_in_job.client_id"),
        ({**GOOD, "refresh_in_job": {"client_id": "j", "refresh_at": 1}}, "refresh_in_job.refresh_at"),
        ({**GOOD, "refresh_in_job": {"client_id": "j", "refresh_at": 0}}, "refresh_in_job.refresh_at"),
        ({**GOOD, "refresh_in_job": {"client_id": "j", "token_url": "file:///etc/passwd"}}, "refresh_in_job.token_url"),
        ({**GOOD, "refresh_in_job": {"client_id": "j", "python": "python3; rm -rf /"}}, "refresh_in_job.python"),
        ({**GOOD, "refresh_in_job": {"client_id": "j", "python": "-c"}}, "refresh_in_job.python"),
        ({**GOOD, "refresh_in_job": {"client_id": "j", "cliend_secret": "x"}}, "refresh_in_job.cliend_secret"),
    ],
)
def test_bad_settings_are_refused_at_check_time(tokens, message):
    with pytest.raises(CatalogError) as e:
        build_catalog(None, target(tokens))
    assert message in str(e.value)
    assert "offload_targets.t.tokens" in str(e.value)


def test_the_client_secret_is_never_shown():
    settings = RefreshInJob(client_id="jobs", client_secret=SECRET)
    assert SECRET not in repr(settings) and SECRET not in str(settings)
    assert SECRET not in settings.model_dump_json()
    assert refresher_config(settings, HUB_TOKEN_URL)["client_secret"] == SECRET  # only in the job's file


def test_refresher_config_uses_the_hubs_token_endpoint_unless_one_is_named():
    config = refresher_config(RefreshInJob(client_id="jobs"), HUB_TOKEN_URL)
    assert config == {"token_url": HUB_TOKEN_URL, "client_id": "jobs", "refresh_at": 0.75}
    named = RefreshInJob(client_id="jobs", token_url="https://site-iam.example.org/token")
    assert refresher_config(named, HUB_TOKEN_URL)["token_url"] == "https://site-iam.example.org/token"
    with pytest.raises(JobRefreshError, match="no token_url"):
        refresher_config(RefreshInJob(client_id="jobs"), None)


def test_the_files_hold_the_program_and_its_configuration():
    files = refresher_files(RefreshInJob(client_id="jobs"), HUB_TOKEN_URL)
    assert set(files) == {PROGRAM_PATH, CONFIG_PATH}
    assert files[PROGRAM_PATH] == program_source()
    assert json.loads(files[CONFIG_PATH])["client_id"] == "jobs"
    shown = displayed_files(
        {**files, "/etc/dask/x.yaml": "a: 1"},
    )
    assert shown["/etc/dask/x.yaml"] == "a: 1"
    assert shown[PROGRAM_PATH].startswith("<the token refresher program")


def test_displayed_files_redact_the_client_secret():
    files = refresher_files(RefreshInJob(client_id="jobs", client_secret=SECRET), HUB_TOKEN_URL)
    shown = displayed_files(files)
    assert SECRET not in json.dumps(shown)
    assert json.loads(shown[CONFIG_PATH])["client_secret"] == f"<redacted: {len(SECRET)} bytes>"


def test_the_command_is_wrapped_in_argv_form():
    parts = job_refresh_parts(RefreshInJob(client_id="jobs", python="/opt/conda/bin/python"))
    prefix = ["/opt/conda/bin/python", PROGRAM_FILE, CONFIG_FILE, *TOKEN_PATHS, "--"]
    assert parts.command_prefix == prefix
    # KubeSpawner puts the server's cmd into args: Kubernetes runs command + args.
    assert wrapped_command(parts.command_prefix, None, ["jupyterhub-singleuser"]) == prefix
    assert wrapped_command(parts.command_prefix, ["tini", "--"], ["start.sh"]) == [*prefix, "tini", "--"]
    with pytest.raises(JobRefreshError, match="no command for the refresher to start: set the spawner's cmd"):
        wrapped_command(parts.command_prefix, None, None)
    assert parts.env == [{"name": "BEARER_TOKEN_FILE", "value": FRESH_ACCESS_TOKEN}]
    assert parts.volumes == [{"name": "offload-fresh-tokens", "emptyDir": {}}]


def test_the_program_imports_only_the_standard_library():
    import ast
    import sys

    tree = ast.parse(program_source())
    imported = {
        alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
    }
    imported |= {
        node.module.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0
    }
    assert imported - {"__future__"} <= sys.stdlib_module_names


# --- the pod, through `offload-spawner render` (the real spawner's get_pod_manifest) ------------


def _opt_in(contract_file, tokens: dict, cmd: list[str] | None = ["jupyterhub-singleuser"]) -> None:  # noqa: B006
    contract_file.write_text(
        contract_file.read_text()
        + f'\nc.OffloadSpawner.offload_targets["leonardo"]["tokens"] = {tokens!r}\n'
        + f"c.OffloadSpawner.cmd = {cmd!r}\n"
    )


def test_render_a_server_that_renews_its_token(contract_file, auth_state_file):  # noqa: F811
    _opt_in(
        contract_file,
        {
            "refresh_token": True,
            "refresh_in_job": {"client_id": "jobs", "client_secret": SECRET, "token_url": HUB_TOKEN_URL},
        },
    )
    r = run("render", "-f", str(contract_file), *RENDER, "--auth-state", str(auth_state_file))
    assert r.returncode == 0, r.stderr
    no_token_in(r.stdout + r.stderr)
    assert SECRET not in r.stdout + r.stderr
    out = json.loads(r.stdout)
    pod = out["pod"]
    kubernetes_validate.validate(pod, desired_version="1.34", strict=True)
    container = pod["spec"]["containers"][0]
    assert container["command"] == ["python3", PROGRAM_FILE, CONFIG_FILE, *TOKEN_PATHS, "--"]
    assert container["args"][0] == "jupyterhub-singleuser"  # KubeSpawner's cmd + args, unchanged
    env = {e["name"]: e for e in container["env"]}
    assert env["BEARER_TOKEN_FILE"] == {"name": "BEARER_TOKEN_FILE", "value": FRESH_ACCESS_TOKEN}
    assert [e["name"] for e in container["env"]].count("BEARER_TOKEN_FILE") == 1
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/var/run/offload-spawner-fresh"]["name"] == "offload-fresh-tokens"
    assert mounts["/var/run/offload-spawner-refresher"]["readOnly"] is True
    # Each file under its Secret key's name, where interLink's SLURM plugin also puts it (it ignores items).
    [refresher_volume] = [
        v for v in pod["spec"]["volumes"] if v["name"] == mounts["/var/run/offload-spawner-refresher"]["name"]
    ]
    items = refresher_volume["secret"]["items"]
    assert {i["path"] for i in items} == {PROGRAM_FILE.rsplit("/", 1)[1], CONFIG_FILE.rsplit("/", 1)[1]}
    assert all(i["path"] == i["key"] for i in items)
    assert mounts["/var/run/secrets/offload-spawner"]["readOnly"] is True
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes["offload-fresh-tokens"] == {"name": "offload-fresh-tokens", "emptyDir": {}}
    # the program and its configuration travel in the server's Secret, never in the pod
    [secret] = out["secrets"]
    assert {"access_token", "refresh_token"} <= set(secret["data"])
    assert sum(key.startswith("file.") for key in secret["data"]) == 2
    assert json.loads(out["files"][CONFIG_PATH])["client_id"] == "jobs"
    assert "job_token_refresher" not in json.dumps(pod["metadata"])


def test_render_without_a_token_endpoint_is_refused(contract_file, auth_state_file):  # noqa: F811
    _opt_in(contract_file, {"refresh_token": True, "refresh_in_job": {"client_id": "jobs"}})
    r = run("render", "-f", str(contract_file), *RENDER, "--auth-state", str(auth_state_file))
    assert r.returncode == 2, r.stdout
    assert "cannot set up the renewal of its access token on this site (tokens.refresh_in_job has no token_url" in (
        r.stderr
    )


def test_render_without_a_command_to_wrap_is_refused(contract_file, auth_state_file):  # noqa: F811
    # Without the spawner's cmd the image's own CMD runs, which the refresher cannot know.
    _opt_in(
        contract_file,
        {"refresh_token": True, "refresh_in_job": {"client_id": "j", "token_url": HUB_TOKEN_URL}},
        cmd=None,
    )
    r = run("render", "-f", str(contract_file), *RENDER, "--auth-state", str(auth_state_file))
    assert r.returncode == 2, r.stdout
    assert "no command for the refresher to start: set the spawner's cmd" in r.stderr


def test_targets_without_the_setting_are_unchanged(contract_file, auth_state_file):  # noqa: F811
    _opt_in(contract_file, {"refresh_token": True})
    r = run("render", "-f", str(contract_file), *RENDER, "--auth-state", str(auth_state_file))
    assert r.returncode == 0, r.stderr
    container = json.loads(r.stdout)["pod"]["spec"]["containers"][0]
    assert "command" not in container
    assert {e["name"]: e for e in container["env"]}["BEARER_TOKEN_FILE"]["value"] == (
        "/var/run/secrets/offload-spawner/access_token"
    )


def test_check_refuses_refresh_in_job_without_the_refresh_token(contract_file):
    _opt_in(contract_file, {"refresh_in_job": {"client_id": "jobs", "token_url": HUB_TOKEN_URL}})
    r = run("check", "-f", str(contract_file))
    assert r.returncode == 1
    assert "offload_targets.leonardo.tokens" in r.stderr
    assert "refresh_in_job needs refresh_token: true" in r.stderr
    assert r.stdout == ""
