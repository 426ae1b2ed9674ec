"""Property tests (hypothesis) of the validator, the menu, the form and the plan.

For any posted form, JSON body or command-line options and any set of groups,
the answer is a Selection the user was entitled to, checked here against the
catalog itself (not the menu that produced it), or a SelectionError with a
sentence; never another exception. Every accepted Selection gives a plan
without error, and user text never reaches an annotation or a label.

Budget: a fixed number of examples per property (``max_examples``), no
per-example deadline, no example database (the suite runs with
``-p no:cacheprovider``), so ``make test`` stays bounded.
"""

from __future__ import annotations

import math
import re
import unicodedata

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from conftest import _contract_config
from offload_spawner.hub.cli import CliError, _options
from offload_spawner.hub.forms import options_from_link, render_form, user_options_from_form
from offload_spawner.pipeline.catalog import build_catalog
from offload_spawner.pipeline.limits import user_ceiling
from offload_spawner.pipeline.menu import build_menu, free_text_digest
from offload_spawner.pipeline.plan import build_plan, fill_value
from offload_spawner.pipeline.selection import UNLISTED_SUFFIX, Selection, SelectionError, select

BUDGET = settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

CATALOG = build_catalog(**_contract_config())
GROUP_NAMES = ["cms", "highrate", "ai-infn", "gpu-users", "atlas", "cmsfake", ""]

# Values that reach deep into the validator: real keys, real choices, and the
# hostile ones found by hand (huge numbers, invisible characters, the hidden image).
INTERESTING_TEXT = [
    "analysis",
    "alma9",
    "offload",
    "cluster",
    "naples",
    "leonardo",
    "nvidia.com/gpu:a100",
    "nvidia.com/gpu:t4",
    "xilinx.com/fpga:u55c",
    "nvidia.com/gpu:h100",
    "none",
    "__other__",
    "ghcr.io/org/offload:1.0",
    "GHCR.IO/org/offload:1.0",
    "ghcr.io/org/x:1",
    "ghcr.io/org/x\u202e:1",
    "ghcr.io/org/x\u200b:1",
    "ghcr.io/org/x\x9b:1",
    "{value}",
    "{0.__class__}",
    "8G",
    "32G",
    "64G",
    "1.5T",
    "8Gi",
    "9" * 400,
    "1e400",
    "nan",
    "inf",
    "-1",
    "0",
    "4",
    "8",
    "2.5",
    " 4 ",
    "",
]
KEYS = [
    "profile",
    "target",
    "cores",
    "memory",
    "accelerator",
    "accelerator_count",
    "image",
    "image" + UNLISTED_SUFFIX,
    "unknown",
    "__proto__",
]

scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from([10**400, -(10**400), 2**63, 2**1000]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(INTERESTING_TEXT),
    st.text(max_size=40),
)
json_value = st.recursive(
    scalar,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)
HUGE = [10**400, -(10**400), 2**63, "9" * 400, "1" + "0" * 30, 1e308, float("nan"), float("inf")]


def hostile_or(*good) -> st.SearchStrategy:
    """Good values for a key, mixed with the hostile ones and anything at all."""
    return st.one_of(st.sampled_from(list(good)), st.sampled_from(HUGE), scalar)


IMAGES = [
    "ghcr.io/org/offload:1.0",
    "GHCR.IO/org/offload:1.0",
    " ghcr.io/org/offload:1.0",
    "ghcr.io/org/alma9:1.0",
    "ghcr.io/org/x:1",
    "ghcr.io/org/x\u202e:1",
    "ghcr.io/org/x\u200b:1",
    "ghcr.io/org/x\x9b:1",
    "ghcr.io/org/x\u2028:1",
    "ghcr.io/org/x\ue000:1",
    "ghcr.io/org/{value}:1",
    "ghcr.io/org/a b:1",
]
# Bodies that mostly get past the first checks (a real profile, real keys, often
# good values), so that the deep paths are reached within the budget.
plausible = st.fixed_dictionaries(
    {},
    optional={
        "profile": st.sampled_from(["analysis", "analysis", "nope", ""]) | scalar,
        "target": hostile_or("cluster", "naples", "leonardo", "nowhere"),
        "image": hostile_or("alma9", "offload", "__other__"),
        "image" + UNLISTED_SUFFIX: st.sampled_from(IMAGES) | scalar,
        "cores": hostile_or(1, 2, 4, 8, 16, "4", 2.5, 0, -1),
        "memory": hostile_or("4G", "8G", "32G", "64G", 8, "1.5T", "8Gi", "0G"),
        "accelerator": hostile_or("nvidia.com/gpu:a100", "nvidia.com/gpu:t4", "xilinx.com/fpga:u55c", "none"),
        "accelerator_count": hostile_or(1, 2, 3, 4, 5, "2", 0),
    },
)
user_options = st.one_of(
    plausible,
    plausible,
    plausible,
    st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=12), json_value, max_size=8),
    json_value,
)
groups = st.lists(st.sampled_from(GROUP_NAMES), max_size=4).map(frozenset)


def visible(allowed, user_groups) -> bool:
    return allowed is None or bool(set(allowed) & set(user_groups))


def assert_entitled(selection: Selection, user_groups: frozenset[str]) -> None:
    """Checked against the catalog, independently of the menu code."""
    profile = CATALOG.profile(selection.profile)
    assert profile is not None and visible(profile.allowed_groups, user_groups)
    assert selection.target in CATALOG.profile_targets(profile)
    target = CATALOG.offload_targets[selection.target]
    assert visible(target.allowed_groups, user_groups)
    ceiling = user_ceiling(CATALOG, user_groups)
    for key, pick in selection.options.items():
        option = profile.profile_options[key]
        if pick.unlisted is None:
            assert visible(option.choices[pick.choice].allowed_groups, user_groups)
            continue
        text = pick.unlisted
        assert option.unlisted_choice.enabled
        assert not any(unicodedata.category(c) in {"Cc", "Cf", "Zl", "Zp", "Co"} for c in text)
        assert not re.search(r"[{}\s]", text)
        if option.unlisted_choice.validation_regex:
            assert re.fullmatch(option.unlisted_choice.validation_regex, text)
        # never what a choice hidden from the user gives
        for choice in option.choices.values():
            if not visible(choice.allowed_groups, user_groups):
                hidden = choice.kubespawner_override.get("image")
                if hidden is not None:
                    assert free_text_digest(text) != free_text_digest(hidden)
    if selection.cores is not None:
        assert math.isfinite(selection.cores) and selection.cores > 0
        for cap in (ceiling.cores, target.limits.cores):
            assert cap is None or selection.cores <= cap
        assert profile.cores is not None
        if profile.cores.choices is not None:
            assert selection.cores in profile.cores.choices
    if selection.memory is not None:
        for cap in (ceiling.memory, target.limits.memory):
            assert cap is None or selection.memory <= cap
        assert profile.memory is not None
        if profile.memory.choices is not None:
            assert selection.memory in profile.memory.choices
    if selection.accelerator is not None:
        offer = profile.accelerators[selection.accelerator]
        assert selection.accelerator_model in offer.models
        assert 1 <= selection.accelerator_count <= offer.max
        granted = (target.limits.accelerators or {}).get(selection.accelerator)
        assert granted is not None and selection.accelerator_count <= granted
        cap = ceiling.accelerator_cap(selection.accelerator)
        assert cap is None or selection.accelerator_count <= cap


def assert_refusal_is_a_sentence(error: SelectionError) -> None:
    assert isinstance(error.message, str) and error.message
    assert error.message.endswith("."), error.message
    assert len(error.message) < 1000
    assert "Traceback" not in error.message


def assert_plan_is_safe(selection: Selection) -> None:
    plan = build_plan(CATALOG, selection)
    texts = [p.unlisted for p in selection.options.values() if p.unlisted]
    for text in texts:
        for value in list(plan.annotations.values()) + list(plan.labels.values()) + list(plan.env.values()):
            assert text not in value
    profile = CATALOG.profile(selection.profile)
    for key, pick in selection.options.items():
        if pick.unlisted is not None:
            template = profile.profile_options[key].unlisted_choice.kubespawner_override
            assert fill_value(template, pick.unlisted) in plan.overrides


def check(user_groups: frozenset[str], options) -> None:
    menu = build_menu(CATALOG, user_groups)
    try:
        selection = select(menu, options)
    except SelectionError as e:
        assert_refusal_is_a_sentence(e)
        return
    assert_entitled(selection, user_groups)
    # canonical: the stored form gives the same selection back
    assert select(menu, selection.to_user_options()) == selection
    assert_plan_is_safe(selection)


# The hostile cases found by hand, always tried first (hypothesis then explores).
SEEDS = [
    (frozenset({"cms"}), {"profile": "analysis", "image--unlisted-choice": "ghcr.io/org/offload:1.0"}),
    (frozenset({"cms"}), {"profile": "analysis", "image--unlisted-choice": "ghcr.io/org/x\u202e:1"}),
    (frozenset({"cms"}), {"profile": "analysis", "memory": 10**400}),
    (frozenset({"cms"}), {"profile": "analysis", "cores": "9" * 400}),
    (
        frozenset({"cms", "ai-infn", "gpu-users"}),
        {"target": "leonardo", "accelerator": "nvidia.com/gpu:a100", "accelerator_count": 10**400},
    ),
    (frozenset(), []),
]


def seeded(test):
    for user_groups, options in SEEDS:
        test = example(user_groups, options)(test)
    return test


@BUDGET
@seeded
@given(groups, user_options)
def test_any_json_body_gives_an_entitled_selection_or_a_sentence(user_groups, options):
    check(user_groups, options)


form_values = st.lists(
    st.sampled_from(INTERESTING_TEXT + IMAGES + [str(v) for v in HUGE]) | st.text(max_size=20), min_size=1, max_size=2
)
FORM_KEYS = [
    "profile",
    "_xsrf",
    "profile-option-analysis--image",
    "profile-option-analysis--image--unlisted-choice",
    "profile-option-analysis--cores",
    "profile-option-analysis--memory",
    "profile-option-analysis--target",
    "profile-option-analysis--accelerator",
    "profile-option-analysis--accelerator_count",
    "profile-option-other--cores",
    "profile-option-",
    "junk",
]
formdata = st.one_of(
    st.builds(
        lambda rest: {"profile": ["analysis"], **rest},
        st.dictionaries(st.sampled_from(FORM_KEYS[1:]), form_values, max_size=7),
    ),
    st.dictionaries(st.sampled_from(FORM_KEYS) | st.text(max_size=30), form_values, max_size=8),
)


@BUDGET
@given(groups, formdata)
def test_any_posted_form_gives_an_entitled_selection_or_a_sentence(user_groups, data):
    try:
        options = user_options_from_form(data)
    except SelectionError as e:
        assert_refusal_is_a_sentence(e)
        return
    check(user_groups, options)


@BUDGET
@given(groups, formdata)
def test_any_spawn_link_prefills_without_free_text(user_groups, query):
    options = options_from_link(query)
    assert not any(key.endswith(UNLISTED_SUFFIX) for key in options)
    check(user_groups, options)
    page = render_form(build_menu(CATALOG, user_groups), options)
    assert isinstance(page, str)


cli_pairs = st.lists(
    st.builds(
        lambda k, v: f"{k}={v}",
        st.sampled_from(KEYS) | st.text(max_size=10),
        st.sampled_from(INTERESTING_TEXT) | st.text(max_size=20),
    )
    | st.text(max_size=20),
    max_size=6,
)


@BUDGET
@given(groups, cli_pairs)
def test_any_cli_options_give_an_entitled_selection_or_a_sentence(user_groups, pairs):
    try:
        options = _options(pairs)
    except CliError:
        return
    check(user_groups, options)


@BUDGET
@seeded
@given(groups, user_options)
def test_the_form_renders_for_any_stored_options(user_groups, options):
    # JupyterHub stores options the REST API refused: the spawn page must still render.
    page = render_form(build_menu(CATALOG, user_groups), options if isinstance(options, dict) else None)
    assert "offload-spawner-form" in page
