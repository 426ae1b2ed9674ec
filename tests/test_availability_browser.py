"""Live availability in a real browser: the form's script polls the hub's
``/hub/offload/availability`` endpoint and updates numbers and disabled
choices without a page reload.

The one stand-in is the cluster state: there is no control plane in these
tests, so the spawner reads a fixed cluster view (the same object the CLI's
``--cluster`` builds), which the test replaces while the page is open.
tests/e2e/test_availability_e2e.py covers the watcher on a real cluster.
"""

from __future__ import annotations

import pytest

from offload_spawner.availability.availability import cluster_view
from test_availability import node, pod
from test_form_browser import browser, keep, open_form  # noqa: F401  (fixture)

pytestmark = [pytest.mark.hub, pytest.mark.browser]

GROUPS = {"cms": ["carol"], "highrate": ["carol"], "ai-infn": ["carol"], "gpu-users": ["carol"]}
TARGET = 'select[name="profile-option-analysis--target"]'
ACCELERATOR = 'select[name="profile-option-analysis--accelerator"]'
A100 = f'{ACCELERATOR} option[value="nvidia.com/gpu:a100"]'


@pytest.fixture
async def hub(offload_hub, contract_config):
    return await offload_hub(contract_config, groups=GROUPS, users=["carol"])


def view(*objects):
    return cluster_view([node("vk-naples", gpus=None, labels={}), *objects])


async def test_numbers_and_disabled_choices_follow_without_reload(hub, browser, tmp_path):  # noqa: F811
    spawner = hub.app.users["carol"].spawner
    spawner._static_view = view(node(), pod("a", gpus=3))
    page = await open_form(browser, hub.app, "carol")
    await page.select_option(TARGET, "leonardo")
    await page.select_option(ACCELERATOR, "nvidia.com/gpu:a100")
    assert "NVIDIA GPU a100: 4 total, 3 used, 1 available" in await page.inner_text('[data-availability="leonardo"]')
    marker = await page.evaluate("window.__not_reloaded = true")  # noqa: F841

    # The last a100 is taken elsewhere: the option greys out and the choice falls back.
    spawner._static_view = view(node(), pod("a", gpus=4))
    await page.wait_for_function(f"document.querySelector('{A100}').disabled", timeout=10_000)
    assert await page.inner_text(A100) == "NVIDIA GPU a100 (all 4 in use)"
    shot = tmp_path / "form-gpus-exhausted.png"
    await page.screenshot(path=str(shot), full_page=True)
    keep(shot)
    assert await page.eval_on_selector(ACCELERATOR, "s => s.value") == "none"
    assert "4 used, 0 available" in await page.inner_text('[data-availability="leonardo"]')

    # The site goes down: the target greys out with the reason and another is chosen.
    spawner._static_view = view(node(ready=False, reason="InterlinkPingFailed", message="no answer"))
    leonardo = f'{TARGET} option[value="leonardo"]'
    await page.wait_for_function(f"document.querySelector('{leonardo}').disabled", timeout=10_000)
    assert await page.eval_on_selector(TARGET, "s => s.value") != "leonardo"
    assert await page.inner_text('[data-availability="leonardo"]') == "Down: interLink ping failed: no answer"

    # Back up with GPUs free: enabled again, all without a reload.
    spawner._static_view = view(node())
    await page.wait_for_function(f"!document.querySelector('{leonardo}').disabled", timeout=10_000)
    await page.select_option(TARGET, "leonardo")
    assert not await page.eval_on_selector(A100, "o => o.disabled")
    assert await page.evaluate("window.__not_reloaded === true")
