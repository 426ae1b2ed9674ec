"""The server's Dask configuration (offload_spawner.dask.dask_config), read back with
Dask's own config machinery and turned into a cluster by dask-kubernetes' own
code: KubeCluster's handling of ``kubernetes.custom-cluster-spec`` and the
operator's functions that turn a DaskCluster into pods (tests/dask_pods.py).
No Kubernetes API is called here; tests/e2e/test_dask_e2e.py creates the pods.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from dask_pods import kubecluster_spec, load_with_dask, operator_pods
from offload_spawner.dask.dask_config import (
    DASK_CONFIG_DIR,
    DASK_CONFIG_FILE,
    MAX_CLUSTER_NAME_LEN,
    cluster_name,
    dask_config,
)
from offload_spawner.identity.server_secret import ACCESS_TOKEN_KEY, TOKEN_VOLUME, secret_name
from offload_spawner.pipeline.catalog import INTERLINK_TOLERATION, CatalogError, build_catalog
from offload_spawner.pipeline.limits import target_ceiling, user_ceiling

NAPLES = {
    "display_name": "INFN Naples (HTCondor)",
    "backend": "htcondor",
    "node": "vk-naples",
    "offload": "dask",
    "limits": {"cores": 96, "memory": "180G"},
    "hub_api_url": "https://hub.example.org/hub/api",
    "htcondor": {"singularity_options": ["--cleanenv"]},
    "tolerations": [{"key": "site/naples", "operator": "Exists", "effect": "NoSchedule"}],
    "node_selector": {"site": "naples"},
    "dask": {
        "worker_cores": 4,
        "worker_memory": "16G",
        "max_worker_memory": "32G",
        "workers": 2,
        "max_workers": 40,
        "scheduler_cores": 2,
        "scheduler_memory": "4G",
        "idle_timeout": 600,
    },
}
TARGETS = {
    "cluster": {"display_name": "This cluster"},
    "naples": NAPLES,
    "leonardo": {
        "display_name": "Leonardo",
        "backend": "slurm",
        "node": "vk-leonardo",
        "offload": "session",
        "slurm": {"partition": "boost_usr_prod", "account": "icsc_ai"},
    },
    "leonardo-dask": {
        "display_name": "Leonardo + Dask",
        "backend": "slurm",
        "node": "vk-leonardo",
        "offload": "session",
        "slurm": {"partition": "boost_usr_prod", "time_limit": "01:00:00"},
        "dask": {},
    },
    "cluster-dask": {"display_name": "Here + Dask", "dask": {"workers": 0}},
}
GROUP_LIMITS = {"cms": {"cores": 2, "memory": "8G"}}
POD = "jupyter-hana"
NAMESPACE = "jhub"


def render(slug: str, groups=("highrate",), user: str = "hana", pod: str = POD, image: str = "ghcr.io/org/offload:1.0"):
    catalog = build_catalog(offload_targets=TARGETS, group_limits=GROUP_LIMITS)
    target = catalog.offload_targets[slug]
    return dask_config(
        target_slug=slug,
        target=target,
        ceiling=target_ceiling(user_ceiling(catalog, groups), target),
        image=image,
        namespace=NAMESPACE,
        pod_name=pod,
        user_name=user,
        hub_api_url=target.hub_api_url or "http://hub:8081/hub/api",
    )


# --- catalog ------------------------------------------------------------------


@pytest.mark.parametrize(
    "dask,path,message",
    [
        (
            {"worker_cores": 8, "max_worker_cores": 4},
            "offload_targets.naples.dask",
            "worker_cores 8 is above max_worker_cores 4",
        ),
        (
            {"worker_memory": "64G", "max_worker_memory": "32G"},
            "offload_targets.naples.dask",
            "worker_memory 64G is above max_worker_memory 32G",
        ),
        ({"workers": 5, "max_workers": 2}, "offload_targets.naples.dask", "workers 5 is above max_workers 2"),
        ({"worker_memory": "lots"}, "offload_targets.naples.dask.worker_memory", "is not a memory size"),
        ({"wokers": 2}, "offload_targets.naples.dask.wokers", "unknown key"),
        ({"image": "ghcr.io/org/x:1 --privileged"}, "offload_targets.naples.dask.image", "not a valid image reference"),
        ({"idle_timeout": -1}, "offload_targets.naples.dask.idle_timeout", "greater than or equal to 0"),
        ({"enabled": False}, "offload_targets.naples", "offload 'dask' with dask.enabled false would offload nothing"),
    ],
)
def test_bad_dask_settings_stop_the_hub_with_the_key_path(dask, path, message):
    with pytest.raises(CatalogError) as e:
        build_catalog(offload_targets={"naples": {**NAPLES, "dask": dask}})
    assert any(p.startswith(path + ":") and message in p for p in e.value.problems), e.value.problems


def test_which_targets_get_dask_configuration(contract_catalog):
    assert render("leonardo").files == {} and render("leonardo").env == {}
    assert render("cluster").files == {}
    assert set(render("naples").files) == {DASK_CONFIG_FILE}
    assert set(render("leonardo-dask").files) == {DASK_CONFIG_FILE}
    assert set(render("cluster-dask").files) == {DASK_CONFIG_FILE}
    # the contract's naples (offload: dask, no dask block) gets the defaults
    settings = contract_catalog.offload_targets["naples"].dask_settings
    assert (settings.workers, settings.worker_cores, settings.worker_memory) == (1, 1.0, 2 * 2**30)
    assert contract_catalog.offload_targets["leonardo"].dask_settings is None
    disabled = build_catalog(offload_targets={"s": {**TARGETS["leonardo-dask"], "dask": {"enabled": False}}})
    assert disabled.offload_targets["s"].dask_settings is None


# --- read back by Dask and dask-kubernetes ----------------------------------------


def test_dask_reads_the_file_and_kubecluster_builds_the_daskcluster(tmp_path):
    result = render("naples")
    assert result.env == {"DASK_ROOT_CONFIG": DASK_CONFIG_DIR}
    config = load_with_dask(result.files, tmp_path)

    factory = config["labextension"]["factory"]
    assert (factory["module"], factory["class"], factory["args"]) == ("dask_kubernetes.operator", "KubeCluster", [])
    import importlib

    from dask_kubernetes.operator import KubeCluster

    assert getattr(importlib.import_module(factory["module"]), factory["class"]) is KubeCluster
    assert config["distributed"]["adaptive"]["maximum"] == 40

    name, namespace, spec = kubecluster_spec(config)
    assert name == cluster_name(POD) == "jupyter-hana-dask"
    assert namespace == NAMESPACE
    assert spec["apiVersion"] == "kubernetes.dask.org/v1" and spec["kind"] == "DaskCluster"
    assert spec["spec"]["idleTimeout"] == 600
    assert spec["spec"]["worker"]["replicas"] == 2


def test_same_shape_as_dask_kubernetes_make_cluster_spec(tmp_path):
    from dask_kubernetes.operator import make_cluster_spec

    ours = yaml.safe_load(render("naples").files[DASK_CONFIG_FILE])["kubernetes"]["custom-cluster-spec"]
    theirs = make_cluster_spec(
        name=ours["metadata"]["name"], image="ghcr.io/org/offload:1.0", n_workers=2, idle_timeout=600
    )
    assert ours["spec"]["scheduler"]["service"] == theirs["spec"]["scheduler"]["service"]
    for role in ("scheduler", "worker"):
        mine, upstream = ours["spec"][role]["spec"]["containers"][0], theirs["spec"][role]["spec"]["containers"][0]
        assert mine["name"] == upstream["name"] and mine["image"] == upstream["image"]
        assert mine["ports"] == upstream["ports"]
        assert mine["args"][: len(upstream["args"])] == upstream["args"]
        assert mine.get("readinessProbe") == upstream.get("readinessProbe")


def test_pods_from_the_spec_are_placed_sized_and_reference_tokens(tmp_path):
    config = load_with_dask(render("naples").files, tmp_path)
    _, _, spec = kubecluster_spec(config)
    pods = operator_pods(spec, NAMESPACE)
    secret = secret_name(POD)
    expected_size = {"scheduler": ("2", str(4 * 2**30)), "worker": ("4", str(16 * 2**30))}
    for role, pod in pods.items():
        pod["metadata"]["name"] = f"test-{role}"
        kubernetes_validate.validate(pod, desired_version="1.34", strict=True)
        podspec, meta = pod["spec"], pod["metadata"]
        assert INTERLINK_TOLERATION in podspec["tolerations"]
        assert {"key": "site/naples", "operator": "Exists", "effect": "NoSchedule"} in podspec["tolerations"]
        assert podspec["nodeSelector"] == {"kubernetes.io/hostname": "vk-naples", "site": "naples"}
        assert podspec["automountServiceAccountToken"] is False
        # backend annotations reach the pod through the DaskCluster's metadata
        assert meta["annotations"]["htcondor-job.vk.io/singularity-options"] == "--cleanenv"
        assert meta["annotations"]["offload-spawner.io/target"] == "naples"
        assert meta["labels"]["offload-spawner.io/target"] == "naples"
        assert meta["labels"]["dask.org/component"] == role
        container = podspec["containers"][0]
        assert (container["resources"]["limits"]["cpu"], container["resources"]["limits"]["memory"]) == expected_size[
            role
        ]
        # HTCondor sizes the job from requests, read as whole cores and <n>Mi (interlink-htcondor-plugin/handles.py)
        cores, memory = expected_size[role]
        assert container["resources"]["requests"] == {"cpu": cores, "memory": f"{int(memory) // 2**20}Mi"}
        env = {e["name"]: e for e in container["env"]}
        assert env["JUPYTERHUB_USER"] == {"name": "JUPYTERHUB_USER", "value": "hana"}
        assert env["JUPYTERHUB_API_URL"]["value"] == "https://hub.example.org/hub/api"
        # off-site: the hub token only when the target's tokens.dask_pods names it (test_hostile.py)
        assert "JUPYTERHUB_API_TOKEN" not in env
        assert env["ACCESS_TOKEN"]["valueFrom"]["secretKeyRef"] == {
            "name": secret,
            "key": ACCESS_TOKEN_KEY,
            "optional": True,
        }
        # no token file on an HTCondor site (backends/htcondor.py, volume_files_refusal: the
        # plugin would send every key of the Secret there, base64-encoded): env only
        assert "BEARER_TOKEN_FILE" not in env
        assert not [m for m in container.get("volumeMounts") or [] if m["name"] == TOKEN_VOLUME]
        assert not [v for v in podspec.get("volumes") or [] if "secret" in v]
        # no token is ever a plain value
        for item in container["env"]:
            if "TOKEN" in item["name"] and item["name"] != "BEARER_TOKEN_FILE":
                assert "value" not in item and set(item["valueFrom"]) == {"secretKeyRef"}, item
    worker_args = pods["worker"]["spec"]["containers"][0]["args"]
    assert worker_args[worker_args.index("--nthreads") + 1] == "4"
    assert worker_args[worker_args.index("--memory-limit") + 1] == str(16 * 2**30)


def test_session_target_dask_pods_follow_the_target_and_in_cluster_ones_stay_here(tmp_path):
    _, _, spec = kubecluster_spec(load_with_dask(render("leonardo-dask").files, tmp_path / "a"))
    pods = operator_pods(spec, NAMESPACE)
    for pod in pods.values():
        assert pod["spec"]["nodeSelector"]["kubernetes.io/hostname"] == "vk-leonardo"
        # SLURM flags from typed admin settings; no accelerator on Dask pods
        assert pod["metadata"]["annotations"]["slurm-job.vk.io/flags"] == "--partition=boost_usr_prod --time=01:00:00"

    _, _, spec = kubecluster_spec(load_with_dask(render("cluster-dask").files, tmp_path / "b"))
    assert spec["spec"]["worker"]["replicas"] == 0
    for pod in operator_pods(spec, NAMESPACE).values():
        assert "tolerations" not in pod["spec"] and "nodeSelector" not in pod["spec"]
        assert not any(k.startswith(("htcondor", "slurm")) for k in pod["metadata"]["annotations"])


def test_worker_and_scheduler_sizes_are_capped_by_the_users_ceiling():
    # cms: at most 2 cores / 8G per server -> no Dask pod is larger
    spec = yaml.safe_load(render("naples", groups=("cms",)).files[DASK_CONFIG_FILE])["kubernetes"][
        "custom-cluster-spec"
    ]
    worker = spec["spec"]["worker"]["spec"]["containers"][0]
    scheduler = spec["spec"]["scheduler"]["spec"]["containers"][0]
    assert worker["resources"]["limits"] == {"cpu": "2", "memory": str(8 * 2**30)}
    assert scheduler["resources"]["limits"] == {"cpu": "2", "memory": str(4 * 2**30)}
    assert worker["args"][worker["args"].index("--nthreads") + 1] == "2"
    # max_worker_* caps the default too (worker_memory 16G, max 8G)
    catalog = build_catalog(
        offload_targets={
            "n": {**NAPLES, "dask": {"worker_memory": "8G", "max_worker_memory": "8G", "worker_cores": 0.5}}
        }
    )
    target = catalog.offload_targets["n"]
    out = dask_config(
        target_slug="n",
        target=target,
        ceiling=target_ceiling(user_ceiling(catalog, []), target),
        image="img:1",
        namespace="ns",
        pod_name="p",
        user_name="u",
    )
    worker = yaml.safe_load(out.files[DASK_CONFIG_FILE])["kubernetes"]["custom-cluster-spec"]["spec"]["worker"]
    container = worker["spec"]["containers"][0]
    assert container["resources"]["limits"] == {"cpu": "0.5", "memory": str(8 * 2**30)}
    assert container["args"][container["args"].index("--nthreads") + 1] == "1"


def test_user_text_is_data_not_yaml_or_a_template(tmp_path):
    name = "x: 1\nkubernetes: {namespace: evil}\n# {uuid}"
    image = "ghcr.io/org/x:1"
    result = render("naples", user=name, image=image, pod="jupyter-x-3a-201-0akubernetes")
    config = load_with_dask(result.files, tmp_path)
    assert config["kubernetes"]["namespace"] == NAMESPACE
    spec = config["kubernetes"]["custom-cluster-spec"]
    env = {e["name"]: e for e in spec["spec"]["scheduler"]["spec"]["containers"][0]["env"]}
    assert env["JUPYTERHUB_USER"]["value"] == name


@pytest.mark.parametrize("pod", ["jupyter-" + "a" * 70, "jupyter-Hana.Smith", "jupyter--x--", "-"])
def test_cluster_names_are_always_valid_for_dask_kubernetes(pod):
    from dask_kubernetes.constants import VALID_CLUSTER_NAME
    from dask_kubernetes.operator.validation import validate_cluster_name

    name = cluster_name(pod)
    assert len(name) <= MAX_CLUSTER_NAME_LEN and VALID_CLUSTER_NAME.match(name), name
    validate_cluster_name(name)
    assert cluster_name("jupyter-" + "a" * 70) != cluster_name("jupyter-" + "a" * 71)


def test_dask_in_the_server_finds_the_file_through_dask_root_config(tmp_path):
    """A fresh Python with the server's env: importing dask reads the file."""
    result = render("naples")
    root = tmp_path / "etc-dask"
    root.mkdir()
    (root / Path(DASK_CONFIG_FILE).name).write_text(result.files[DASK_CONFIG_FILE])
    env = {**os.environ, **result.env, "DASK_ROOT_CONFIG": str(root), "DASK_CONFIG": str(tmp_path / "user")}
    code = (
        "import dask.config, json;"
        "print(json.dumps([dask.config.get('kubernetes.custom-cluster-spec.metadata.name'),"
        " dask.config.get('labextension.factory.class'), dask.config.get('kubernetes.namespace')]))"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(out.stdout) == ["jupyter-hana-dask", "KubeCluster", NAMESPACE]


def test_token_files_reach_the_dask_pods_only_where_the_sites_plugin_handles_them(tmp_path):
    # The default policy delivers the access token as env and file. On SLURM the Dask pods
    # get the file as the server does; on HTCondor (a plugin that would copy every key of
    # the Secret to the site) only the env, while an in-cluster server there keeps its file.
    catalog = build_catalog(offload_targets=TARGETS, group_limits=GROUP_LIMITS)
    assert catalog.offload_targets["naples"].tokens.access_token.file
    assert catalog.offload_targets["naples"].server_tokens.access_token.file  # offload "dask": server here
    assert not catalog.offload_targets["naples"].site_tokens.access_token.file
    for slug, files in (("leonardo-dask", True), ("naples", False)):
        config = load_with_dask(render(slug).files, tmp_path / slug)
        _, _, spec = kubecluster_spec(config)
        for pod in operator_pods(spec, NAMESPACE).values():
            env = {e["name"] for e in pod["spec"]["containers"][0]["env"]}
            assert ("BEARER_TOKEN_FILE" in env) is files, slug
            assert "ACCESS_TOKEN" in env


def test_a_token_file_asked_for_a_session_on_an_htcondor_site_is_refused():
    session = {
        "display_name": "Naples session",
        "backend": "htcondor",
        "node": "vk-naples",
        "offload": "session",
        "network": "wstunnel",
        "hub_api_url": "https://hub.example.org/hub/api",
    }
    target = build_catalog(offload_targets={"n": session}).offload_targets["n"]
    assert not target.server_tokens.access_token.file  # the default file is dropped there
    with pytest.raises(CatalogError) as e:
        build_catalog(offload_targets={"n": {**session, "tokens": {"access_token": {"file": True}}}})
    assert "offload_targets.n" in str(e.value) and "tokens.access_token.file" in str(e.value)
