"""offload_spawner.hub.forms: form data -> user_options, and the spawn form HTML
(KubeSpawner's field names; what a user may not use is not shown)."""

import functools
import re
from html.parser import HTMLParser

import pytest

from offload_spawner.hub.forms import OTHER, field_name, render_form, user_options_from_form
from offload_spawner.pipeline.catalog import build_catalog
from offload_spawner.pipeline.menu import build_menu
from offload_spawner.pipeline.selection import SelectionError, select

XSS = "<script>alert(1)</script>"
GPU_USER = ["cms", "ai-infn", "gpu-users"]


def form(**fields) -> dict:
    """Form data as tornado gives it: every value a list of strings."""
    return {k: v if isinstance(v, list) else [v] for k, v in fields.items()}


def f(key: str) -> str:
    return field_name("analysis", key)


# --- user_options_from_form ---------------------------------------------------------------


def test_field_names_follow_kubespawner():
    assert field_name("analysis", "image") == "profile-option-analysis--image"
    assert field_name("analysis", "image--unlisted-choice") == "profile-option-analysis--image--unlisted-choice"


def test_maps_kubespawner_field_names():
    data = {
        "profile": ["analysis"],
        f("image"): ["alma9"],
        f("image--unlisted-choice"): [""],
        f("target"): ["leonardo"],
        f("cores"): ["4"],
        f("memory"): ["8G"],
        f("accelerator"): ["nvidia.com/gpu:a100"],
        f("accelerator_count"): ["1"],
    }
    assert user_options_from_form(data) == {
        "profile": "analysis",
        "image": "alma9",
        "target": "leonardo",
        "cores": "4",
        "memory": "8G",
        "accelerator": "nvidia.com/gpu:a100",
        "accelerator_count": "1",
    }


def test_other_profiles_fields_are_dropped():
    data = form(
        **{"profile": "analysis", f("cores"): "2", "profile-option-gpu--cores": "64", "profile-option-gpu--image": "x"}
    )
    assert user_options_from_form(data) == {"profile": "analysis", "cores": "2"}


def test_prefix_of_another_profile_is_not_taken():
    # "analysis" is a prefix of "analysis-2": its fields must not leak into it
    data = form(**{"profile": "analysis", "profile-option-analysis-2--cores": "64"})
    assert user_options_from_form(data) == {"profile": "analysis"}


def test_xsrf_is_ignored():
    assert user_options_from_form(form(_xsrf="token", profile="analysis")) == {"profile": "analysis"}


@pytest.mark.parametrize("field", ["image", "cores", "profile_option-x", "user_options", "_other"])
def test_other_unknown_fields_are_refused(field):
    with pytest.raises(SelectionError) as info:
        user_options_from_form(form(profile="analysis", **{field: "x"}))
    assert info.value.field == field
    assert repr(field) in info.value.message


def test_other_sentinel_selects_the_free_text():
    data = form(**{"profile": "analysis", f("image"): OTHER, f("image--unlisted-choice"): "ghcr.io/org/mine:1"})
    assert user_options_from_form(data) == {"profile": "analysis", "image--unlisted-choice": "ghcr.io/org/mine:1"}
    assert OTHER == "__other__"


def test_listed_choice_wins_over_leftover_text():
    data = form(**{"profile": "analysis", f("image"): "alma9", f("image--unlisted-choice"): "ghcr.io/org/mine:1"})
    assert user_options_from_form(data) == {"profile": "analysis", "image": "alma9"}


def test_other_with_empty_text_is_refused_not_defaulted():
    data = form(**{"profile": "analysis", f("image"): OTHER, f("image--unlisted-choice"): ""})
    with pytest.raises(SelectionError) as info:
        user_options_from_form(data)
    assert info.value.field == "image--unlisted-choice"


def test_text_only_option():
    data = form(**{"profile": "analysis", f("image--unlisted-choice"): "ghcr.io/org/mine:1"})
    assert user_options_from_form(data) == {"profile": "analysis", "image--unlisted-choice": "ghcr.io/org/mine:1"}


def test_no_accelerator_drops_the_count():
    data = form(**{"profile": "analysis", f("accelerator"): "none", f("accelerator_count"): "1"})
    assert user_options_from_form(data) == {"profile": "analysis"}


def test_no_profile_gives_empty_options():
    assert user_options_from_form({}) == {}
    assert user_options_from_form(form(profile="")) == {}


def test_form_options_validate_against_the_menu(contract_catalog):
    data = form(
        **{"profile": "analysis", f("image"): "alma9", f("cores"): "4", f("memory"): "8G", f("target"): "cluster"}
    )
    selection = select(build_menu(contract_catalog, ["cms"]), user_options_from_form(data))
    assert (selection.cores, selection.memory, selection.target) == (4, 8 * 2**30, "cluster")


# --- render_form: what the browser receives -------------------------------------------------------


class _FormReader(HTMLParser):
    """What a browser without JavaScript would post, and every text/attribute seen."""

    def __init__(self):
        super().__init__()
        self.fields: dict[str, list[str]] = {}
        self.options: dict[str, list[str]] = {}
        self._select = None
        self._select_first = None
        self._select_chosen = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "select":
            self._select, self._select_first, self._select_chosen = a.get("name"), None, None
        elif tag == "option" and self._select:
            self.options.setdefault(self._select, []).append(a.get("value"))
            if self._select_first is None:
                self._select_first = a.get("value")
            if "selected" in a:
                self._select_chosen = a.get("value")
        elif tag == "input":
            kind = a.get("type", "text")
            if kind == "radio":
                if "checked" in a:
                    self.fields[a["name"]] = [a.get("value", "")]
            elif a.get("name"):
                self.fields[a["name"]] = [a.get("value") or ""]

    def handle_endtag(self, tag):
        if tag == "select" and self._select:
            value = self._select_chosen if self._select_chosen is not None else self._select_first
            self.fields[self._select] = [value]
            self._select = None


def read(html: str) -> _FormReader:
    reader = _FormReader()
    reader.feed(html)
    return reader


def posted(html: str) -> dict:
    return read(html).fields


@functools.cache
def _static_form() -> str:
    """The form with no profile: only its static parts (style, script, notices)."""
    return render_form(build_menu(build_catalog(), [])).lower()


def leaks(html: str, word: str) -> bool:
    """Does ``word`` appear in ``html`` beyond the form's static parts?"""
    return html.lower().count(word.lower()) > _static_form().count(word.lower())


@pytest.mark.parametrize("groups", [["cms"], ["highrate"], GPU_USER])
def test_default_form_posts_back_the_defaults(contract_catalog, groups):
    menu = build_menu(contract_catalog, groups)
    data = posted(render_form(menu))
    data["_xsrf"] = ["x"]
    assert select(menu, user_options_from_form(data)) == select(menu, {})


def test_form_uses_kubespawner_field_names(contract_catalog):
    html = render_form(build_menu(contract_catalog, GPU_USER))
    for key in ("image", "image--unlisted-choice", "target", "cores", "memory", "accelerator", "accelerator_count"):
        assert f'name="profile-option-analysis--{key}"' in html, key
    assert 'name="profile" value="analysis"' in html


def test_admin_text_is_escaped():
    catalog = build_catalog(
        profile_list=[
            {
                "display_name": f"Analysis {XSS}",
                "slug": "p",
                "description": f"desc {XSS}",
                "profile_options": {
                    "image": {
                        "display_name": f"Image {XSS}",
                        "choices": {"a": {"display_name": f"Choice {XSS}"}},
                        "unlisted_choice": {
                            "enabled": True,
                            "display_name": f"Own {XSS}",
                            "validation_message": f"msg {XSS}",
                        },
                    }
                },
            }
        ],
        offload_targets={"t": {"display_name": f"Target {XSS}", "description": f"tdesc {XSS}"}},
    )
    html = render_form(build_menu(catalog, []))
    assert XSS not in html
    assert "alert(1)</script>" not in html
    assert html.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 7


def test_overrides_never_reach_the_browser(contract_catalog):
    for groups in (["cms"], ["highrate"], GPU_USER):
        html = render_form(build_menu(contract_catalog, groups))
        for admin_only in (
            "ghcr.io/org/offload:1.0",
            "ghcr.io/org/alma9:1.0",
            "kubespawner_override",
            "boost_usr_prod",
            "icsc_ai",
            "vk-leonardo",
            "vk-naples",
            "hub.example.org",
            "--exclusive",
        ):
            assert not leaks(html, admin_only), (groups, admin_only)


def test_hidden_choices_and_targets_are_not_in_the_form(contract_catalog):
    html = render_form(build_menu(contract_catalog, ["cms"]))
    assert 'value="offload"' not in html
    assert "offload" not in read(html).options[f("image")]
    for hidden in ("Dask offload", "naples", "leonardo", "cineca", "htcondor", "slurm", "nvidia", "xilinx", "fpga"):
        assert not leaks(html, hidden), hidden
    # a choice the user may use is there
    assert 'value="alma9"' in html and "AlmaLinux 9" in html


def test_visible_choices_for_highrate(contract_catalog):
    html = render_form(build_menu(contract_catalog, ["highrate"]))
    assert 'value="offload"' in html and "Dask offload" in html
    assert read(html).options[f("target")] == ["cluster", "naples"]
    assert "INFN Naples (HTCondor)" in html
    assert not leaks(html, "leonardo")


def test_hidden_profile_is_not_in_the_form(contract_config):
    contract_config["profile_list"].append(
        {
            "display_name": "Secret admin tools",
            "slug": "admintools",
            "allowed_groups": ["admins"],
            "profile_options": {"x": {"display_name": "Xopt", "choices": {"xchoice": {"display_name": "Xdisplay"}}}},
        }
    )
    catalog = build_catalog(**contract_config)
    html = render_form(build_menu(catalog, ["cms"]))
    for hidden in ("Secret admin tools", "admintools", "Xopt", "xchoice", "Xdisplay"):
        assert not leaks(html, hidden), hidden
    assert "Secret admin tools" in render_form(build_menu(catalog, ["admins", "cms"]))


def test_gpu_user_sees_only_what_leonardo_offers(contract_catalog):
    html = render_form(build_menu(contract_catalog, GPU_USER))
    assert read(html).options[f("accelerator")] == ["none", "nvidia.com/gpu:t4", "nvidia.com/gpu:a100"]
    assert not leaks(html, "xilinx")  # leonardo lists only nvidia.com/gpu
    count = re.search(r'<input[^>]*name="profile-option-analysis--accelerator_count"[^>]*>', html).group(0)
    assert 'max="2"' in count  # gpu-users: 2


def test_cores_above_the_ceiling_are_not_offered():
    catalog = build_catalog(
        profile_list=[{"display_name": "P", "slug": "p", "cores": {"choices": [1, 2, 4, 8]}}],
        group_limits={"g": {"cores": 2}},
    )
    html = render_form(build_menu(catalog, ["g"]))
    assert read(html).options["profile-option-p--cores"] == ["1", "2"]


def test_no_profile_message(contract_catalog):
    html = render_form(build_menu(contract_catalog, []))
    assert "There is no server configuration you are allowed to start" in html
    assert "<fieldset" not in html


def _field_block(html: str, css: str) -> str:
    """The HTML of one field's block: up to the next field block or the end of the profile."""
    match = re.search(rf'<div class="mb-2 {css}"[^>]*>(.*?)(?=<div class="mb-2 |</fieldset>)', html, re.S)
    assert match, css
    return match.group(1)


def test_error_is_shown_next_to_its_field(contract_catalog):
    menu = build_menu(contract_catalog, ["cms"])
    posted_options = {"profile": "analysis", "cores": "4", "memory": "64G"}
    with pytest.raises(SelectionError) as info:
        select(menu, posted_options)
    error = info.value
    assert error.field == "memory"
    html = render_form(menu, posted_options, error=error)
    memory_block = _field_block(html, "offload-memory")
    assert "64G is above your limit of 32G" in memory_block
    assert "data-offload-field-error" in memory_block
    assert "above your limit" not in _field_block(html, "offload-cores")
    # JupyterHub shows the message above the form: the form shows it once, by the field;
    # and the choices the user made are kept
    assert html.count("64G is above your limit of 32G") == 1
    assert posted(html)[f("cores")] == ["4"]


def test_error_on_free_text_is_shown_at_the_option(contract_catalog):
    menu = build_menu(contract_catalog, ["cms"])
    bad = {"profile": "analysis", "image--unlisted-choice": "docker.io/evil:1"}
    with pytest.raises(SelectionError) as info:
        select(menu, bad)
    html = render_form(menu, bad, error=info.value)
    block = _field_block(html, "offload-option")
    assert 'data-offload-field-error="image--unlisted-choice"' in block
    assert "is not an allowed Image" in block
    assert 'value="docker.io/evil:1"' in block  # the text is given back to correct it


def test_posted_user_text_is_escaped_when_shown_again(contract_catalog):
    menu = build_menu(contract_catalog, ["cms"])
    bad = {"profile": "analysis", "image--unlisted-choice": '"><img src=x onerror=alert(1)>'}
    with pytest.raises(SelectionError) as info:
        select(menu, bad)
    html = render_form(menu, bad, error=info.value)
    assert "<img" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html


def test_saved_options_that_no_longer_validate_give_a_notice(contract_catalog):
    # e.g. the user left highrate: their saved "offload" image is no longer theirs
    menu = build_menu(contract_catalog, ["cms"])
    html = render_form(menu, {"profile": "analysis", "image": "offload", "cores": 8})
    assert "data-offload-notice" in html
    assert "no longer available" in html
    assert "the defaults are selected" in html
    data = posted(html)
    assert data[f("image")] == ["alma9"]
    assert data[f("cores")] == ["2"]


def test_saved_valid_options_are_preselected_without_notice(contract_catalog):
    menu = build_menu(contract_catalog, ["highrate"])
    html = render_form(
        menu, {"profile": "analysis", "image": "offload", "cores": 8, "memory": "16G", "target": "naples"}
    )
    assert "data-offload-notice" not in html
    data = posted(html)
    assert data[f("image")] == ["offload"]
    assert data[f("cores")] == ["8"]
    assert data[f("memory")] == ["16G"]
    assert data[f("target")] == ["naples"]


def test_saved_free_text_is_preselected(contract_catalog):
    menu = build_menu(contract_catalog, ["cms"])
    html = render_form(menu, {"profile": "analysis", "image--unlisted-choice": "ghcr.io/org/mine:2"})
    data = posted(html)
    assert data[f("image")] == [OTHER]
    assert data[f("image--unlisted-choice")] == ["ghcr.io/org/mine:2"]
    assert user_options_from_form(data)["image--unlisted-choice"] == "ghcr.io/org/mine:2"


def test_admin_template_override(tmp_path, contract_catalog):
    (tmp_path / "form.html").write_text("custom {{ profiles|length }} {{ '<b>' }}")
    html = render_form(build_menu(contract_catalog, ["cms"]), template_paths=[str(tmp_path)])
    assert html == "custom 1 &lt;b&gt;"  # still autoescaped
