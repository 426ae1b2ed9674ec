"""The spawn form in a real browser (Debian chromium driven by playwright)
against a real hub: two users of different groups log in, see their own
choices, pick options, submit, and the hub stores their user_options.

Screenshots of the forms are saved under the test's tmp dir (and, when
OFFLOAD_SCREENSHOT_DIR is set, copied there for people to look at).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from jupyterhub.tests.utils import public_url

from hub_fixtures import RecordingSpawner

pytestmark = [pytest.mark.hub, pytest.mark.browser]

CHROMIUM = "/usr/bin/chromium"
# As the machine notes say: without these flags chromium keeps trying hosts
# this machine cannot reach.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
GROUPS = {"cms": ["bob", "carol"], "highrate": ["hana"], "ai-infn": ["carol"], "gpu-users": ["carol"]}


@pytest.fixture
async def browser():
    """Headless chromium. Tests request it *after* their hub, so that the
    browser closes before the hub stops (the other order hangs its close)."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `apt-get install chromium` (make setup does)")
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        await browser.close()


@pytest.fixture
async def hub(offload_hub, contract_config):
    return await offload_hub(contract_config, groups=GROUPS, users=["bob", "carol", "hana"])


async def open_form(browser, app, user: str):
    context = await browser.new_context(viewport={"width": 1000, "height": 1400})
    page = await context.new_page()
    base = public_url(app)
    await page.goto(base + "hub/login")
    await page.fill("#username_input", user)
    await page.fill("#password_input", user)  # MockHub's PAM stand-in: password == name
    await page.click("#login_submit")
    await page.goto(base + f"hub/spawn/{user}")
    await page.wait_for_selector("#offload-spawner-form")
    return page


def keep(screenshot: Path) -> None:
    target = os.environ.get("OFFLOAD_SCREENSHOT_DIR")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(screenshot, Path(target) / screenshot.name)


async def option_values(page, name: str, enabled_only: bool = False) -> list[str]:
    selector = f'select[name="{name}"] option' + (":not([disabled])" if enabled_only else "")
    return await page.eval_on_selector_all(selector, "els => els.map(e => e.value)")


async def test_two_users_see_pick_and_submit(hub, browser, tmp_path):
    # --- bob (cms): only the in-cluster target and the AlmaLinux image
    page = await open_form(browser, hub.app, "bob")
    assert await option_values(page, "profile-option-analysis--image") == ["alma9", "__other__"]
    assert await option_values(page, "profile-option-analysis--target") == ["cluster"]
    assert await page.locator("text=CINECA Leonardo").count() == 0
    # the free-text field appears only with "Other..."
    text = page.locator('input[name="profile-option-analysis--image--unlisted-choice"]')
    assert await text.is_hidden()
    await page.select_option('select[name="profile-option-analysis--image"]', "__other__")
    assert await text.is_visible()
    await page.select_option('select[name="profile-option-analysis--image"]', "alma9")
    await page.select_option('select[name="profile-option-analysis--cores"]', "4")
    await page.select_option('select[name="profile-option-analysis--memory"]', "8G")
    shot = tmp_path / "form-bob.png"
    await page.screenshot(path=str(shot), full_page=True)
    keep(shot)
    await page.click('#spawn_form button[type="submit"]')
    await page.wait_for_url("**/user/bob/**")
    model = await hub.wait_ready("bob")
    assert model["servers"][""]["user_options"] == {
        "profile": "analysis",
        "image": "alma9",
        "cores": 4,
        "memory": "8G",
        "target": "cluster",
    }

    # --- carol (cms + ai-infn + gpu-users): GPUs only where the target offers them
    page = await open_form(browser, hub.app, "carol")
    assert await option_values(page, "profile-option-analysis--target") == ["cluster", "leonardo"]
    gpu = "nvidia.com/gpu:a100"
    assert gpu not in await option_values(page, "profile-option-analysis--accelerator", enabled_only=True)
    await page.select_option('select[name="profile-option-analysis--target"]', "leonardo")
    assert gpu in await option_values(page, "profile-option-analysis--accelerator", enabled_only=True)
    await page.select_option('select[name="profile-option-analysis--accelerator"]', gpu)
    count = page.locator('input[name="profile-option-analysis--accelerator_count"]')
    assert await count.get_attribute("max") == "2"  # gpu-users may have 2 of leonardo's 4
    await count.fill("2")
    shot = tmp_path / "form-carol.png"
    await page.screenshot(path=str(shot), full_page=True)
    keep(shot)
    await page.click('#spawn_form button[type="submit"]')
    await page.wait_for_url("**/user/carol/**")
    model = await hub.wait_ready("carol")
    assert model["servers"][""]["user_options"] == {
        "profile": "analysis",
        "image": "alma9",
        "cores": 2,
        "memory": "4G",
        "accelerator": gpu,
        "accelerator_count": 2,
        "target": "leonardo",
    }
    [(_, pod)] = [(u, p) for u, p in RecordingSpawner.recorded if u == "carol"]
    assert pod["spec"]["nodeSelector"]["kubernetes.io/hostname"] == "vk-leonardo"


async def test_refused_form_comes_back_with_the_message_by_the_field(hub, browser, tmp_path):
    page = await open_form(browser, hub.app, "hana")
    await page.select_option('select[name="profile-option-analysis--image"]', "__other__")
    await page.fill('input[name="profile-option-analysis--image--unlisted-choice"]', "docker.io/library/python:3")
    # bypass the browser's own pattern check: the server must refuse by itself
    await page.eval_on_selector("#spawn_form", "f => f.noValidate = true")
    await page.click('#spawn_form button[type="submit"]')
    error = page.locator('[data-offload-field-error="image--unlisted-choice"]')
    await error.wait_for()
    assert "is not an allowed Image" in await error.inner_text()
    # the user's choice is kept
    assert (
        await page.input_value('input[name="profile-option-analysis--image--unlisted-choice"]')
        == "docker.io/library/python:3"
    )
    shot = tmp_path / "form-hana-error.png"
    await page.screenshot(path=str(shot), full_page=True)
    keep(shot)
    assert [u for u, _ in RecordingSpawner.recorded] == []


async def test_script_tag_in_admin_text_renders_as_text(offload_hub, contract_config, browser):
    contract_config["profile_list"][0]["display_name"] = "<script>window.pwned = 1</script>Analysis"
    hub = await offload_hub(contract_config, groups={"cms": ["bob"]}, users=["bob"])
    page = await open_form(browser, hub.app, "bob")
    assert await page.evaluate("window.pwned === undefined")
    assert "<script>window.pwned = 1</script>Analysis" in await page.inner_text("#offload-spawner-form")


async def test_fields_of_the_unselected_profile_are_hidden(offload_hub, contract_config, browser):
    contract_config["profile_list"].append(
        {
            "display_name": "Teaching",
            "slug": "teaching",
            "cores": {"min": 0.5, "max": 2, "default": 1},
            "targets": ["cluster"],
        }
    )
    hub = await offload_hub(contract_config, groups={"cms": ["bob"]}, users=["bob"])
    page = await open_form(browser, hub.app, "bob")
    analysis = page.locator('[data-profile="analysis"] .offload-fields')
    teaching = page.locator('[data-profile="teaching"] .offload-fields')
    assert await analysis.is_visible() and await teaching.is_hidden()
    await page.check('input[name="profile"][value="teaching"]')
    assert await analysis.is_hidden() and await teaching.is_visible()
    cores = page.locator('input[name="profile-option-teaching--cores"]')
    assert (await cores.get_attribute("min"), await cores.get_attribute("max")) == ("0.5", "2")
    await cores.fill("1.5")
    await page.click('#spawn_form button[type="submit"]')
    await page.wait_for_url("**/user/bob/**")
    model = await hub.wait_ready("bob")
    assert model["servers"][""]["user_options"] == {"profile": "teaching", "cores": 1.5, "target": "cluster"}


async def test_any_available_in_the_browser(offload_hub, browser, tmp_path):
    """The form's "Any available": offered first, what it allows is what any
    target allows (a GPU, which the cluster target does not offer), and
    submitting it stores target "auto" with the user's choices."""
    from test_auto_target import auto_config

    hub = await offload_hub(
        {**auto_config(), "offload_auto_target": True, "offload_auto_target_label": "Wherever there is room"},
        users=["dave"],
    )
    page = await open_form(browser, hub.app, "dave")
    name = "profile-option-gpu--"
    assert await option_values(page, name + "target") == ["auto", "alpha", "beta", "cluster"]
    await page.select_option(f'select[name="{name}target"]', "cluster")
    # The cluster target's limit is 4 cores; "Any available" offers what any target allows.
    assert await option_values(page, name + "cores", enabled_only=True) == ["1", "2", "4"]
    assert await option_values(page, name + "accelerator", enabled_only=True) == ["none"]
    await page.select_option(f'select[name="{name}target"]', "auto")
    assert await option_values(page, name + "accelerator", enabled_only=True) == ["none", "nvidia.com/gpu:a100"]
    await page.select_option(f'select[name="{name}accelerator"]', "nvidia.com/gpu:a100")
    await page.screenshot(path=str(tmp_path / "form-any-available.png"), full_page=True)
    keep(tmp_path / "form-any-available.png")
    await page.click('#spawn_form button[type="submit"]')
    await page.wait_for_url("**/user/dave/**")
    model = await hub.wait_ready("dave")
    options = model["servers"][""]["user_options"]
    assert options["target"] == "auto" and options["accelerator"] == "nvidia.com/gpu:a100"
    [(_, pod)] = [r for r in RecordingSpawner.recorded if r[0] == "dave"]
    # No cluster state here (availability unknown): the first ranked target that accepts a GPU.
    assert pod["metadata"]["labels"]["offload-spawner.io/target"] == "alpha"
