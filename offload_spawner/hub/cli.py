"""``offload-spawner``: check a config, render a user's pod, show a user's form,
print the catalog's JSON schema.

Every command runs the spawner's own code (the same class, hooks and pod
manifest the hub uses); nothing here is a second implementation.

Exit codes: 0 ok; 1 invalid configuration or unreadable file; 2 refused selection.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, overload

import yaml

from ..availability.availability import ClusterView, cluster_view
from ..identity.job_refresh import displayed_files
from ..identity.tokens import redacted
from ..pipeline.catalog import CatalogError
from ..pipeline.catalog_help import catalog_schema_document
from ..pipeline.summary import summarize
from .catalog_check import check_catalog
from .config_loader import ConfigLoadError, load_config, spawner_config

if TYPE_CHECKING:
    from traitlets.config import Config

    from ..availability.availability import ClusterView
    from .spawner import OffloadSpawner

#: What the pod shows where the hub would put this server's API token.
TOKEN_PLACEHOLDER = "<redacted: JupyterHub API token>"  # noqa: S105 - a placeholder, no secret

_DUMMY_KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters: [{name: none, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: none, user: {token: none}}]
contexts: [{name: none, context: {cluster: none, user: none}}]
current-context: none
"""


class CliError(Exception):
    def __init__(self, message: str, code: int):
        self.code = code
        super().__init__(message)


@dataclass
class CliGroup:
    name: str


@dataclass
class CliUser:
    """The few user attributes a spawner reads, for a user given on the command line."""

    name: str
    groups: list[CliGroup] = field(default_factory=list)
    id: int = 1
    #: what --auth-state FILE holds (OAuthenticator's auth_state), or None
    auth_state: dict[str, Any] | None = None

    async def get_auth_state(self) -> dict[str, Any] | None:
        return self.auth_state

    @property
    def escaped_name(self) -> str:
        from jupyterhub.utils import url_escape_path

        escaped: str = url_escape_path(self.name)
        return escaped

    @property
    def url(self) -> str:
        return f"/user/{self.escaped_name}/"


_OFFLOAD_NAMES = ("offload", "offload-spawner", "offload_spawner.OffloadSpawner")


class SpawnerSettings:
    """What ``check`` needs of OffloadSpawner: its config sections (MRO) and
    config trait names, without importing KubeSpawner and JupyterHub (seconds
    of imports). Taken from the class once, then read from a cache file keyed
    by the installed spawner modules (see :func:`_offload_settings`)."""

    def __init__(self, name: str, sections: tuple[str, ...], traits: frozenset[str]) -> None:
        self.__name__ = name
        self.sections = sections
        self.traits = traits

    def section_names(self) -> list[str]:
        return list(self.sections)

    def class_traits(self, config: bool = True) -> dict[str, None]:
        return dict.fromkeys(self.traits)


def offload_spawner_class() -> Any:
    """The OffloadSpawner class, imported on first use.

    The command line's one lazy import of the package: ``check`` reads the
    spawner's settings from a cache (:func:`_offload_settings`) and imports
    the spawner module, with KubeSpawner and JupyterHub behind it (seconds),
    only when the cache is stale or the command renders a pod or a form.
    """
    from .spawner import OffloadSpawner

    return OffloadSpawner


def _settings_sources() -> list[Path]:
    """The modules that declare OffloadSpawner's traits: every module of this
    package (its mixins live in several folders), KubeSpawner's, JupyterHub's
    Spawner's and traitlets' (a new version of any of them changes the cache key)."""
    import importlib.util

    sources = sorted(Path(__file__).resolve().parents[1].rglob("*.py"))
    for package, module in (("kubespawner", "spawner.py"), ("jupyterhub", "spawner.py"), ("traitlets", "traitlets.py")):
        spec = importlib.util.find_spec(package)
        for location in (spec.submodule_search_locations or []) if spec is not None else []:
            sources.append(Path(location) / module)
    return sources


def _install_prefix() -> str:
    """The start of this install's cache file names (named by the package's folder)."""
    import hashlib

    return f"spawner-settings-{hashlib.sha256(str(Path(__file__).resolve().parents[1]).encode()).hexdigest()[:8]}-"


def settings_cache_path(cache_dir: Path) -> Path:
    """Where the settings of this install are cached: one file per install and per
    state of its sources (paths, sizes, mtimes)."""
    import hashlib

    stamp = hashlib.sha256()
    for path in _settings_sources():
        if path.exists():
            st = path.stat()
            stamp.update(f"{path}:{st.st_size}:{st.st_mtime_ns};".encode())
    return cache_dir / f"{_install_prefix()}{stamp.hexdigest()[:24]}.json"


def _offload_settings() -> SpawnerSettings:
    """OffloadSpawner's sections and config traits, from the cache when it matches
    the installed modules (their paths, sizes and mtimes), else from the class."""
    cache_dir = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "offload-spawner"
    cache = settings_cache_path(cache_dir)
    try:
        data = json.loads(cache.read_text())
        return SpawnerSettings("OffloadSpawner", tuple(data["sections"]), frozenset(data["traits"]))
    except (OSError, ValueError, KeyError, TypeError):
        pass
    offload_class = offload_spawner_class()
    settings = SpawnerSettings(
        "OffloadSpawner", tuple(offload_class.section_names()), frozenset(offload_class.class_traits(config=True))
    )
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"sections": settings.sections, "traits": sorted(settings.traits)}))
        tmp.replace(cache)
        # This install's earlier entries are stale now: without this, every edit
        # of a source (or reinstall) would leave one more file behind.
        for old in cache_dir.glob(f"{_install_prefix()}*.json"):
            if old != cache:
                old.unlink(missing_ok=True)
    except OSError:
        pass  # a read-only home only costs the imports next time
    return settings


def _configured_spawner(config: Config) -> Any:
    value = config.JupyterHub.get("spawner_class", "offload") if config._has_section("JupyterHub") else "offload"
    return value


def _spawner_class(config: Config) -> type[OffloadSpawner]:
    from traitlets.utils.importstring import import_item

    offload_class = offload_spawner_class()
    value = _configured_spawner(config)
    if isinstance(value, str):
        if value in _OFFLOAD_NAMES:
            value = offload_class
        else:
            try:
                value = import_item(value)
            except Exception as e:  # noqa: BLE001 - any import failure is the admin's config error
                raise CliError(f"cannot import spawner_class {value!r}: {e}", 1) from None
    if not (isinstance(value, type) and issubclass(value, offload_class)):
        raise CliError(f"this config's spawner_class is {value!r}, not OffloadSpawner", 1)
    return value


@overload
def _load(path: str, light: Literal[False] = False) -> tuple[Config, type[OffloadSpawner]]: ...
@overload
def _load(path: str, light: bool) -> tuple[Config, type[OffloadSpawner] | SpawnerSettings]: ...
def _load(path: str, light: bool = False) -> tuple[Config, type[OffloadSpawner] | SpawnerSettings]:
    """The config and its spawner class; ``light``: for the default OffloadSpawner,
    only its :class:`SpawnerSettings` (what ``check`` needs), without the imports."""
    try:
        config = load_config(path)
    except ConfigLoadError as e:
        raise CliError(str(e), 1) from None
    if light and _configured_spawner(config) in _OFFLOAD_NAMES:
        return config, _offload_settings()
    return config, _spawner_class(config)


def _groups(value: str | None) -> list[str]:
    return [g.strip() for g in (value or "").split(",") if g.strip()]


def _options(pairs: list[str]) -> dict[str, str]:
    options = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CliError(f"-o takes KEY=VALUE, not {pair!r}", 2)
        options[key] = value
    return options


def _read_data_file(path: str | None, what: str) -> Any:
    if path is None:
        return None
    try:
        return yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as e:
        raise CliError(f"{what} {path}: {e}", 1) from None


def _make_spawner(config: Config, cls: type[OffloadSpawner], user: CliUser) -> OffloadSpawner:
    """A real spawner for this user, bound to no cluster (no API call is made)."""
    from jupyterhub.objects import Hub

    # The address the Zero-to-JupyterHub chart gives the hub inside the cluster.
    spawner = cls(user=user, hub=Hub(ip="hub", port=8081, base_url="/hub/"), config=config)
    spawner.api_token = TOKEN_PLACEHOLDER
    return spawner


def cmd_check(args: argparse.Namespace) -> str:
    config, cls = _load(args.file, light=True)
    problems = unknown_settings(config, cls)
    try:
        # The settings stand-in has no trait objects: kubespawner_override values
        # are then checked against KubeSpawner's own traits.
        catalog = check_catalog(spawner_config(config, cls), cls if isinstance(cls, type) else None)
    except CatalogError as e:
        problems += e.problems
    if problems:
        raise CliError(str(CatalogError(problems)), 1) from None
    return f"{args.file}: OK\n{summarize(catalog)}\n"


def unknown_settings(config: Config, cls: type[OffloadSpawner] | SpawnerSettings) -> list[str]:
    """Settings in the spawner's config sections that are no trait of it.

    traitlets only warns about them at hub start, and a misspelt trait
    (``group_limit``) would otherwise pass as an empty catalog.
    """
    import difflib

    traits = sorted(cls.class_traits(config=True))
    problems = []
    for section in cls.section_names():
        if not config._has_section(section):
            continue
        for key in config[section]:
            if key in traits or key[:1].isupper():  # a capitalised key is a nested class section
                continue
            close = difflib.get_close_matches(key, traits, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(f"{section}.{key}: not a setting of {cls.__name__}{hint}")
    return problems


async def _render(args: argparse.Namespace) -> dict[str, Any]:
    from jupyterhub.spawner import SpawnException
    from kubernetes_asyncio.client import ApiClient
    from tornado.web import HTTPError

    config, cls = _load(args.file)
    _check_static_catalog(config, cls)
    auth_state = _read_data_file(args.auth_state, "--auth-state")
    if auth_state is not None and not isinstance(auth_state, dict):
        raise CliError(f"--auth-state {args.auth_state}: not a JSON object", 1)
    view = _cluster_view(args.cluster)
    user = CliUser(args.user, [CliGroup(g) for g in _groups(args.groups)], auth_state=auth_state)
    options = _options(args.option)
    spawner = _make_spawner(config, cls, user)
    spawner._static_view = view
    spawner.user_options = options
    try:
        await spawner._run_apply_user_options(options)  # the hub's own hook runner
        await spawner.load_user_options()
        pod = await spawner.get_pod_manifest()
    except (SpawnException, HTTPError) as e:
        message = getattr(e, "jupyterhub_message", None) or getattr(e, "message", None) or e.log_message or str(e)
        raise CliError(f"refused: {message}", 2) from None
    async with ApiClient() as client:
        pod_dict = client.sanitize_for_serialization(pod)
    if spawner._uses_catalog():
        selection, _ = await spawner.plan_for(options)
        options = selection.to_user_options()
    delivery = spawner._token_delivery
    result = {
        "pod": pod_dict,
        # The Secret the hub would create with this server (values redacted).
        "secrets": [redacted(delivery.secret)] if delivery is not None else [],
        "files": displayed_files(await spawner.server_files()),
        "user_options": options,
    }
    choice = spawner._auto_choice
    if choice is not None:
        # target=auto: which target the hub would choose with this cluster state, and why not the others.
        result["target_choice"] = {
            "chosen": choice.chosen.slug if choice.chosen is not None else None,
            "message": choice.message(spawner.offload_auto_target_label),
            "candidates": [
                {"target": c.slug, "fits": c.refusal is None, "why_not": c.refusal} for c in choice.candidates
            ],
        }
    return result


async def _form(args: argparse.Namespace) -> str:
    config, cls = _load(args.file)
    _check_static_catalog(config, cls)
    view = _cluster_view(args.cluster)
    user = CliUser(args.user, [CliGroup(g) for g in _groups(args.groups)])
    spawner = _make_spawner(config, cls, user)
    spawner._static_view = view
    form: str = await spawner.get_options_form()
    return form


def _cluster_view(path: str | None) -> ClusterView:
    """The ``--cluster`` file as the availability logic's cluster view.

    Without the option the CLI knows nothing of the cluster: availability is
    unknown and nothing is refused for it (as on a hub without node access).
    """
    data = _read_data_file(path, "--cluster")
    if path is None:
        return ClusterView(known=False, note="free capacity is not shown (no --cluster file given)")
    if isinstance(data, dict) and isinstance(data.get("items"), list):
        data = data["items"]
    if not isinstance(data, list) or not all(isinstance(o, dict) for o in data):
        raise CliError(f"--cluster {path}: expected a list of Node and Pod objects (or a List with items)", 1)
    kinds = {o.get("kind") for o in data}
    if not kinds <= {"Node", "Pod"}:
        bad = sorted(str(k) for k in kinds - {"Node", "Pod"})[0]
        raise CliError(f"--cluster {path}: expected Node and Pod objects, found kind {bad[:40]!r}", 1)
    return cluster_view(data)


def _check_static_catalog(config: Config, cls: type[OffloadSpawner]) -> None:
    try:
        check_catalog(spawner_config(config, cls), cls)
    except CatalogError as e:
        raise CliError(str(e), 1) from None


def schema_text() -> str:
    """The catalog's JSON schema as ``offload-spawner schema`` prints it and
    docs/catalog.schema.json holds it."""
    return json.dumps(catalog_schema_document(), indent=2, ensure_ascii=False) + "\n"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="offload-spawner", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    check = sub.add_parser("check", help="validate a config and summarize it")
    check.add_argument("-f", "--file", required=True, help="jupyterhub_config.py or Zero-to-JupyterHub values (.yaml)")

    def user_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("-f", "--file", required=True, help="jupyterhub_config.py or Zero-to-JupyterHub values (.yaml)")
        p.add_argument("--user", required=True, help="user name")
        p.add_argument("--groups", default="", help="comma-separated groups of the user")
        p.add_argument("--cluster", help="YAML/JSON list of Node and Pod objects (cluster state)")

    render = sub.add_parser("render", help="print the pod (and secrets, files) a user's selection gives")
    user_args(render)
    render.add_argument("--auth-state", help="JSON auth_state as OAuthenticator stores it")
    render.add_argument(
        "-o", dest="option", action="append", default=[], metavar="KEY=VALUE", help="a user_options entry"
    )
    render.add_argument("--output", choices=["json", "yaml"], default="json")

    form = sub.add_parser("form", help="print the HTML spawn form a user would see")
    user_args(form)

    sub.add_parser("schema", help="print the catalog's JSON schema (docs/catalog.schema.json)")
    return parser


@contextlib.contextmanager
def _offline_kubeconfig() -> Iterator[None]:
    """Point the Kubernetes client at a kubeconfig for a cluster that is not there.

    KubeSpawner loads a kube config when constructed; the commands never call
    the API. The variable must be set before kubernetes_asyncio is imported
    (it reads KUBECONFIG at import), hence here, before anything else.
    """
    saved = {k: os.environ.get(k) for k in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST")}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "offline.kubeconfig")
        path.write_text(_DUMMY_KUBECONFIG)
        os.environ["KUBECONFIG"] = str(path)
        os.environ.pop("KUBERNETES_SERVICE_HOST", None)
        try:
            yield
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    with _offline_kubeconfig():
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    # The spawner logs through traitlets; keep the command's output clean.
    logging.getLogger("traitlets").setLevel(logging.ERROR)
    try:
        if args.command == "check":
            sys.stdout.write(cmd_check(args))
        elif args.command == "render":
            result = asyncio.run(_render(args))
            if args.output == "yaml":
                sys.stdout.write(yaml.safe_dump(result, sort_keys=False))
            else:
                sys.stdout.write(json.dumps(result, indent=2) + "\n")
        elif args.command == "form":
            sys.stdout.write(asyncio.run(_form(args)) + "\n")
        elif args.command == "schema":
            sys.stdout.write(schema_text())
    except CliError as e:
        message = str(e) if e.code != 2 else str(e).replace("\n", " ")
        sys.stderr.write(message + "\n")
        return e.code
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
