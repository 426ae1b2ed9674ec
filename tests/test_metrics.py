"""The metrics: names, labels, bounded label values, and what the spawner's
events add (counted on prometheus_client's default registry, the one
JupyterHub serves at /hub/metrics; it is process-wide, so every check reads
the difference a test made)."""

from __future__ import annotations

import logging
import time
from types import SimpleNamespace

import pytest
from jupyterhub.objects import Hub
from jupyterhub.spawner import SpawnException
from kubespawner import KubeSpawner
from prometheus_client import REGISTRY
from traitlets.config import Config

from offload_spawner import metrics
from offload_spawner.availability.watcher import AvailabilityWatcher
from offload_spawner.hub.cli import CliUser
from offload_spawner.hub.spawner import OffloadSpawner
from offload_spawner.pipeline.catalog import build_catalog
from offload_spawner.spawn_errors import refusal, spawn_error
from test_auto_target import GPU_AUTO, auto_config, cluster

EXPECTED = {
    # family name (as collected) -> label names
    "offload_spawner_spawns_started": ("target", "backend"),
    "offload_spawner_spawns_finished": ("target", "backend", "outcome"),
    "offload_spawner_spawn_duration_seconds": ("target", "backend"),
    "offload_spawner_queue_duration_seconds": ("target", "backend"),
    "offload_spawner_refusals": ("target", "reason"),
    "offload_spawner_auto_choices": ("target",),
    "offload_spawner_failovers": ("from_target", "to_target"),
    "offload_spawner_token_refreshes": ("outcome",),
}


def value(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_names_and_labels():
    defined = {
        m._name: m._labelnames
        for m in (
            metrics.SPAWNS_STARTED,
            metrics.SPAWNS_FINISHED,
            metrics.SPAWN_DURATION,
            metrics.QUEUE_DURATION,
            metrics.REFUSALS,
            metrics.AUTO_CHOICES,
            metrics.FAILOVERS,
            metrics.TOKEN_REFRESHES,
        )
    }
    assert defined == EXPECTED
    # On the registry JupyterHub serves, next to JupyterHub's own metrics.
    import jupyterhub.metrics  # noqa: F401  (defines JupyterHub's metrics on the same registry)

    names = {family.name for family in REGISTRY.collect()}
    assert set(EXPECTED) <= names and "jupyterhub_server_spawn_duration_seconds" in names


USER_TEXT = ["carol", "alice@example.org", "../../etc", "{0}", "Site Alpha", "x" * 300, "", None, 42]


def test_label_values_stay_bounded_whatever_the_input():
    metrics.observe_targets(["alpha", "beta", "Not A Slug", "{x}"])
    for text in USER_TEXT:
        metrics.note_refusal(text, text)  # type: ignore[arg-type]
        metrics.note_auto_choice(text)  # type: ignore[arg-type]
        metrics.note_failover(text, "beta")  # type: ignore[arg-type]
        metrics.note_token_refresh(text)  # type: ignore[arg-type]
        plan = SimpleNamespace(target=text, backend=text, offload="session")
        metrics.note_spawn_started(plan)
        metrics.note_spawn_finished(plan, RuntimeError(str(text)), 1.0, 1.0)
    targets = {*metrics._known_targets, metrics.OTHER, metrics.NO_TARGET}
    allowed = {
        "target": targets,
        "from_target": targets,
        "to_target": targets,
        "backend": {*metrics._BACKENDS, metrics.OTHER},
        "reason": set(metrics.REFUSAL_REASONS),
        "outcome": {*metrics.SPAWN_OUTCOMES, *metrics.TOKEN_OUTCOMES, metrics.OTHER},
    }
    seen = metrics.metric_label_values()
    for family in EXPECTED:
        for labels in seen.get(family, ()):
            for key, label_value in labels:
                if key != "le":  # a histogram's bucket bounds
                    assert label_value in allowed[key], (family, key, label_value)
    # Target slugs are only ever the admins' (the catalog's slug form), never the text above.
    assert "Not A Slug" not in metrics._known_targets and "{x}" not in metrics._known_targets
    every_value = {v for family in seen.values() for labels in family for _, v in labels}
    assert every_value.isdisjoint({"carol", "alice@example.org", "../../etc", "{0}", "Site Alpha", "x" * 300})


@pytest.mark.parametrize(
    "exc, outcome",
    [
        (None, "succeeded"),
        (spawn_error("x", "remote_failure", 503), "remote_failure"),
        (spawn_error("x", "timeout", 500), "timeout"),
        (refusal("x"), "refused"),
        (TimeoutError(), "timeout"),
        (RuntimeError("pod create failed"), "failed"),
    ],
)
def test_spawn_outcomes(exc, outcome):
    assert metrics.spawn_outcome(exc) == outcome


def test_refusals_are_counted_where_they_are_made():
    before = value("offload_spawner_refusals_total", target="none", reason="selection")
    refused = refusal("8 cores is above your limit of 4 on Site Alpha.")
    assert isinstance(refused, SpawnException)
    assert value("offload_spawner_refusals_total", target="none", reason="selection") == before + 1


# --- the spawner's events -------------------------------------------------------------


class StopsBeforeCreating(OffloadSpawner):
    """``_start`` = KubeSpawner's first step (load_user_options), then success or a
    failure; a session's pod is taken as bound to its node 2 s into the start
    (what RemoteSessionMixin notes when it sees the pod's nodeName)."""

    fail: Exception | None = None

    async def _start(self):
        await self.load_user_options()
        self._offload_submitted_at = time.monotonic() - 0.5
        if self.fail is not None:
            raise self.fail
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


def spawner(name: str, options: dict, fail: Exception | None = None) -> StopsBeforeCreating:
    config = Config()
    config.OffloadSpawner.update({**auto_config(), "namespace": "jhub", "offload_auto_target": True})
    s = StopsBeforeCreating(user=CliUser(name, []), hub=Hub(ip="hub", port=8081, base_url="/hub/"), config=config)
    s.user_options = dict(options)
    s.fail = fail
    return s


async def test_spawn_counts_durations_and_auto_choices(watched):
    beta = {"target": "beta", "backend": "slurm"}
    started = value("offload_spawner_spawns_started_total", **beta)
    succeeded = value("offload_spawner_spawns_finished_total", outcome="succeeded", **beta)
    failed = value("offload_spawner_spawns_finished_total", outcome="remote_failure", **beta)
    durations = value("offload_spawner_spawn_duration_seconds_count", **beta)
    queued = value("offload_spawner_queue_duration_seconds_count", **beta)
    queued_sum = value("offload_spawner_queue_duration_seconds_sum", **beta)
    chose_beta = value("offload_spawner_auto_choices_total", target="beta")
    capacity = value("offload_spawner_refusals_total", target="alpha", reason="capacity")
    started_alpha = value("offload_spawner_spawns_started_total", target="alpha", backend="slurm")

    await spawner("carol", GPU_AUTO).start()
    with pytest.raises(SpawnException):
        await spawner("dave", GPU_AUTO, fail=spawn_error("Site Beta could not run it", "remote_failure", 503)).start()
    with pytest.raises(SpawnException):
        await spawner("erin", {**GPU_AUTO, "target": "alpha"}).start()  # alpha's GPUs are all in use

    assert value("offload_spawner_spawns_started_total", **beta) == started + 2
    assert value("offload_spawner_spawns_finished_total", outcome="succeeded", **beta) == succeeded + 1
    assert value("offload_spawner_spawns_finished_total", outcome="remote_failure", **beta) == failed + 1
    assert value("offload_spawner_spawn_duration_seconds_count", **beta) == durations + 1
    assert value("offload_spawner_queue_duration_seconds_count", **beta) == queued + 1
    assert value("offload_spawner_queue_duration_seconds_sum", **beta) - queued_sum >= 0.5
    assert value("offload_spawner_auto_choices_total", target="beta") == chose_beta + 2
    assert value("offload_spawner_refusals_total", target="alpha", reason="capacity") == capacity + 1
    # The refused start created nothing and is not counted as started.
    assert value("offload_spawner_spawns_started_total", target="alpha", backend="slurm") == started_alpha


async def test_capacity_gauges_come_from_the_watchers_memory(watched):
    watched.catalog = build_catalog(**auto_config())
    metrics.observe_targets(watched.catalog.offload_targets)
    s = spawner("frank", GPU_AUTO)
    await s.start()  # holds one of beta's GPUs (a reservation) until its pod is bound

    def gauge(name, **labels):
        return REGISTRY.get_sample_value(f"offload_spawner_{name}", labels)

    alpha = {"target": "alpha", "backend": "slurm"}
    beta = {"target": "beta", "backend": "slurm"}
    gpu = {"resource": "nvidia.com/gpu", "model": "a100"}
    assert gauge("availability_known") == 1
    assert gauge("target_up", **alpha) == 1 and gauge("target_up", **beta) == 1
    assert gauge("target_accelerators", state="capacity", **alpha, **gpu) == 4
    assert gauge("target_accelerators", state="available", **alpha, **gpu) == 0
    assert gauge("target_accelerators", state="allocated", **beta, **gpu) == 1
    assert gauge("target_accelerators", state="available", **beta, **gpu) == 3
    assert gauge("target_cores", state="allocatable", **beta) == 32
    assert gauge("target_cores", state="allocated", **beta) == 2  # the reservation's 2 cores
    assert gauge("target_memory_bytes", state="free", **beta) == (480 - 4) * 2**30  # "4G" in the form is 4 GiB
    # The hub's own cluster is not tracked: no gauge for it.
    assert gauge("target_up", target="cluster", backend="kubernetes") is None

    watched.state = "failed"  # lost the watch: nothing is reported as if known
    assert gauge("availability_known") == 0 and gauge("target_up", **alpha) is None


async def test_token_refreshes_are_counted_per_outcome():
    """ensure_fresh's real paths: no refresh token, and a token endpoint that does not answer."""
    from offload_spawner.identity.refresh import LoginExpired, ensure_fresh
    from test_refresh import StoredUser, authenticator, jwt

    def count(outcome):
        return value("offload_spawner_token_refreshes_total", outcome=outcome)

    before = {o: count(o) for o in metrics.TOKEN_OUTCOMES}
    token = jwt({"exp": 1000, "sub": "alice"})
    for refresh_token in (None, "r"):
        with pytest.raises(LoginExpired):
            await ensure_fresh(
                authenticator(),
                StoredUser("alice", {"access_token": token, "refresh_token": refresh_token}),
                600,
                now=900,
            )
    assert count("no_refresh_token") == before["no_refresh_token"] + 1
    assert count("failed") == before["failed"] + 1
    assert count("refreshed") == before["refreshed"]
