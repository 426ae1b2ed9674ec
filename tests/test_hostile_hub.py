"""Hostile requests against a real JupyterHub (MockHub + configurable-http-proxy):
spawn by link, a POST without the hub's XSRF token, huge numbers through the
REST API and the form page afterwards, a callable profile_list that returns a
broken configuration.
"""

from __future__ import annotations

import copy
import html
import json
from urllib.parse import urlencode

import pytest
from jupyterhub.tests.utils import async_requests

from hub_fixtures import RecordingSpawner

pytestmark = pytest.mark.hub

GROUPS = {"cms": ["bob"], "highrate": ["hana"]}
USERS = ("bob", "hana")


def pods_of(user: str) -> list[dict]:
    return [pod for name, pod in RecordingSpawner.recorded if name == user]


@pytest.fixture
async def hub(offload_hub, contract_config):
    return await offload_hub(contract_config, groups=GROUPS, users=USERS)


async def get_link(hub, user: str, query: dict):
    url = hub.spawn_url(user) + "?" + urlencode(query)
    return await async_requests.get(url, cookies=hub.cookies[user], allow_redirects=False)


LINKS = [
    # plain user_options, as JupyterHub passes "opt-" query arguments
    {"opt-profile": "analysis", "opt-target": "naples", "opt-cores": "8", "opt-image": "offload"},
    # legacy names without "opt-"
    {"profile": "analysis", "target": "naples", "cores": "8"},
    # the form's own field names
    {"profile": "analysis", "profile-option-analysis--target": "naples", "profile-option-analysis--cores": "8"},
]


@pytest.mark.parametrize("query", LINKS)
async def test_a_link_with_options_starts_nothing_and_shows_the_prefilled_form(hub, query):
    r = await get_link(hub, "hana", query)
    assert r.status_code == 200, r.text
    page = html.unescape(r.text)
    assert "A link cannot start a server" in page
    # pre-filled with what the link asked for
    assert 'value="naples" checked' in r.text or 'value="naples" selected' in r.text, r.text
    # nothing started, nothing created
    model = await hub.api_user("hana")
    assert model["servers"] == {}
    assert pods_of("hana") == []


async def test_a_link_never_carries_free_text(hub):
    image = "ghcr.io/org/attacker-chosen:1"
    for query in (
        {"opt-profile": "analysis", "opt-image--unlisted-choice": image},
        {
            "profile": "analysis",
            "profile-option-analysis--image": "__other__",
            "profile-option-analysis--image--unlisted-choice": image,
        },
    ):
        r = await get_link(hub, "bob", query)
        assert r.status_code == 200
        # JupyterHub's form action repeats the request's URL, but its POST reads the body only
        # (jupyterhub/handlers/pages.py, SpawnHandler._post): the fields must not hold the text.
        form = r.text[r.text.index('id="offload-spawner-form"') :]
        assert "attacker-chosen" not in form
        assert (await hub.api_user("bob"))["servers"] == {}
    assert pods_of("bob") == []


async def test_a_form_post_without_the_hubs_xsrf_token_is_refused(hub):
    cookies = {k: v for k, v in hub.cookies["bob"].items()}
    r = await async_requests.post(
        hub.spawn_url("bob"),
        data={"profile": "analysis", "profile-option-analysis--image": "alma9"},
        cookies=cookies,
        allow_redirects=False,
    )
    assert r.status_code == 403
    assert (await hub.api_user("bob"))["servers"] == {}
    assert pods_of("bob") == []


@pytest.mark.parametrize("value", [10**400, int("9" * 400)])
async def test_huge_numbers_through_rest_are_refused_and_the_form_still_renders(hub, value):
    for key in ("cores", "memory"):
        r = await hub.api_spawn("bob", {"profile": "analysis", key: value})
        assert r.status_code == 400, r.text
        message = r.json()["message"]
        assert "too large" in message
        assert "Traceback" not in message and "OverflowError" not in message
        # JupyterHub keeps the refused options; the spawn page must still answer
        form = await hub.get_form("bob")
        assert form.status_code == 200, form.text[:500]
        assert "no longer available" in html.unescape(form.text)
    assert pods_of("bob") == []


async def test_a_broken_callable_profile_list_gives_a_clear_message_not_a_500(offload_hub, contract_config, caplog):
    config = copy.deepcopy(contract_config)
    broken = copy.deepcopy(config["profile_list"])
    broken[0]["kubespawner_override"] = {"cpu_limit": "lots", "imgae": "x"}

    def profile_list(spawner):
        return broken

    config["profile_list"] = profile_list
    hub = await offload_hub(config, groups=GROUPS, users=USERS)
    form = await hub.get_form("bob")
    assert form.status_code == 200, form.text[:500]
    assert "error in the hub&#39;s configuration" in form.text or "error in the hub's configuration" in html.unescape(
        form.text
    )
    assert "imgae" not in form.text  # the details are for the admins' log
    r = await hub.api_spawn("bob", {})
    assert r.status_code == 503, r.text
    assert "Please tell the hub's admins" in r.json()["message"]
    assert pods_of("bob") == []


async def test_a_raising_callable_profile_list_gives_the_same_clear_message(offload_hub, contract_config):
    config = copy.deepcopy(contract_config)

    def profile_list(spawner):
        raise RuntimeError("the group service is down")

    config["profile_list"] = profile_list
    hub = await offload_hub(config, groups=GROUPS, users=USERS)
    form = await hub.get_form("bob")
    assert form.status_code == 200
    assert "group service" not in form.text
    r = await hub.api_spawn("bob", {})
    assert r.status_code == 503
    assert json.dumps(r.json()).count("group service") == 0
