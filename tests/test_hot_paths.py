"""The shortcuts the hot paths take give the same answers as the long way."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from offload_spawner.pipeline.catalog import build_catalog
from offload_spawner.pipeline.menu import build_menu


def test_one_profile_menu_is_that_profile_of_the_whole_menu(contract_config):
    catalog = build_catalog(**contract_config)
    for groups in (["cms"], ["highrate", "gpu-users"], ["ai-infn", "cms", "gpu-users"], []):
        whole = build_menu(catalog, groups)
        for profile in catalog.profile_list:
            one = build_menu(catalog, groups, only_profile=profile.resolved_slug)
            assert one.profiles == tuple(p for p in whole.profiles if p.slug == profile.resolved_slug)
        assert build_menu(catalog, groups, only_profile="no-such-profile").profiles == ()


def test_check_does_not_import_kubespawner_or_jupyterhub(contract_file, tmp_path):
    """`offload-spawner check` answers from OffloadSpawner's settings, cached per
    installed version, without seconds of KubeSpawner/JupyterHub imports (a
    config with kubespawner_override values needs KubeSpawner's traits to check
    them: this one has none)."""
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    contract_file.write_text(
        'c.JupyterHub.spawner_class = "offload"\n'
        'c.OffloadSpawner.offload_targets = {"cluster": {"display_name": "This cluster"}}\n'
        'c.OffloadSpawner.profile_list = [{"display_name": "Plain", "cores": {"choices": [1, 2]}}]\n'
    )
    probe = (
        "import sys; from offload_spawner.hub.cli import main; code = main(['check', '-f', sys.argv[1]]);"
        "heavy = sorted(m for m in ('kubespawner', 'jupyterhub', 'kubernetes_asyncio') if m in sys.modules);"
        "print('HEAVY', ','.join(heavy)); sys.exit(code)"
    )
    first = subprocess.run([sys.executable, "-c", probe, str(contract_file)], env=env, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    assert "OK" in first.stdout
    second = subprocess.run([sys.executable, "-c", probe, str(contract_file)], env=env, capture_output=True, text=True)
    assert second.returncode == 0, second.stderr
    assert second.stdout.splitlines()[-1] == "HEAVY ", second.stdout
    assert second.stdout.split("HEAVY")[0] == first.stdout.split("HEAVY")[0]  # same answer


def test_check_with_the_cache_still_names_a_misspelt_setting(contract_file, tmp_path):
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    contract_file.write_text(contract_file.read_text() + "\nc.OffloadSpawner.group_limit = {}\n")
    for _ in range(2):  # without, then with the cache
        r = subprocess.run(
            [sys.executable, "-m", "offload_spawner.hub.cli", "check", "-f", str(contract_file)],
            env=env,
            capture_output=True,
            text=True,
        )
        assert r.returncode == 1
        assert "OffloadSpawner.group_limit: not a setting of OffloadSpawner (did you mean 'group_limits'?)" in r.stderr


async def test_plan_for_answers_anew_when_groups_or_options_change(contract_config):
    """plan_for remembers its last answer; a change of the user's groups or of the
    options (also in place) must not get the remembered one."""
    import pytest
    from jupyterhub.objects import Hub
    from jupyterhub.spawner import SpawnException

    from offload_spawner.hub.cli import CliGroup, CliUser
    from offload_spawner.hub.spawner import OffloadSpawner

    user = CliUser("alice", [CliGroup("ai-infn"), CliGroup("gpu-users")])
    spawner = OffloadSpawner(user=user, hub=Hub(ip="hub", port=8081))
    for key, value in contract_config.items():
        setattr(spawner, key, value)
    options = {"profile": "analysis", "target": "leonardo", "accelerator": "nvidia.com/gpu:a100"}
    with pytest.raises(SpawnException):  # analysis is for cms and highrate
        await spawner.plan_for(options)
    user.groups.append(CliGroup("cms"))
    selection, _plan = await spawner.plan_for(options)
    assert selection.accelerator_count == 1
    options["accelerator_count"] = 2  # in place
    selection, _ = await spawner.plan_for(options)
    assert selection.accelerator_count == 2
    user.groups[:] = [CliGroup("cms")]
    with pytest.raises(SpawnException):  # leonardo is for ai-infn
        await spawner.plan_for(options)


def test_the_settings_cache_key_covers_every_module_that_declares_a_trait():
    """The cache of `check` must go stale when any of OffloadSpawner's classes
    changes: its mixins live in several folders of the package, not only beside
    the command line."""
    import inspect

    from offload_spawner.hub.cli import _settings_sources
    from offload_spawner.hub.spawner import OffloadSpawner

    sources = {p.resolve() for p in _settings_sources()}
    declaring = {
        Path(inspect.getfile(cls)).resolve()
        for cls in OffloadSpawner.__mro__
        if cls.__module__.startswith(("offload_spawner", "kubespawner", "jupyterhub"))
    }
    assert any("/dask/" in str(p) for p in declaring)  # the layout this guards
    assert declaring - sources == set()


def test_the_settings_cache_keeps_one_file_per_install(tmp_path, monkeypatch):
    from offload_spawner.hub import cli

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    cache_dir = tmp_path / "offload-spawner"
    cache_dir.mkdir()
    current = cli.settings_cache_path(cache_dir)
    stale = cache_dir / f"{cli._install_prefix()}{'0' * 24}.json"
    stale.write_text("{}")
    other_install = cache_dir / f"spawner-settings-ffffffff-{'0' * 24}.json"
    other_install.write_text("{}")

    settings = cli._offload_settings()

    assert "group_limits" in settings.traits
    assert current.exists()
    assert not stale.exists()
    assert other_install.exists()
