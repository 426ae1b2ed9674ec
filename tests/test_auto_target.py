"""The automatic target choice ("Any available"): ranking and fit (pure), and the
spawner resolving ``target: auto`` against the watcher's memory with the
in-flight spawns' reservations counted.

Two GPU sites (alpha, beta) with the same A100s, one site only the group
``staff`` may use (staff-only, with room), and the hub's own cluster.
"""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest
from jupyterhub.objects import Hub
from jupyterhub.spawner import SpawnException
from kubespawner import KubeSpawner
from traitlets.config import Config

from offload_spawner.availability.auto_target import choose_target, ranked, ranking_problems
from offload_spawner.availability.availability import cluster_view, menu_availability
from offload_spawner.availability.watcher import AvailabilityWatcher
from offload_spawner.hub.cli import CliGroup, CliUser
from offload_spawner.hub.spawner import OffloadSpawner, check_catalog
from offload_spawner.pipeline.catalog import build_catalog
from offload_spawner.pipeline.menu import build_menu
from offload_spawner.pipeline.selection import SelectionError
from test_availability import node, pod


def _site(name: str, node_name: str, **extra) -> dict:
    return {
        "display_name": name,
        "backend": "slurm",
        "node": node_name,
        "offload": "session",
        "limits": {"cores": 32, "memory": "480G", "accelerators": {"nvidia.com/gpu": 4}},
        **extra,
    }


def auto_config() -> dict:
    return {
        "profile_list": [
            {
                "display_name": "GPU notebook",
                "slug": "gpu",
                "cores": {"choices": [1, 2, 4, 64], "default": 2},
                "memory": {"choices": ["2G", "4G"], "default": "4G"},
                "accelerators": {"nvidia.com/gpu": {"display_name": "NVIDIA GPU", "models": ["a100"], "max": 2}},
                "targets": ["staff-only", "alpha", "beta", "cluster"],
            }
        ],
        "offload_targets": {
            "cluster": {"display_name": "This cluster", "limits": {"cores": 4}},
            "staff-only": _site("Staff site", "vk-staff", allowed_groups=["staff"]),
            "alpha": _site("Site Alpha", "vk-alpha"),
            "beta": _site("Site Beta", "vk-beta"),
        },
        "group_limits": {},
        "default_limits": None,
    }


GPU_AUTO = {"profile": "gpu", "target": "auto", "accelerator": "nvidia.com/gpu:a100", "accelerator_count": 1}


def cluster(alpha_gpus_used: int = 4, beta_gpus_used: int = 0):
    """alpha's 4 A100 all in use (by default), beta's free; the staff site always has room."""
    objects = [node("vk-alpha"), node("vk-beta"), node("vk-staff")]
    if alpha_gpus_used:
        objects.append(pod("alpha-busy", "vk-alpha", gpus=alpha_gpus_used))
    if beta_gpus_used:
        objects.append(pod("beta-busy", "vk-beta", gpus=beta_gpus_used))
    return objects


@pytest.fixture
def catalog():
    return build_catalog(**auto_config())


def availability(catalog, groups, objects, reservations=()):
    menu = build_menu(catalog, groups)
    return menu, menu_availability(menu, catalog, cluster_view(objects), reservations)


# --- ranking --------------------------------------------------------------------


def test_ranking_by_admin_order_weights_and_default(catalog):
    profile = build_menu(catalog, ["staff"]).profile("gpu")
    assert ranked(profile, None) == ["staff-only", "alpha", "beta", "cluster"]
    assert ranked(profile, ["beta", "cluster"]) == ["beta", "cluster", "staff-only", "alpha"]
    assert ranked(profile, {"cluster": 10, "alpha": 2.5, "beta": 2.5}) == ["cluster", "alpha", "beta", "staff-only"]
    assert ranked(profile, {"staff-only": -1}) == ["alpha", "beta", "cluster", "staff-only"]


def test_ranking_never_names_a_target_the_user_may_not_use(catalog):
    profile = build_menu(catalog, []).profile("gpu")
    # The admin's ranking prefers the staff site; a non-member never gets it.
    assert ranked(profile, ["staff-only", "beta"]) == ["beta", "alpha", "cluster"]


def test_bad_rankings_are_reported_at_hub_start(catalog):
    assert ranking_problems(["alpha", "nowhere"], catalog) == [
        "offload_auto_target_ranking: 'nowhere' is not one of offload_targets"
    ]
    assert ranking_problems(["alpha", "alpha"], catalog) == ["offload_auto_target_ranking: a target is listed twice"]
    assert ranking_problems({"beta": "high"}, catalog) == [
        "offload_auto_target_ranking.beta: the weight must be a number"
    ]
    assert ranking_problems({"beta": 3}, catalog) == [] and ranking_problems(None, catalog) == []
    with pytest.raises(ValueError, match="nowhere"):
        check_catalog({**auto_config(), "offload_auto_target_ranking": ["nowhere"]})


# --- fit --------------------------------------------------------------------------


def test_picks_the_first_target_with_a_free_gpu(catalog):
    menu, avail = availability(catalog, [], cluster())
    choice = choose_target(catalog, menu, GPU_AUTO, avail)
    assert choice.chosen.slug == "beta"
    assert choice.chosen.selection.target == "beta" and choice.chosen.plan.target == "beta"
    assert [c.slug for c in choice.candidates] == ["alpha", "beta", "cluster"]
    assert choice.candidates[0].refusal.startswith("All 4 NVIDIA GPU a100 on Site Alpha are in use")
    assert choice.message() == (
        "Any available: your server runs on Site Beta (not: Site Alpha: All 4 NVIDIA GPU a100 on Site Alpha "
        "are in use; try again later or pick another target)."
    )


def test_a_staff_member_gets_the_staff_site_first(catalog):
    menu, avail = availability(catalog, ["staff"], cluster())
    assert choose_target(catalog, menu, GPU_AUTO, avail).chosen.slug == "staff-only"


def test_reservations_of_in_flight_spawns_count(catalog):
    from offload_spawner.availability.availability import Demand

    holds = [Demand(node="vk-beta", extended={"nvidia.com/gpu": 4}, pod="jhub/jupyter-other")]
    menu, avail = availability(catalog, [], cluster(), holds)
    choice = choose_target(catalog, menu, GPU_AUTO, avail)
    # alpha's GPUs are in use, beta's are held by a spawn under way; the cluster offers none.
    assert choice.chosen is None
    assert "are in use" in choice.candidates[1].refusal


def test_cores_and_memory_must_fit_too(catalog):
    busy = [*cluster(alpha_gpus_used=0), pod("hog", "vk-alpha", cpu="31")]
    menu, avail = availability(catalog, [], busy)
    choice = choose_target(catalog, menu, {**GPU_AUTO, "cores": 2}, avail)
    assert choice.chosen.slug == "beta"
    assert choice.candidates[0].refusal.startswith("Only 1 core are free on Site Alpha and you asked for 2")


def test_a_target_whose_limits_refuse_the_selection_is_passed_over(catalog):
    # 64 cores: above every site's limit of 32 and the cluster's 4.
    menu, avail = availability(catalog, [], cluster(alpha_gpus_used=0))
    choice = choose_target(catalog, menu, {"profile": "gpu", "target": "auto", "cores": 64}, avail)
    assert choice.chosen is None
    assert all("above" in c.refusal for c in choice.candidates)
    assert choice.message().startswith("Any available: no target you may use has room now.")


def test_unknown_availability_counts_as_fitting(catalog):
    menu = build_menu(catalog, [])
    choice = choose_target(catalog, menu, GPU_AUTO, {})
    assert choice.chosen.slug == "alpha"


def test_failover_takes_the_next_fitting_target_once_and_only_a_usable_one(catalog):
    menu, avail = availability(catalog, [], cluster(alpha_gpus_used=0))
    choice = choose_target(catalog, menu, GPU_AUTO, avail, ranking=["staff-only", "alpha", "beta"])
    assert [c.slug for c in choice.fitting][:2] == ["alpha", "beta"]
    assert choice.next_after("alpha").slug == "beta"
    again = choose_target(catalog, menu, GPU_AUTO, avail, exclude=["alpha"])
    assert again.chosen.slug == "beta" and "staff-only" not in [c.slug for c in again.candidates]


def test_a_bad_profile_is_refused_as_without_auto(catalog):
    menu, avail = availability(catalog, [], cluster())
    with pytest.raises(SelectionError, match="no profile 'nope'"):
        choose_target(catalog, menu, {"profile": "nope", "target": "auto"}, avail)
    with pytest.raises(SelectionError, match="Unknown option"):
        choose_target(catalog, menu, {**GPU_AUTO, "colour": "red"}, avail)


# --- the spawner -------------------------------------------------------------------


class StopsBeforeCreating(OffloadSpawner):
    """``_start`` = KubeSpawner's first step (load_user_options), then success."""

    async def _start(self):
        await self.load_user_options()
        return "http://127.0.0.1:1"


@pytest.fixture
async def watched():
    """The real watcher object, its reflectors' memory filled in (no API server here)."""
    watcher = AvailabilityWatcher(["vk-alpha", "vk-beta", "vk-staff"], "jhub", logging.getLogger("test"))
    objects = cluster()
    watcher.nodes = SimpleNamespace(resources={f"/{o['metadata']['name']}": o for o in objects if o["kind"] == "Node"})
    pods = {f"jhub/{o['metadata']['name']}": o for o in objects if o["kind"] == "Pod"}
    watcher.pods = {"vk-alpha": SimpleNamespace(resources=pods)}
    watcher.state = "running"
    KubeSpawner.reflectors[("offload-availability", "jhub")] = watcher
    yield watcher
    KubeSpawner.reflectors.pop(("offload-availability", "jhub"), None)


def auto_spawner(name: str, enabled: bool = True, **settings) -> StopsBeforeCreating:
    config = Config()
    config.OffloadSpawner.update({**auto_config(), "namespace": "jhub", "offload_auto_target": enabled, **settings})
    s = StopsBeforeCreating(user=CliUser(name, []), hub=Hub(ip="hub", port=8081, base_url="/hub/"), config=config)
    s.user_options = dict(GPU_AUTO)
    return s


async def test_the_spawner_resolves_auto_and_reserves_on_the_chosen_target(watched):
    first, second = auto_spawner("carol"), auto_spawner("dave")
    await first._check_user_options(first, GPU_AUTO)
    assert await first.start() == "http://127.0.0.1:1"
    assert first._plan.target == "beta" and first._auto_choice.chosen.slug == "beta"
    assert watched.reservations["jhub/jupyter-carol"].node == "vk-beta"
    assert first.user_options["target"] == "auto"  # chosen afresh at the next start
    # Three more take beta's last GPUs; then nothing fits.
    for name in ("d1", "d2", "d3"):
        await auto_spawner(name).start()
    with pytest.raises(SpawnException) as e:
        await second.start()
    assert e.value.status_code == 400
    assert e.value.jupyterhub_message.startswith("Any available: no target you may use has room now.")
    assert "jhub/jupyter-dave" not in watched.reservations


async def test_auto_is_refused_where_the_admin_did_not_enable_it(watched):
    s = auto_spawner("erin", enabled=False)
    with pytest.raises(SpawnException) as e:
        await s._check_user_options(s, GPU_AUTO)
    assert e.value.status_code == 400 and "is not offered" in e.value.jupyterhub_message
    assert watched.reservations == {}


async def test_progress_says_which_target_was_chosen(watched):
    s = auto_spawner("frank", offload_auto_target_label="Wherever there is room")
    await s.start()
    s._spawn_pending = True
    events = s.progress()
    first = await events.__anext__()
    await events.aclose()
    assert first["message"].startswith("Wherever there is room: your server runs on Site Beta (not: Site Alpha:")


# --- failover ------------------------------------------------------------------------


@pytest.fixture
def sites(monkeypatch):
    """KubeSpawner's own _start and stop at the Kubernetes API edge: a start on a site
    in ``failing`` fails as interLink reports a refused job (remote_failure, from
    RemoteSessionMixin); ``stopped`` records the attempts removed (pod names and targets)."""
    from offload_spawner.spawn_errors import spawn_error

    state = SimpleNamespace(failing=set(), stopped=[], attempts=[], stop_fails=False)

    async def _start(self):
        await self.load_user_options()
        state.attempts.append(self._plan.target)
        if self._plan.target in state.failing:
            raise spawn_error(
                f"{self._plan.target_display_name} could not run your server: sbatch refused", "remote_failure", 503
            )
        return "http://127.0.0.1:1"

    async def stop(self, now=False):
        state.stopped.append((self.pod_name, self._plan.target if self._plan else None, now))
        if state.stop_fails:
            raise TimeoutError("pod jhub/jupyter-x did not disappear")

    async def no_secret(self, name):
        return None

    monkeypatch.setattr(KubeSpawner, "_start", _start)
    monkeypatch.setattr(KubeSpawner, "stop", stop)
    monkeypatch.setattr(OffloadSpawner, "_delete_secret", no_secret, raising=False)
    return state


def failover_spawner(name: str, groups=()) -> OffloadSpawner:
    config = Config()
    config.OffloadSpawner.update(
        {
            **auto_config(),
            "namespace": "jhub",
            "offload_auto_target": True,
            "offload_auto_target_ranking": ["staff-only", "alpha", "beta"],
        }
    )
    s = OffloadSpawner(
        user=CliUser(name, [CliGroup(g) for g in groups]), hub=Hub(ip="hub", port=8081, base_url="/hub/"), config=config
    )
    s.user_options = dict(GPU_AUTO)
    return s


@pytest.fixture
async def free_sites():
    """The real watcher object with alpha's and beta's GPUs all free."""
    watcher = AvailabilityWatcher(["vk-alpha", "vk-beta", "vk-staff"], "jhub", logging.getLogger("test"))
    watcher.nodes = SimpleNamespace(resources={f"/{n}": node(n) for n in ("vk-alpha", "vk-beta", "vk-staff")})
    watcher.pods = {}
    watcher.state = "running"
    KubeSpawner.reflectors[("offload-availability", "jhub")] = watcher
    yield watcher
    KubeSpawner.reflectors.pop(("offload-availability", "jhub"), None)


async def test_a_fast_failure_fails_over_once_to_the_next_target_after_removing_the_first(sites, free_sites):
    from prometheus_client import REGISTRY

    def failovers():
        return (
            REGISTRY.get_sample_value("offload_spawner_failovers_total", {"from_target": "alpha", "to_target": "beta"})
            or 0
        )

    before = failovers()
    sites.failing = {"alpha"}
    s = failover_spawner("gina")
    assert await s.start() == "http://127.0.0.1:1"
    # staff-only is ranked first but gina may not use it: never tried.
    assert sites.attempts == ["alpha", "beta"]
    # The first attempt was removed completely (pod deleted at once, Secret, reservation) before the second.
    assert sites.stopped == [("jupyter-gina", "alpha", True)]
    assert s._plan.target == "beta"
    assert {d.node for d in free_sites.reservations.values()} == {"vk-beta"}
    assert s._failover_message == (
        "Site Alpha could not run your server: sbatch refused. Any available: trying Site Beta."
    )
    assert failovers() == before + 1


async def test_failover_happens_once(sites, free_sites):
    from jupyterhub.spawner import SpawnException as Failed

    sites.failing = {"alpha", "beta"}
    s = failover_spawner("hugo")
    with pytest.raises(Failed) as e:
        await s.start()
    assert e.value.reason == "remote_failure" and "Site Beta" in str(e.value.jupyterhub_message)
    assert sites.attempts == ["alpha", "beta"]
    assert sites.stopped == [("jupyter-hugo", "alpha", True)]  # the hub's own stop removes the second
    assert free_sites.reservations == {}


async def test_no_failover_for_a_chosen_target_or_without_a_next_one(sites, free_sites):
    from jupyterhub.spawner import SpawnException as Failed

    sites.failing = {"alpha"}
    chosen = failover_spawner("ivan")
    chosen.user_options = {**GPU_AUTO, "target": "alpha"}
    with pytest.raises(Failed):
        await chosen.start()
    assert sites.attempts == ["alpha"] and sites.stopped == []
    # beta is full: nowhere to fail over to, the site's own message stands.
    busy = pod("busy", "vk-beta", gpus=4)
    busy["metadata"]["uid"] = "busy-uid"  # the watcher rebuilds its view when the set of uids changes
    free_sites.pods = {"vk-beta": SimpleNamespace(resources={"jhub/busy": busy})}
    alone = failover_spawner("jane")
    with pytest.raises(Failed) as e:
        await alone.start()
    assert "sbatch refused" in e.value.jupyterhub_message
    assert sites.attempts == ["alpha", "alpha"] and sites.stopped == []


async def test_no_second_attempt_when_the_first_cannot_be_removed(sites, free_sites):
    from jupyterhub.spawner import SpawnException as Failed

    sites.failing, sites.stop_fails = {"alpha"}, True
    s = failover_spawner("kim")
    with pytest.raises(Failed) as e:
        await s.start()
    assert e.value.jupyterhub_message == "Site Alpha could not run your server: sbatch refused"
    assert sites.attempts == ["alpha"]


def test_the_chosen_plan_carries_the_users_storage_and_reserved_node_tolerations():
    """The automatic choice plans as a chosen target does: the user's volumes on that
    target and the tolerations of the nodes reserved to their groups."""
    config = auto_config()
    catalog = build_catalog(
        **config,
        storage={
            "work": {"display_name": "$WORK", "mount_path": "/work", "targets": {"beta": {"path": "/site/{username}"}}}
        },
        reservations=[{"value": "staff", "groups": ["staff"]}],
    )
    menu, avail = availability(catalog, ["staff"], cluster())
    avail = {slug: a for slug, a in avail.items() if slug != "staff-only"}  # not ranked first here
    choice = choose_target(catalog, menu, GPU_AUTO, avail, ["beta"], username_slug="carol")
    plan = choice.chosen.plan
    assert choice.chosen.slug == "beta"
    assert plan.annotations["slurm-job.vk.io/singularity-mounts"] == "--bind /site/carol:/work"
    assert {"key": "reserved", "operator": "Equal", "value": "staff", "effect": "NoSchedule"} in plan.tolerations
