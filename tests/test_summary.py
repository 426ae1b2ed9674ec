"""offload_spawner.pipeline.summary: the human summary `offload-spawner check` prints."""

from offload_spawner.pipeline.catalog import build_catalog
from offload_spawner.pipeline.summary import summarize


def test_summary_of_the_contract_example(contract_catalog):
    text = summarize(contract_catalog)
    lines = text.splitlines()
    assert lines[0] == "1 profile(s), 3 target(s), 2 group limit(s)"
    profile = next(line for line in lines if "profile analysis" in line)
    assert "'Analysis'" in profile and "cms, highrate" in profile and "cluster, naples, leonardo" in profile
    naples = next(line for line in lines if "target naples" in line)
    for fragment in ("htcondor", "node vk-naples", "offload dask", "for highrate", "96 cores", "180G"):
        assert fragment in naples, fragment
    cluster = next(line for line in lines if "target cluster" in line)
    assert "in this cluster" in cluster and "for everyone" in cluster and "no ceiling" in cluster
    leonardo = next(line for line in lines if "target leonardo" in line)
    assert "32 cores" in leonardo and "480G" in leonardo and "4 x nvidia.com/gpu" in leonardo
    assert any(line.strip() == "group cms: 8 cores, 32G" for line in lines)
    assert any(line.strip() == "group gpu-users: 2 x nvidia.com/gpu" for line in lines)
    assert "default limits" not in text


def test_summary_of_default_limits_and_closed_profiles():
    catalog = build_catalog(
        profile_list=[{"display_name": "Closed", "allowed_groups": []}],
        default_limits={"cores": 0.5, "memory": "1536M"},
    )
    text = summarize(catalog)
    assert "for nobody" in text
    assert "default limits: 0.5 cores, 1.5G" in text
