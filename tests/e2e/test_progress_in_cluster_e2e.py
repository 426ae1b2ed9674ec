"""A server on the hub's own cluster reports its start in a user's words, on
the test bed's real control plane: the spawn page's progress stream carries no
raw Kubernetes event (KubeSpawner's "2026-...Z [Normal] Successfully assigned
jhub/jupyter-... to node-local" lines), as the remote sites' messages do not.
"""

from __future__ import annotations

import re

from .test_offload_lifecycle_e2e import spawn_with_progress

TARGETS = {"cluster": {"display_name": "This cluster", "backend": "kubernetes"}}
PROFILES = [{"display_name": "Teaching", "slug": "teaching", "targets": ["cluster"]}]
RAW_EVENT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d|\[(Normal|Warning)\]|Successfully assigned|node-local")


async def test_in_cluster_progress_speaks_a_users_words(spawn_hub):
    hub = await spawn_hub({"offload_targets": TARGETS, "profile_list": PROFILES}, {"users": ["bob"]}, ("bob",))
    r, events = await spawn_with_progress(hub, "bob", {"profile": "teaching"})
    assert r.status_code in (201, 202), r.text
    assert events[-1].get("ready") is True, events
    messages = [e.get("message", "") for e in events]
    assert not [m for m in messages if RAW_EVENT.search(m)], messages
    assert any(
        m.startswith(("Preparing your server", "Starting your server", "Your server is running")) for m in messages
    ), messages
    await hub.stop("bob")
    await hub.wait_stopped("bob")
