"""The private KubeSpawner and JupyterHub attributes offload_spawner still uses.

Each one has no public equivalent (the reason is next to it). When an upgrade
of the pinned upstream renames one or changes its shape, the test for it fails
and says which of our modules depends on it, rather than a spawn failing later.
The supported version range is in README.md ("Supported versions") and in
setup.cfg.

A test in ``test_no_other_private_upstream_attribute`` fails when a module
starts using another private upstream attribute without adding it here.
"""

from __future__ import annotations

import ast
import inspect
from importlib.metadata import version
from pathlib import Path

import pytest
from jupyterhub.spawner import Spawner
from kubespawner import KubeSpawner

PACKAGE = Path(__file__).resolve().parents[1] / "offload_spawner"
VERSIONS = f"jupyterhub {version('jupyterhub')}, jupyterhub-kubespawner {version('jupyterhub-kubespawner')}"

#: name -> (owner class, what it must be, its parameters after self, our modules using it, why no public one serves)
PRIVATE = {
    "_start": (
        KubeSpawner,
        "async",
        [],
        ["auto_spawn.py", "remote_session.py"],
        "start() returns _start() wrapped in a timeout; ending a spawn early on a remote failure needs "
        "to race the coroutine that creates and waits for the pod",
    ),
    "_make_create_pod_request": (
        KubeSpawner,
        "async",
        ["pod", "request_timeout"],
        ["token_delivery.py", "remote_session.py", "dask_placement_secret.py", "api_outage.py"],
        "the token Secret and the Dask placement Secret need the created pod's uid (ownerReference), "
        "right after the create call; a create the API server cannot answer yet is tried again",
    ),
    "_make_delete_pod_request": (
        KubeSpawner,
        "async",
        ["pod_name", "delete_options", "grace_seconds", "request_timeout"],
        ["api_outage.py"],
        "a delete the API server cannot answer yet (restarting) is tried again, not given up on",
    ),
    "_start_watching_pods": (
        KubeSpawner,
        "async",
        ["replace"],
        ["remote_session.py"],
        "the remote-failure watcher reads KubeSpawner's own pod reflector rather than a second watch",
    ),
    "_start_watching_events": (
        KubeSpawner,
        "async",
        ["replace"],
        ["remote_session.py"],
        "the same, for the event reflector that carries interLink's reasons",
    ),
    "_apply_overrides": (
        KubeSpawner,
        "sync",
        ["spawner_override"],
        ["spawner.py"],
        "kubespawner_override semantics (dicts merged, None deletes) for a target's and profile's overrides",
    ),
    "_run_apply_user_options": (
        Spawner,
        "async",
        ["user_options"],
        ["cli.py"],
        "the CLI runs the apply_user_options hook exactly as JupyterHub's User.spawn does (dict or callable)",
    ),
    "_log_name": (
        Spawner,
        "property",
        None,
        ["auto_spawn.py", "remote_session.py"],
        "the server's name in log lines, as JupyterHub writes it",
    ),
}


def _used_private_attributes() -> dict[str, set[str]]:
    """Private attribute names our spawner reads on itself (``self``/``super()``
    inside OffloadSpawner's classes, ``spawner`` anywhere) -> modules."""
    from offload_spawner.hub.spawner import OffloadSpawner

    spawner_classes = {c.__name__ for c in OffloadSpawner.__mro__ if c.__module__.startswith("offload_spawner")}
    used: dict[str, set[str]] = {}

    def visit(node: ast.AST, path: Path, in_spawner: bool) -> None:
        if isinstance(node, ast.ClassDef):
            in_spawner = node.name in spawner_classes
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            base = node.value
            is_super = isinstance(base, ast.Call) and getattr(base.func, "id", None) == "super"
            is_self = isinstance(base, ast.Name) and base.id == "self"
            if (in_spawner and (is_super or is_self)) or (isinstance(base, ast.Name) and base.id == "spawner"):
                used.setdefault(node.attr, set()).add(path.name)
        for child in ast.iter_child_nodes(node):
            visit(child, path, in_spawner)

    for path in PACKAGE.rglob("*.py"):
        visit(ast.parse(path.read_text()), path, False)
    return used


@pytest.mark.parametrize("name", sorted(PRIVATE))
def test_private_upstream_attribute_is_still_there(name):
    owner, kind, params, modules, why = PRIVATE[name]
    where = f"{owner.__module__}.{owner.__name__}.{name}"
    advice = (
        f"{where} changed in {VERSIONS}; offload_spawner/{', offload_spawner/'.join(modules)} "
        f"rely on it ({why}). Adapt them, or keep the upstream version within README's supported range."
    )
    assert hasattr(owner, name), f"{where} is gone: {advice}"
    value = inspect.getattr_static(owner, name)
    if kind == "property":
        assert isinstance(value, property), f"{where} is no longer a property: {advice}"
        return
    assert inspect.isfunction(value), f"{where} is no longer a method: {advice}"
    assert inspect.iscoroutinefunction(value) == (kind == "async"), f"{where} is no longer {kind}: {advice}"
    got = [p for p in inspect.signature(value).parameters if p != "self"]
    assert got == params, f"{where} now takes {got}, not {params}: {advice}"


def test_the_list_names_the_modules_that_use_each_attribute():
    used = _used_private_attributes()
    for name, (_, _, _, modules, _) in PRIVATE.items():
        assert used.get(name, set()) == set(modules), f"{name}: used in {sorted(used.get(name, set()))}"


def test_no_other_private_upstream_attribute():
    """A private KubeSpawner/JupyterHub attribute used but not listed above fails here."""
    upstream = set()
    for cls in KubeSpawner.__mro__:
        if cls.__module__.startswith(("kubespawner", "jupyterhub")):
            upstream |= {n for n in vars(cls) if n.startswith("_") and not n.startswith("__")}
    # Overriding a traitlets @default/@observe handler is how traits are configured, not private use.
    handlers = {n for n in upstream if n.endswith("_default") or n.startswith("_default_")}
    unlisted = {
        name: sorted(modules)
        for name, modules in _used_private_attributes().items()
        if name in upstream and name not in PRIVATE and name not in handlers
    }
    assert unlisted == {}, "private upstream attributes in use: list each in PRIVATE with why, or use a public one"


def test_jupyterhub_awaits_run_options_from_form():
    """OffloadSpawner.run_options_from_form is async (it reads the catalog, which a
    callable profile_list makes async); JupyterHub's form handler awaits whatever
    it returns (jupyterhub/handlers/pages.py, SpawnHandler.post)."""
    from jupyterhub.handlers.pages import SpawnHandler

    source = inspect.getsource(SpawnHandler)
    assert "await maybe_future(spawner.run_options_from_form(" in source, (
        f"SpawnHandler.post no longer awaits run_options_from_form in {VERSIONS}: "
        "offload_spawner/hub/spawner.py's run_options_from_form must become sync again"
    )
