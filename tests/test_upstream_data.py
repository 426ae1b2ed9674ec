"""tests/upstream_data.py: an explicit path first, then ../shared, else a message saying how to get the data."""

from __future__ import annotations

import pytest

import upstream_data
from upstream_data import UpstreamDataMissing, find_interlink_source, find_z2jh_chart


def _chart(root):
    chart = root / "chart" / "jupyterhub"
    chart.mkdir(parents=True)
    (chart / "Chart.yaml").write_text("name: jupyterhub\n")
    return chart


def test_the_variable_wins(tmp_path, monkeypatch):
    chart = _chart(tmp_path)
    monkeypatch.setenv("OFFLOAD_Z2JH_CHART", str(chart))
    assert find_z2jh_chart() == chart


def test_a_wrong_variable_is_an_error_not_a_fallback(tmp_path, monkeypatch):
    monkeypatch.setenv("OFFLOAD_Z2JH_CHART", str(tmp_path))
    with pytest.raises(UpstreamDataMissing, match=r"OFFLOAD_Z2JH_CHART=.* has no Chart\.yaml"):
        find_z2jh_chart()


def test_shared_next_to_the_checkout(tmp_path, monkeypatch):
    monkeypatch.delenv("OFFLOAD_Z2JH_CHART", raising=False)
    monkeypatch.setattr(upstream_data, "SHARED", tmp_path)
    chart = _chart(tmp_path / "z2jh")
    assert find_z2jh_chart() == chart


def test_without_either_the_message_says_how_to_get_it(tmp_path, monkeypatch):
    for var in ("OFFLOAD_Z2JH_CHART", "OFFLOAD_UPSTREAM_DIR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(upstream_data, "SHARED", tmp_path / "nothing")
    with pytest.raises(UpstreamDataMissing) as chart:
        find_z2jh_chart()
    assert "OFFLOAD_Z2JH_CHART" in str(chart.value) and "git clone" in str(chart.value)
    assert upstream_data.Z2JH_COMMIT in str(chart.value)
    with pytest.raises(UpstreamDataMissing) as source:
        find_interlink_source("interlink-htcondor-plugin")
    assert "OFFLOAD_UPSTREAM_DIR" in str(source.value) and "6f5ee3e" in str(source.value)


def test_interlink_sources_from_the_variable(tmp_path, monkeypatch):
    (tmp_path / "interLink").mkdir()
    monkeypatch.setenv("OFFLOAD_UPSTREAM_DIR", str(tmp_path))
    assert find_interlink_source("interLink") == tmp_path / "interLink"
