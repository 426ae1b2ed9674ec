"""The spawn form's details, checked in the real browser (Debian chromium via
playwright) against a real hub (MockHub with the real configurable-http-proxy):

* the admin's ``validation_regex`` reaches the page as a ``pattern`` Chromium
  compiles (with the ``v`` flag, where ``[a-z0-9._/-]`` is a syntax error):
  no console error, and the browser accepts exactly what the hub accepts;
* the free-text box says what it accepts;
* the chosen target is marked, and its text does not repeat its name;
* after a refusal every field keeps the user's choice and the message sits
  next to the refused field.

Screenshots go to the test's tmp dir and, with OFFLOAD_SCREENSHOT_DIR set, are
copied there (docs/img holds the ones docs/user-guide.md shows).
"""

from __future__ import annotations

import re

import pytest

from hub_fixtures import RecordingSpawner
from test_form_browser import browser, keep, open_form  # noqa: F401  (fixture)

pytestmark = [pytest.mark.hub, pytest.mark.browser]

GROUPS = {"cms": ["bob", "carol"], "highrate": ["hana"], "ai-infn": ["carol"], "gpu-users": ["carol"]}
IMAGE = 'select[name="profile-option-analysis--image"]'
IMAGE_TEXT = 'input[name="profile-option-analysis--image--unlisted-choice"]'
TARGET = 'select[name="profile-option-analysis--target"]'
CORES = 'select[name="profile-option-analysis--cores"]'
MEMORY = 'select[name="profile-option-analysis--memory"]'


@pytest.fixture
async def hub(offload_hub, contract_config):
    return await offload_hub(contract_config, groups=GROUPS, users=["bob", "carol", "hana"])


async def open_with_console(browser, app, user):  # noqa: F811
    messages: list[str] = []
    page = await open_form(browser, app, user)
    page.on("console", lambda m: messages.append(f"{m.type}: {m.text}"))
    # Reload so that every message of the page's own load is caught.
    await page.reload()
    await page.wait_for_selector("#offload-spawner-form")
    return page, messages


async def test_the_pattern_compiles_in_chromium_and_agrees_with_the_hub(hub, browser, contract_catalog, tmp_path):  # noqa: F811
    page, console = await open_with_console(browser, hub.app, "hana")
    pattern = await page.get_attribute(IMAGE_TEXT, "pattern")
    assert pattern, "the contract's regex has a v-mode spelling; the page must carry it"
    # HTML compiles the attribute as ^(?:pattern)$ with the v flag.
    compiled = await page.evaluate(
        "p => { try { new RegExp('^(?:' + p + ')$', 'v'); return true } catch (e) { return String(e) } }", pattern
    )
    assert compiled is True, compiled
    assert not [m for m in console if "pattern" in m.lower() or m.startswith("error")], console

    regex = contract_catalog.profile("analysis").profile_options["image"].unlisted_choice.validation_regex
    await page.select_option(IMAGE, "__other__")
    for text in (
        "ghcr.io/org/my-image:1.0",
        "ghcr.io/org/a/b.c_d-e:x",
        "docker.io/library/python:3",
        "ghcr.io/org/UPPER:1",
        "ghcr.io/org/x",
        "ghcr.io/org/x:1 2",
        "ghcrxio/org/x:1",
    ):
        await page.fill(IMAGE_TEXT, text)
        browser_says = await page.eval_on_selector(IMAGE_TEXT, "e => !e.validity.patternMismatch")
        assert browser_says == bool(re.fullmatch(regex, text)), text
    assert not [m for m in console if m.startswith("error")], console


async def test_the_free_text_box_says_what_it_accepts(hub, browser, tmp_path):  # noqa: F811
    page = await open_form(browser, hub.app, "hana")
    hint = page.locator('[id="profile-option-analysis--image-hint"]')
    assert await hint.is_hidden()  # only with "Other..."
    await page.select_option(IMAGE, "__other__")
    assert await hint.is_visible()
    # No validation_message in the contract: the fixed start of the regex says where images come from.
    assert await hint.inner_text() == "Enter a value starting with ghcr.io/org/"
    assert await page.get_attribute(IMAGE_TEXT, "placeholder") == "ghcr.io/org/…"


async def test_the_chosen_target_is_marked_and_not_named_twice(hub, browser, tmp_path):  # noqa: F811
    page = await open_form(browser, hub.app, "hana")
    chosen = page.locator("li.offload-target-chosen")
    assert await chosen.count() == 1
    assert await chosen.get_attribute("data-target") == await page.eval_on_selector(TARGET, "s => s.value")
    await page.select_option(TARGET, "naples")
    assert await chosen.get_attribute("data-target") == "naples"
    assert await chosen.get_attribute("aria-current") == "true"
    assert await chosen.locator(".offload-chosen-badge").is_visible()
    assert await page.locator('li[data-target="cluster"] .offload-chosen-badge').is_hidden()
    for li in await page.locator(".offload-target-help li").all():
        name = await li.locator("strong").inner_text()
        assert (await li.inner_text()).count(name) == 1, await li.inner_text()
    shot = tmp_path / "form-target-chosen.png"
    await page.screenshot(path=str(shot), full_page=True)
    keep(shot)


async def test_after_a_refusal_every_field_keeps_the_users_choice(hub, browser, tmp_path):  # noqa: F811
    page = await open_form(browser, hub.app, "hana")
    await page.select_option(TARGET, "naples")
    await page.select_option(CORES, "4")
    await page.select_option(MEMORY, "8G")
    await page.select_option(IMAGE, "__other__")
    await page.fill(IMAGE_TEXT, "docker.io/library/python:3")
    # bypass the browser's own pattern check: the hub must refuse by itself
    await page.eval_on_selector("#spawn_form", "f => f.noValidate = true")
    await page.click('#spawn_form button[type="submit"]')
    error = page.locator('[data-offload-field-error="image--unlisted-choice"]')
    await error.wait_for()
    assert await page.input_value(IMAGE) == "__other__"
    assert await page.input_value(IMAGE_TEXT) == "docker.io/library/python:3"
    assert (await page.input_value(TARGET), await page.input_value(CORES), await page.input_value(MEMORY)) == (
        "naples",
        "4",
        "8G",
    )
    # The message is in the image field's own block.
    assert await page.locator('[data-option="image"] [data-offload-field-error]').count() == 1
    shot = tmp_path / "form-refused.png"
    await page.screenshot(path=str(shot), full_page=True)
    keep(shot)

    # A refusal of another field (a value the page never offered) keeps the listed image too.
    await page.select_option(IMAGE, "offload")
    await page.eval_on_selector(CORES, "s => { s.options[s.selectedIndex].value = '64' }")
    await page.eval_on_selector("#spawn_form", "f => f.noValidate = true")
    await page.click('#spawn_form button[type="submit"]')
    await page.locator('[data-offload-field-error="cores"]').wait_for()
    assert (await page.input_value(IMAGE), await page.input_value(TARGET), await page.input_value(MEMORY)) == (
        "offload",
        "naples",
        "8G",
    )
    assert await page.locator(".offload-cores [data-offload-field-error]").count() == 1
    assert [u for u, _ in RecordingSpawner.recorded] == []


async def test_after_a_refusal_the_accelerator_and_its_count_are_kept(hub, browser, tmp_path):  # noqa: F811
    page = await open_form(browser, hub.app, "carol")
    accelerator = 'select[name="profile-option-analysis--accelerator"]'
    count = 'input[name="profile-option-analysis--accelerator_count"]'
    await page.select_option(TARGET, "leonardo")
    await page.select_option(accelerator, "nvidia.com/gpu:a100")
    await page.fill(count, "2")
    await page.press(count, "Tab")  # its change event now, not when the submit button takes the focus
    await page.eval_on_selector(CORES, "s => { s.options[s.selectedIndex].value = '64' }")
    await page.eval_on_selector("#spawn_form", "f => f.noValidate = true")
    await page.click('#spawn_form button[type="submit"]')
    await page.locator('[data-offload-field-error="cores"]').wait_for()
    assert (await page.input_value(TARGET), await page.input_value(accelerator), await page.input_value(count)) == (
        "leonardo",
        "nvidia.com/gpu:a100",
        "2",
    )
    assert [u for u, _ in RecordingSpawner.recorded] == []
