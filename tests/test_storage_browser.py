"""The form's storage summary in a real browser (Debian chromium via playwright)
against a real hub: it changes with the chosen target, says when home is
absent, and an unticked offered volume stays out of the server.
"""

from __future__ import annotations

import pytest

from hub_fixtures import RecordingSpawner
from test_form_browser import browser, keep, open_form  # noqa: F401  (fixture)

pytestmark = [pytest.mark.hub, pytest.mark.browser]

TARGET = 'select[name="profile-option-analysis--target"]'
CONFIG = {
    "offload_targets": {
        "cluster": {"display_name": "This cluster", "backend": "kubernetes"},
        "leonardo": {"display_name": "CINECA Leonardo", "backend": "slurm", "node": "vk-leonardo", "network": "mesh"},
    },
    "profile_list": [{"display_name": "Analysis", "slug": "analysis"}],
    "storage": {
        "home": {"display_name": "home", "mount_path": "/home/jovyan", "cluster": {"kind": "pvc", "size": "10G"}},
        "work": {
            "display_name": "$WORK",
            "mount_path": "/work",
            "targets": {"leonardo": {"path": "/leonardo_work/{username}"}},
        },
        "cms-data": {
            "display_name": "CMS group area",
            "mount_path": "/data/cms",
            "allowed_groups": ["cms"],
            "offered": True,
            "cluster": {"kind": "nfs", "server": "nfs.example.org", "path": "/cms"},
        },
    },
}


async def visible_storage(page) -> str:
    return await page.eval_on_selector_all(
        ".offload-storage", "els => els.filter(e => e.offsetParent !== null).map(e => e.innerText).join('|')"
    )


async def test_summary_follows_the_target_and_says_when_home_is_absent(offload_hub, browser, tmp_path):  # noqa: F811
    hub = await offload_hub(CONFIG, groups={"cms": ["bob"]}, users=["bob"])
    page = await open_form(browser, hub.app, "bob")
    await page.select_option(TARGET, "cluster")
    assert await visible_storage(page) == (
        "Your files there: home (your 10G volume) at /home/jovyan; no $WORK here; CMS group area at /data/cms."
    )
    await page.screenshot(path=str(tmp_path / "storage-cluster.png"), full_page=True)
    keep(tmp_path / "storage-cluster.png")
    await page.select_option(TARGET, "leonardo")
    assert await visible_storage(page) == ("Your files there: no home here; $WORK at /work; no CMS group area here.")
    await page.screenshot(path=str(tmp_path / "storage-leonardo.png"), full_page=True)
    keep(tmp_path / "storage-leonardo.png")

    # Untick the group area and start on the cluster: it is not mounted.
    await page.select_option(TARGET, "cluster")
    await page.uncheck('input[name="profile-option-analysis--storage"][value="cms-data"]')
    await page.click('#spawn_form button[type="submit"]')
    await hub.wait_ready("bob")
    user_options = hub.app.users["bob"].spawner.user_options
    assert user_options["storage"] == [] and user_options["target"] == "cluster"
    user, pod = RecordingSpawner.recorded[-1]
    assert user == "bob"
    mounts = {m["mountPath"] for m in pod["spec"]["containers"][0].get("volumeMounts") or []}
    assert "/home/jovyan" in mounts and "/data/cms" not in mounts
