"""The access-token refresher in the job: what a server that opts in receives.

interLink sends a pod's Secrets to its plugin once, when it creates the remote
job (interLink/pkg/virtualkubelet/execute.go, remoteExecutionHandleVolumes, reads
them into the create request; UpdatePod in virtualkubelet.go sends nothing to
the plugin), so the hub's rotation of
the server's Secret (offload_spawner.identity.token_delivery) never reaches a running
remote job. A target with ``tokens.refresh_in_job`` instead ships
:mod:`offload_spawner.identity.job_token_refresher` (a standard-library program) and its
configuration as files of the server's Secret, and starts the server's command
through it (argv form: admin text only, no shell):

* files under :data:`REFRESHER_DIR`: the program and ``refresher.json``
  (token endpoint, client id, the client secret only when the admin set one),
  each under its Secret key's name (:func:`in_container`): interLink's SLURM
  plugin ignores a Secret volume's ``items`` and binds every key of the
  Secret under its own name (interlink-slurm-plugin/pkg/slurm/prepare.go,
  mountDataSimpleVolume), so only a file named as its key is found at the
  same path there and on a kubelet;
* an emptyDir at :data:`FRESH_DIR`, where the refresher keeps the renewed
  access token (and the rotated refresh token); ``BEARER_TOKEN_FILE`` points
  there instead of at the read-only Secret file;
* the container's command becomes ``[python, program, config, access token
  file, refresh token file, FRESH_DIR, "--", *command]`` (its args stay as
  they are).

Pure functions of plain data; the spawner (job_refresh_spawner.py) does the I/O.
"""

from __future__ import annotations

import functools
import json
import posixpath
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from ..pipeline.catalog import RefreshInJob
from .server_secret import ACCESS_TOKEN_KEY, REFRESH_TOKEN_KEY, TOKEN_DIR, file_key
from .tokens import BEARER_TOKEN_FILE_ENV

#: Where the program and its configuration are mounted (from the server's Secret).
REFRESHER_DIR = "/var/run/offload-spawner-refresher"
#: Their paths as server files (what the Secret's keys are made from).
PROGRAM_PATH = posixpath.join(REFRESHER_DIR, "job_token_refresher.py")
CONFIG_PATH = posixpath.join(REFRESHER_DIR, "refresher.json")


def in_container(path: str) -> str:
    """Where the server file ``path`` under REFRESHER_DIR is found in the container:
    under its Secret key's name (see the module doc)."""
    return posixpath.join(REFRESHER_DIR, file_key(path))


PROGRAM_FILE = in_container(PROGRAM_PATH)
CONFIG_FILE = in_container(CONFIG_PATH)
#: The writable directory (an emptyDir) holding the renewed tokens.
FRESH_DIR = "/var/run/offload-spawner-fresh"
FRESH_VOLUME = "offload-fresh-tokens"
FRESH_ACCESS_TOKEN = posixpath.join(FRESH_DIR, ACCESS_TOKEN_KEY)


class JobRefreshError(ValueError):
    """The refresher cannot be set up for this server; the message says why (no secret in it)."""


@dataclass(frozen=True)
class JobRefreshParts:
    """What the pod gets besides the files: the emptyDir, env and the command's prefix."""

    volumes: list[dict[str, Any]] = field(default_factory=list)
    volume_mounts: list[dict[str, Any]] = field(default_factory=list)
    env: list[dict[str, Any]] = field(default_factory=list)
    command_prefix: list[str] = field(default_factory=list)


@functools.cache
def program_source() -> str:
    """The refresher program's text, as shipped in this package."""
    return resources.files("offload_spawner.identity").joinpath("job_token_refresher.py").read_text()


def refresher_config(settings: RefreshInJob, token_url: str | None) -> dict[str, Any]:
    """The program's configuration; ``token_url``: the hub's token endpoint, used
    when the settings name none."""
    url = settings.token_url or token_url
    if not url:
        raise JobRefreshError(
            "tokens.refresh_in_job has no token_url and the hub's authenticator has no token endpoint yet"
        )
    if not url.startswith(("https://", "http://")):
        raise JobRefreshError("the token endpoint for the job's refresher is not an http(s) URL")
    config: dict[str, Any] = {"token_url": url, "client_id": settings.client_id, "refresh_at": settings.refresh_at}
    if settings.client_secret is not None:
        config["client_secret"] = settings.client_secret.get_secret_value()
    return config


def refresher_files(settings: RefreshInJob, token_url: str | None) -> dict[str, str]:
    """Absolute path -> content of the files the server's Secret carries for the refresher."""
    return {
        PROGRAM_PATH: program_source(),
        CONFIG_PATH: json.dumps(refresher_config(settings, token_url), indent=1, sort_keys=True) + "\n",
    }


def displayed_files(files: dict[str, str]) -> dict[str, str]:
    """``files`` for display (``offload-spawner render``): the refresher program
    by its size, the client secret in its configuration redacted."""
    shown = dict(files)
    if PROGRAM_PATH in shown:
        shown[PROGRAM_PATH] = f"<the token refresher program, {len(shown[PROGRAM_PATH].encode())} bytes>"
    if CONFIG_PATH in shown:
        config = json.loads(shown[CONFIG_PATH])
        if "client_secret" in config:
            config["client_secret"] = f"<redacted: {len(str(config['client_secret']).encode())} bytes>"
        shown[CONFIG_PATH] = json.dumps(config, indent=1, sort_keys=True) + "\n"
    return shown


def job_refresh_parts(settings: RefreshInJob) -> JobRefreshParts:
    """The emptyDir for the fresh tokens, BEARER_TOKEN_FILE pointing into it, and
    the command prefix that starts the server through the refresher."""
    return JobRefreshParts(
        volumes=[{"name": FRESH_VOLUME, "emptyDir": {}}],
        volume_mounts=[{"name": FRESH_VOLUME, "mountPath": FRESH_DIR}],
        env=[{"name": BEARER_TOKEN_FILE_ENV, "value": FRESH_ACCESS_TOKEN}],
        command_prefix=[
            settings.python,
            PROGRAM_FILE,
            CONFIG_FILE,
            posixpath.join(TOKEN_DIR, ACCESS_TOKEN_KEY),
            posixpath.join(TOKEN_DIR, REFRESH_TOKEN_KEY),
            FRESH_DIR,
            "--",
        ],
    )


def key_named(items: list[dict[str, str]]) -> list[dict[str, str]]:
    """A Secret volume's ``items`` with every file named as its key (see the module doc)."""
    return [{**item, "path": item["key"]} for item in items]


def wrapped_command(prefix: list[str], command: list[str] | None, args: list[str] | None) -> list[str]:
    """The container's new ``command``: the refresher, then the original command.

    Kubernetes runs ``command + args``; without a command the image's ENTRYPOINT
    runs the args, which the refresher cannot see, so then the args themselves are
    the program it starts (KubeSpawner puts the server's cmd into ``args``).
    """
    if not command and not args:
        raise JobRefreshError(
            "the server's container has no command for the refresher to start: set the spawner's cmd "
            "(singleuser.cmd in Zero-to-JupyterHub, default jupyterhub-singleuser)"
        )
    return [*prefix, *(command or [])]


__all__ = [
    "CONFIG_FILE",
    "CONFIG_PATH",
    "FRESH_ACCESS_TOKEN",
    "FRESH_DIR",
    "FRESH_VOLUME",
    "PROGRAM_FILE",
    "PROGRAM_PATH",
    "REFRESHER_DIR",
    "JobRefreshError",
    "JobRefreshParts",
    "displayed_files",
    "in_container",
    "job_refresh_parts",
    "key_named",
    "program_source",
    "refresher_config",
    "refresher_files",
    "wrapped_command",
]
