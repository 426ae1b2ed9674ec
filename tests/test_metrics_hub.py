"""A real JupyterHub (MockHub + configurable-http-proxy): "Any available" in the
form and the REST API, the spawn page's progress message, and /hub/metrics
scraped and parsed with prometheus_client's own parser, showing the counts of
what the test did.

The spawner is hub_fixtures' RecordingSpawner (no Kubernetes API server here),
but started through OffloadSpawner's real ``start`` chain (metrics, admission,
the automatic choice), and with the cluster state fixed to two GPU sites
whose first has all its GPUs in use: the CLI's ``--cluster`` view, as the
watcher's memory would hold it.
"""

from __future__ import annotations

import asyncio
import html
from typing import ClassVar

import pytest
from jupyterhub.tests.utils import async_requests, auth_header, public_url
from jupyterhub.utils import url_path_join
from prometheus_client.parser import text_string_to_metric_families

from hub_fixtures import HubClient, RecordingSpawner
from offload_spawner.availability.availability import cluster_view
from offload_spawner.hub.spawner import OffloadSpawner
from test_auto_target import GPU_AUTO, auto_config, cluster

pytestmark = pytest.mark.hub


class GatedSpawner(RecordingSpawner):
    """RecordingSpawner started through OffloadSpawner's start chain; each start
    waits, once its pod is recorded, until the test opens ``gate``."""

    _static_view = cluster_view(cluster())
    gate: ClassVar[asyncio.Event | None] = None

    def start(self):
        return OffloadSpawner.start(self)

    async def _start(self):  # what KubeSpawner.start runs
        url = await RecordingSpawner.start(self)  # load_user_options (the choice), then the pod
        if self.gate is not None:
            await self.gate.wait()
        return url


async def scrape(app) -> dict[tuple[str, tuple], float]:
    """/hub/metrics as an admin's token reads it, parsed: (sample name, labels) -> value."""
    url = url_path_join(public_url(app), "hub/metrics")
    r = await async_requests.get(url, headers=auth_header(app.db, "admin"))
    r.raise_for_status()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def delta(before: dict, after: dict, name: str, **labels) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)


def progress_messages(app, user: str, until: str) -> list[str]:
    """Read the spawn page's event stream (blocking; run in a thread) until a
    message starts with ``until`` (JupyterHub's own "Server requested" comes first)."""
    import json

    import requests

    url = url_path_join(public_url(app), "hub/api/users", user, "server/progress")
    messages: list[str] = []
    with requests.get(url, headers=auth_header(app.db, "admin"), stream=True, timeout=30) as r:
        for line in r.iter_lines(decode_unicode=True):
            if line and line.startswith("data:"):
                event = json.loads(line[len("data:") :])
                messages.append(event.get("message", ""))
                if messages[-1].startswith(until) or len(messages) > 5:
                    break
    return messages


@pytest.fixture
async def auto_hub(hub_app, stub_server, requires_chp, tmp_path):
    RecordingSpawner.recorded = []
    RecordingSpawner.stub_url = stub_server
    GatedSpawner.gate = asyncio.Event()
    GatedSpawner.gate.set()
    app = await hub_app(
        config={
            "JupyterHub": {"spawner_class": GatedSpawner},
            "GatedSpawner": {**auto_config(), "offload_auto_target": True, "offload_availability": True},
            "ConfigurableHTTPProxy": {"pid_file": str(tmp_path / "proxy.pid")},
        }
    )
    client = HubClient(app)
    for user in ("carol", "dave", "erin"):
        await client.login(user)
    yield client
    GatedSpawner.gate.set()
    RecordingSpawner.recorded = []


async def test_any_available_lands_on_the_site_with_room_and_metrics_count_it(auto_hub):
    hub, app = auto_hub, auto_hub.app
    before = await scrape(app)

    # The form offers "Any available" next to the targets.
    page = html.unescape((await hub.get_form("carol")).text)
    assert '<option value="auto">Any available</option>' in page

    # carol posts it; the start waits while the spawn page shows the choice.
    GatedSpawner.gate.clear()
    posting = asyncio.ensure_future(
        hub.post_form(
            "carol",
            {
                "profile": "gpu",
                "profile-option-gpu--target": "auto",
                "profile-option-gpu--accelerator": "nvidia.com/gpu:a100",
                "profile-option-gpu--accelerator_count": "1",
            },
        )
    )
    spawner = None
    for _ in range(200):
        spawner = app.users["carol"].spawner if "carol" in app.users else None
        if spawner is not None and spawner._auto_choice is not None:
            break
        await asyncio.sleep(0.05)
    messages = await asyncio.get_running_loop().run_in_executor(None, progress_messages, app, "carol", "Any")
    assert messages[0] == "Server requested"
    assert messages[-1].startswith(
        "Any available: your server runs on Site Beta (not: Site Alpha: All 4 NVIDIA GPU a100"
    )
    GatedSpawner.gate.set()
    assert (await posting).status_code == 302
    model = await hub.wait_ready("carol")
    assert model["servers"][""]["user_options"]["target"] == "auto"
    [(_, pod)] = [r for r in RecordingSpawner.recorded if r[0] == "carol"]
    assert pod["metadata"]["labels"]["offload-spawner.io/target"] == "beta"

    # The REST API: target auto the same way; a full site refused; nothing fits 64 cores.
    r = await hub.api_spawn("dave", GPU_AUTO)
    assert r.status_code in (201, 202), r.text
    await hub.wait_ready("dave")
    r = await hub.api_spawn("erin", {**GPU_AUTO, "target": "alpha"})
    assert r.status_code == 400 and "All 4 NVIDIA GPU a100 on Site Alpha are in use" in r.text
    r = await hub.api_spawn("erin", {**GPU_AUTO, "cores": 64})
    assert r.status_code == 400 and "no target you may use has room now" in r.text

    after = await scrape(app)
    beta = {"target": "beta", "backend": "slurm"}
    assert delta(before, after, "offload_spawner_spawns_started_total", **beta) == 2
    assert delta(before, after, "offload_spawner_spawns_finished_total", outcome="succeeded", **beta) == 2
    assert delta(before, after, "offload_spawner_spawn_duration_seconds_count", **beta) == 2
    assert delta(before, after, "offload_spawner_auto_choices_total", target="beta") == 2
    assert delta(before, after, "offload_spawner_auto_choices_total", target="none") == 1
    assert delta(before, after, "offload_spawner_refusals_total", target="alpha", reason="capacity") == 1
    assert delta(before, after, "offload_spawner_refusals_total", target="none", reason="no_target_fits") == 1
    assert delta(before, after, "offload_spawner_spawns_started_total", target="alpha", backend="slurm") == 0
    # JupyterHub's own metrics are on the same page.
    assert any(name.startswith("jupyterhub_") for name, _ in after)
    # No user name reaches a label.
    ours = [labels for name, labels in after if name.startswith("offload_spawner_")]
    assert all(value not in ("carol", "dave", "erin") for labels in ours for _, value in labels)
