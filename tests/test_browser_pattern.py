"""validation_regex -> an HTML pattern with the same meaning in v-mode, or none.

The browser side (Chromium compiling the attribute) is in
tests/test_form_polish_browser.py; here the translation itself.
"""

from __future__ import annotations

import pytest

from offload_spawner.pipeline.browser_pattern import html_pattern, literal_prefix

DEMO = r"^quay\.io/jupyter/[a-z0-9._/-]+:[A-Za-z0-9._-]+$"


@pytest.mark.parametrize(
    ("regex", "pattern"),
    [
        (DEMO, r"^quay\.io/jupyter/[a-z0-9\._\/\-]+:[A-Za-z0-9\._\-]+$"),
        (r"[a-z]+", r"[a-z]+"),
        (r"[^/]+/[^/]+", r"[^\/]+/[^\/]+"),
        (r"[-a]", r"[\-a]"),
        (r"[a\-z]", r"[a\-z]"),
        (r"x{2,3}", r"x{2,3}"),
        (r"a}b", r"a\}b"),
        (r"[\w.]+", r"[\w\.]+"),
        (r"(?:ab|cd)\d", r"(?:ab|cd)\d"),
        (r"[a..]", r"[a\.\.]"),
    ],
)
def test_shared_syntax_is_respelled_for_v_mode(regex, pattern):
    assert html_pattern(regex) == pattern


@pytest.mark.parametrize(
    "regex",
    [
        r"(?i)abc",
        r"(?P<name>a)",
        r"\Aabc\Z",
        r"(a)\1",
        r"a{,3}",
        r"[a-\d]",
        r"(?#comment)a",
        "[unclosed",
    ],
)
def test_python_only_syntax_gives_no_pattern(regex):
    assert html_pattern(regex) is None


def test_no_regex_no_pattern():
    assert html_pattern(None) is None and html_pattern("") is None


def test_literal_prefix_names_the_registry():
    assert literal_prefix(DEMO) == "quay.io/jupyter/"
    assert literal_prefix(r"^ab*c") == "a"
    assert literal_prefix(r"[a-z]+") == ""
    assert literal_prefix(None) == ""
