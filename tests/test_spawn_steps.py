"""The spawn's steps: in spawner.py, in order, into one PreparedSpawn.

``load_user_options`` (KubeSpawner's first step of ``_start``) prepares a spawn
in named steps whose outputs go into one :class:`PreparedSpawn`; the spawner's
parts read it rather than attributes each part sets by convention, and the
hooks that TokenDeliveryMixin asks are answered by name in OffloadSpawner.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from jupyterhub.objects import Hub
from traitlets.config import Config

from offload_spawner.hub.cli import CliUser
from offload_spawner.hub.prepared_spawn import PreparedSpawn
from offload_spawner.hub.spawner import OffloadSpawner
from offload_spawner.identity.fresh_login import FreshLoginMixin
from offload_spawner.identity.job_refresh_spawner import JobRefreshMixin
from offload_spawner.spawn_errors import refusal

ROOT = Path(__file__).resolve().parents[1]

#: the steps of load_user_options, in the order spawner.py lists them
STEPS = ["_checked_selection", "_apply_plan_to_traits", "_site_uid_for", "_dask_config_for", "_admit"]

CONFIG = {
    "namespace": "jhub",
    "offload_availability": False,
    "profile_list": [{"display_name": "Notebook", "cores": {"choices": [1, 2], "default": 1}}],
    "offload_targets": {
        "site": {
            "display_name": "Site",
            "backend": "slurm",
            "node": "vk-site",
            "hub_api_url": "http://hub.example.org:8081/hub/api",
            "network": "wstunnel",
            "dask": {"worker_cores": 1, "worker_memory": "2G"},
        },
    },
}


class Recording(OffloadSpawner):
    """OffloadSpawner whose steps note that they ran (and then do what they do)."""

    def __init__(self, *args, fail_at: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.ran: list[str] = []
        self.fail_at = fail_at

    def _note(self, step: str) -> None:
        self.ran.append(step)
        if step == self.fail_at:
            raise refusal(f"{step} refused")

    async def _checked_selection(self):
        self._note("_checked_selection")
        return await super()._checked_selection()

    async def _apply_plan_to_traits(self, plan):
        self._note("_apply_plan_to_traits")
        return await super()._apply_plan_to_traits(plan)

    async def _site_uid_for(self, plan):
        self._note("_site_uid_for")
        return await super()._site_uid_for(plan)

    async def _dask_config_for(self, plan):
        self._note("_dask_config_for")
        return await super()._dask_config_for(plan)

    async def _admit(self, selection, plan, reserve):
        self._note("_admit")
        return await super()._admit(selection, plan, reserve)


def _spawner(**kwargs) -> Recording:
    config = Config()
    config.OffloadSpawner.update(CONFIG)
    spawner = Recording(user=CliUser("hana"), hub=Hub(ip="hub", port=8081, base_url="/hub/"), config=config, **kwargs)
    spawner.user_options = {"profile": "notebook", "target": "site", "cores": "2"}
    return spawner


async def test_load_user_options_runs_the_steps_in_order_into_one_prepared_spawn():
    spawner = _spawner()
    await spawner.load_user_options()
    assert spawner.ran == STEPS
    prepared = spawner._prepared
    assert isinstance(prepared, PreparedSpawn)
    assert prepared.selection.target == "site" and prepared.selection.cores == 2
    assert prepared.plan.target == "site" and prepared.plan.offload == "session"
    assert prepared.site_uid is None  # the target asks for no UID
    assert prepared.dask is not None and prepared.dask.files
    # what the parts read is the prepared spawn's
    assert spawner._plan is prepared.plan and spawner._dask is prepared.dask
    assert await spawner.server_files() == prepared.dask.files
    assert spawner.cpu_limit == 2  # step 2: the plan is on KubeSpawner's traits


@pytest.mark.parametrize("step", STEPS)
async def test_a_refused_step_prepares_nothing_and_runs_no_later_step(step):
    spawner = _spawner(fail_at=step)
    with pytest.raises(Exception, match=f"{step} refused"):
        await spawner.load_user_options()
    assert spawner.ran == STEPS[: STEPS.index(step) + 1]
    assert spawner._prepared is None and spawner._plan is None
    assert await spawner.server_files() == {}


async def test_a_new_spawn_never_sees_the_last_ones_preparation():
    spawner = _spawner()
    await spawner.load_user_options()
    assert spawner._prepared is not None
    spawner.fail_at = "_checked_selection"
    with pytest.raises(Exception, match="refused"):
        await spawner.load_user_options()
    assert spawner._prepared is None


def test_the_hooks_token_delivery_asks_are_answered_by_name_in_the_spawner():
    # In OffloadSpawner's own class body, not by the order of its bases.
    assert vars(OffloadSpawner)["fresh_auth_state"] is FreshLoginMixin.fresh_auth_state
    # server_files: the Dask files and the job refresher's, joined in the class body.
    assert "server_files" in vars(OffloadSpawner)
    assert "server_files" not in vars(JobRefreshMixin)


def _assignments_to_self(attribute: str) -> list[str]:
    found = []
    for path in sorted((ROOT / "offload_spawner").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
            for target in targets:
                if (
                    isinstance(target, ast.Attribute)
                    and target.attr == attribute
                    and isinstance(target.value, ast.Name)
                    and target.value.id == "self"
                ):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


@pytest.mark.parametrize("attribute", ["_plan", "_dask", "_site_uid"])
def test_no_part_sets_the_spawns_state_by_convention(attribute):
    # One object (PreparedSpawn, set by load_user_options) instead of attributes
    # each part sets and the others read.
    assert _assignments_to_self(attribute) == []


def test_spawner_py_lists_the_steps_in_the_order_load_user_options_runs_them():
    source = (ROOT / "offload_spawner" / "hub" / "spawner.py").read_text()
    tree = ast.parse(source)
    method = next(n for n in ast.walk(tree) if isinstance(n, ast.AsyncFunctionDef) and n.name == "load_user_options")
    calls = [
        n
        for n in ast.walk(method)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr in STEPS
    ]
    called = [n.func.attr for n in sorted(calls, key=lambda n: (n.lineno, n.col_offset))]
    assert called == STEPS
    assert "# --- the spawn, in order" in source
