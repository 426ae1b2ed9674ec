"""The demo in the real browser (Debian chromium via playwright), as a visitor
sees it: `demo/run.py` with its test bed, OpenID Connect provider and hub.

* dave's form shows CINECA Leonardo's free capacity and a100 count (the demo
  hub has the rights helm-values/rbac-availability.yaml grants), and the
  numbers change, without a reload, when carol starts a GPU server there
  and again when she stops it;
* carol's spawn goes form -> progress -> JupyterLab;
* hana's server on the Dask-offload target INFN Naples opens JupyterLab with
  the Dask lab extension set to the offload cluster's factory (dask-kubernetes'
  KubeCluster, from the server's Dask file): its "new cluster" request ends in
  dask-kubernetes' error, not in the extension's default local cluster, because
  the test bed runs no Dask operator (the README says what a visitor sees).

Screenshots go to the test's tmp dir (and OFFLOAD_SCREENSHOT_DIR when set).
"""

from __future__ import annotations

import asyncio

import pytest
import requests

from test_form_browser import browser, keep  # noqa: F401  (fixture)

from .test_demo import _listening, _wait_for, demo  # noqa: F401  (fixture)

#: The imitation's SLURM node: the counts below are of its 4 GPUs (the real interLink
#: stack's node has the 2 its configuration gives), and it starts a session in seconds.
DEMO_ENV = {"DEMO_SLURM": "imitation"}

pytestmark = [pytest.mark.browser]
PASSWORD = "demo"
LEONARDO = '[data-availability="leonardo"]'


async def wait_for_demo(proc, port, log) -> str:
    hub = f"http://127.0.0.1:{port}"
    await asyncio.to_thread(_wait_for, lambda: "Ctrl-C stops" in log.read_text(), 240, "the demo's banner", proc, log)
    await asyncio.to_thread(
        _wait_for,
        lambda: requests.get(f"{hub}/hub/api", timeout=2).ok if _listening(port) else False,
        60,
        "the hub",
        proc,
        log,
    )
    return hub


async def login(browser, hub: str, user: str):  # noqa: F811
    """Log in through the hub and the demo's provider, as a visitor does."""
    context = await browser.new_context(viewport={"width": 1200, "height": 1300})
    page = await context.new_page()
    await page.goto(f"{hub}/hub/oauth_login")
    await page.fill('input[name="username"]', user)
    await page.fill('input[name="password"]', PASSWORD)
    await page.click('button[type="submit"]')
    await page.wait_for_url(f"{hub}/hub/**")
    return page


async def spawn(page, hub: str, user: str, fields: dict[str, str]):
    await page.goto(f"{hub}/hub/spawn")
    await page.wait_for_selector("#offload-spawner-form")
    await page.check('input[name="profile"][value="analysis"]')
    for key, value in fields.items():
        selector = f'[name="profile-option-analysis--{key}"]'
        if await page.eval_on_selector(selector, "e => e.tagName") == "SELECT":
            await page.select_option(selector, value)
        else:
            await page.fill(selector, value)
    await page.click('#spawn_form button[type="submit"]')
    # progress page, then JupyterLab (the demo's default_url)
    await page.wait_for_url(f"{hub}/user/{user}/lab**", timeout=240_000)
    await page.wait_for_selector("#jp-main-dock-panel", timeout=120_000)


async def test_the_demo_shows_availability_jupyterlab_and_the_dask_tab(demo, browser, tmp_path):  # noqa: F811
    proc, port, log = demo
    hub = await wait_for_demo(proc, port, log)

    # dave sees Leonardo's capacity, all four a100 free.
    dave = await login(browser, hub, "dave")
    await dave.goto(f"{hub}/hub/spawn")
    await dave.wait_for_selector("#offload-spawner-form")
    await dave.select_option('select[name="profile-option-analysis--target"]', "leonardo")
    text = await dave.inner_text(LEONARDO)
    assert await dave.get_attribute(LEONARDO, "data-status") == "up", text
    assert "32 of 32 cores free" in text or "of 32" in text, text
    assert "NVIDIA GPU a100: 4 total, 0 used, 4 available" in text, text
    assert "not shown" not in text and "does not publish" not in text
    await dave.evaluate("window.__not_reloaded = true")

    # carol starts a GPU server there and lands in JupyterLab.
    carol = await login(browser, hub, "carol")
    await spawn(
        carol,
        hub,
        "carol",
        {
            "image": "alma9",
            "target": "leonardo",
            "cores": "2",
            "memory": "2G",
            "accelerator": "nvidia.com/gpu:a100",
            "accelerator_count": "1",
        },
    )
    assert "JupyterLab" in await carol.title()
    shot = tmp_path / "demo-jupyterlab.png"
    await carol.screenshot(path=str(shot))
    keep(shot)

    # dave's open form follows, without a reload.
    await dave.wait_for_function(
        "document.querySelector('[data-availability=\"leonardo\"]').textContent.includes('1 used, 3 available')",
        timeout=30_000,
    )
    assert await dave.evaluate("window.__not_reloaded === true")
    shot = tmp_path / "demo-availability.png"
    await dave.screenshot(path=str(shot), full_page=True)
    keep(shot)

    # carol stops her server on the hub's home page: the a100 is free again on dave's page.
    await carol.goto(f"{hub}/hub/home")
    await carol.click("#stop")
    await dave.wait_for_function(
        "document.querySelector('[data-availability=\"leonardo\"]').textContent.includes('0 used, 4 available')",
        timeout=60_000,
    )
    assert await dave.evaluate("window.__not_reloaded === true")

    # hana: the Dask-offload target; JupyterLab's Dask tab reads the server's Dask file.
    hana = await login(browser, hub, "hana")
    await spawn(hana, hub, "hana", {"image": "offload", "target": "naples", "cores": "2", "memory": "2G"})
    await hana.click('[data-id="dask-dashboard-launcher"]')
    manager = hana.locator(".dask-DaskClusterManager")
    await manager.wait_for(timeout=30_000)
    shot = tmp_path / "demo-dask-tab.png"
    await hana.screenshot(path=str(shot))
    keep(shot)
    # The extension lists only clusters it created; its "new cluster" request
    # builds the factory from the server's Dask file.
    answer = await hana.evaluate("""async () => {
        const xsrf = (document.cookie.match(/_xsrf=([^;]+)/) || [])[1] || "";
        const r = await fetch(location.pathname.replace(/\\/lab.*$/, "/dask/clusters"),
                              {method: "PUT", headers: {"X-XSRFToken": decodeURIComponent(xsrf)}});
        return [r.status, await r.text()];
    }""")
    status, body = answer
    assert status == 500, answer  # the default LocalCluster factory would have started a cluster
    assert "LocalCluster" not in body, body
    print("dask-labextension new cluster:", body[:500])
