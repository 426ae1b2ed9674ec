"""The pure parts of fresh tokens and IAM group mapping (no hub, no provider).

The provider-backed behaviour (a real refresh, one refresh for many callers,
the spawn refused when the login cannot be renewed) is in test_iam_login.py.
"""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest

from offload_spawner.identity.iam import (
    DiscoveryError,
    IAMOAuthenticator,
    groups_from_auth_state,
    normalize_groups,
    pick_group_claim,
)
from offload_spawner.identity.refresh import (
    ISSUED_AT_KEY,
    LoginExpired,
    access_token_expiry,
    ensure_fresh,
    jwt_claims,
    lives_long_enough,
    min_lifetime_for,
    remaining_lifetime,
)
from offload_spawner.pipeline.catalog import TokenPolicy
from test_tokens import jwt

# --- expiry --------------------------------------------------------------------------


def test_expiry_from_the_jwt_exp_claim():
    state = {"access_token": jwt({"sub": "alice", "exp": 2_000_000_000}), "token_response": {"expires_in": 5}}
    assert access_token_expiry(state) == 2_000_000_000.0
    assert remaining_lifetime(state, now=1_999_999_000) == 1000


def test_expiry_from_expires_in_and_the_stored_issue_time():
    state = {"access_token": "opaque-token", "token_response": {"expires_in": 3600, ISSUED_AT_KEY: 1_700_000_000}}
    assert access_token_expiry(state) == 1_700_003_600.0


@pytest.mark.parametrize(
    "state",
    [
        None,
        {},
        {"access_token": "opaque-token"},
        {"access_token": "opaque", "token_response": {"expires_in": 3600}},  # no issue time stored
        {"access_token": "a.!!!notbase64!!!.c"},
        {"access_token": jwt({"sub": "alice"})},  # no exp
        {"access_token": jwt({"exp": "soon"})},
        {"access_token": jwt({"exp": True})},
    ],
)
def test_expiry_unknown(state):
    assert access_token_expiry(state) is None
    # an unknown expiry is not a reason to refresh blindly
    assert lives_long_enough(state, 10_000, now=0)


def test_jwt_claims_is_base64_only_and_refuses_non_jwts():
    token = jwt({"sub": "alice", "exp": 5})
    assert jwt_claims(token) == {"sub": "alice", "exp": 5}
    assert jwt_claims("not-a-jwt") is None
    assert jwt_claims(None) is None
    assert jwt_claims("a.W10.c") is None  # a JSON list, not claims


def test_lives_long_enough_is_a_lower_bound():
    state = {"access_token": jwt({"exp": 1000})}
    assert lives_long_enough(state, 100, now=900)
    assert not lives_long_enough(state, 101, now=900)
    assert not lives_long_enough(state, 0, now=1001)  # already expired


@pytest.mark.parametrize(
    "plan,expected",
    [
        (None, 900),
        (SimpleNamespace(start_timeout=None, tokens=TokenPolicy()), 900),
        (SimpleNamespace(start_timeout=3600, tokens=TokenPolicy()), 3900),
        (SimpleNamespace(start_timeout=3600, tokens=TokenPolicy(min_lifetime=120)), 120),
        (SimpleNamespace(start_timeout=None, tokens=TokenPolicy(min_lifetime=0)), 0),
    ],
)
def test_min_lifetime_for_a_plan(plan, expected):
    assert min_lifetime_for(plan) == expected


# --- ensure_fresh without a provider ---------------------------------------------------


class StoredUser:
    """A user stand-in holding auth_state in memory (JupyterHub's User keeps it
    encrypted in its database; test_iam_login.py uses the real one)."""

    def __init__(self, name: str, auth_state: dict | None) -> None:
        self.name = name
        self.auth_state = auth_state
        self.saved = 0

    async def get_auth_state(self):
        return self.auth_state

    async def save_auth_state(self, state):
        self.saved += 1
        self.auth_state = state


def authenticator(**kwargs) -> IAMOAuthenticator:
    return IAMOAuthenticator(
        authorize_url="http://127.0.0.1:1/authorize",
        token_url="http://127.0.0.1:1/token",
        userdata_url="http://127.0.0.1:1/userinfo",
        client_id="hub",
        client_secret="not-used",
        **kwargs,
    )


async def test_a_token_that_lives_long_enough_is_returned_as_is():
    state = {"access_token": jwt({"exp": 10_000}), "refresh_token": "r"}
    user = StoredUser("alice", state)
    # token_url points at a closed port: any request would fail
    assert await ensure_fresh(authenticator(), user, 500, now=9_000) is state
    assert user.saved == 0


async def test_no_refresh_token_means_log_in_again(caplog):
    token = jwt({"exp": 1000, "sub": "alice"})
    user = StoredUser("alice", {"access_token": token, "refresh_token": None})
    caplog.set_level(logging.DEBUG)
    with pytest.raises(LoginExpired) as e:
        await ensure_fresh(authenticator(), user, 600, now=900)
    assert "log in again" in str(e.value)
    assert token not in str(e.value) and token not in caplog.text
    assert user.saved == 0


async def test_unreachable_token_endpoint_means_log_in_again_and_nothing_is_saved(caplog):
    token = jwt({"exp": 1000, "sub": "alice"})
    refresh = "refresh-token-value-that-must-not-be-logged"
    user = StoredUser("alice", {"access_token": token, "refresh_token": refresh})
    auth = authenticator()
    # The authenticator logs to the hub's logger, which stops propagating once a
    # hub has run in this process: listen on it directly.
    hub_log = auth.log
    hub_log.addHandler(caplog.handler)
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger=hub_log.name)
    try:
        with pytest.raises(LoginExpired):
            await ensure_fresh(auth, user, 600, now=900)
    finally:
        hub_log.removeHandler(caplog.handler)
    assert user.saved == 0
    assert refresh not in caplog.text and token not in caplog.text
    # unreachable: the provider is down, which a new login would not fix (test_refresh_logging.py)
    assert "the identity provider is down" in caplog.text


async def test_no_auth_state_with_auth_state_enabled_means_log_in_again():
    with pytest.raises(LoginExpired):
        await ensure_fresh(authenticator(), StoredUser("alice", None), 600)


async def test_an_authenticator_without_auth_state_gives_none():
    assert await ensure_fresh(authenticator(enable_auth_state=False), StoredUser("alice", None), 600) is None


# --- IAM groups --------------------------------------------------------------------------


def test_groups_strip_the_leading_slash_and_keep_subgroups():
    assert normalize_groups(["/cms", "/cms/higgs", "atlas", "/", "", "/cms"]) == ["atlas", "cms", "cms/higgs"]


def test_group_prefix_filters_after_stripping():
    assert normalize_groups(["/cms", "/cms/higgs", "/atlas", "/cmsx"], "cms/") == ["cms/higgs"]
    assert normalize_groups(["/cms", "/cms/higgs", "/atlas"], "cms") == ["cms", "cms/higgs"]


def test_wlcg_groups_is_one_claim_not_a_path():
    # the dotted-key trap: "wlcg.groups" must not be read as claims["wlcg"]["groups"]
    claims = {"wlcg": {"groups": ["/wrong"]}, "wlcg.groups": ["/right"], "groups": ["plain"]}
    assert pick_group_claim(claims, "wlcg.groups") == ["/right"]
    assert pick_group_claim(claims, "groups") == ["plain"]
    assert pick_group_claim(claims, "auto") == ["/right"]
    assert pick_group_claim({"groups": ["plain"]}, "auto") == ["plain"]
    assert pick_group_claim({"groups": "single"}, "groups") == ["single"]
    assert pick_group_claim({"groups": [1, None, "ok"]}, "groups") == ["ok"]


def test_groups_from_auth_state_falls_back_to_the_token_claims():
    state = {"oauth_user": {"sub": "alice"}, "access_token": jwt({"wlcg.groups": ["/cms", "/dune"]})}
    assert groups_from_auth_state(state, "auto", "") == ["cms", "dune"]
    assert groups_from_auth_state({"oauth_user": {"groups": ["/x"]}}, "wlcg.groups", "") == []


def test_the_authenticator_maps_groups_through_its_traits():
    a = authenticator(groups_claim="wlcg.groups", group_prefix="cms")
    assert callable(a.auth_state_groups_key)
    state = {"oauth_user": {"wlcg.groups": ["/cms", "/cms/higgs", "/atlas"], "groups": ["atlas"]}}
    assert a.auth_state_groups_key(state) == ["cms", "cms/higgs"]


def test_iam_defaults():
    a = authenticator()
    assert a.scope == ["openid", "profile", "email", "offline_access", "wlcg", "wlcg.groups"]
    assert a.username_claim == "preferred_username"
    assert a.enable_auth_state and a.manage_groups and a.refresh_pre_spawn
    assert a.refresh_buffer == 300


async def test_an_unreachable_issuer_does_not_stop_the_hub_and_names_the_url():
    a = IAMOAuthenticator(issuer="http://127.0.0.1:1/", client_id="hub", client_secret="x", discovery_timeout=2)
    try:
        assert a.authorize_url == "" and a.discovery == {}
        with pytest.raises(DiscoveryError, match=r"127\.0\.0\.1:1/\.well-known/openid-configuration"):
            await a.discover()
        assert not await a.wait_for_endpoints()  # a login now gets "try again", not a broken redirect
        assert a.authorize_url == ""
    finally:
        a.stop_discovery()


def test_a_bad_groups_claim_is_refused():
    from traitlets import TraitError

    with pytest.raises(TraitError):
        authenticator(groups_claim="roles")


def test_configure_iam_sets_the_authenticator_up():
    from traitlets.config import Config

    from offload_spawner.identity.iam import configure_iam

    c = Config()
    configure_iam(
        c,
        issuer="https://iam.example.org/",
        client_id="hub",
        client_secret="s3",
        groups_claim="wlcg.groups",
        allowed_groups=["cms"],
        authorize_url="https://iam.example.org/authorize",
    )
    assert c.JupyterHub.authenticator_class is IAMOAuthenticator
    section = c.IAMOAuthenticator
    assert section.issuer == "https://iam.example.org/"
    assert section.groups_claim == "wlcg.groups"
    assert section.allowed_groups == {"cms"}
    assert section.authorize_url == "https://iam.example.org/authorize"
    # explicit endpoints: no discovery request when the authenticator is built
    a = IAMOAuthenticator(config=c, token_url="http://127.0.0.1:1/token", userdata_url="http://127.0.0.1:1/userinfo")
    assert a.authorize_url == "https://iam.example.org/authorize" and a.discovery == {}
