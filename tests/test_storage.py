"""Storage per target and group-reserved nodes: catalog checks, each backend's
mapping of each volume kind, refusals, and ``{username}`` for hostile names.

The annotation keys asserted here are the ones the upstream plugins read:
``slurm-job.vk.io/singularity-mounts`` (interlink-slurm-plugin/pkg/slurm/prepare.go,
prepareRuntimeCommand), ``htcondor-job.vk.io/singularity-options``
(interlink-htcondor-plugin/handles.py, SubmitHandler) and
``interlink.io/remote-pvc`` (interlink-kubernetes-plugin/src/app/services/
kubernetes_plugin_service.py).
"""

from __future__ import annotations

import re

import pytest
from kubernetes_asyncio.client import ApiClient
from kubernetes_asyncio.client.models import V1Container, V1ObjectMeta, V1Pod, V1PodSpec
from kubespawner.slugs import safe_slug

from offload_spawner.availability.availability import cluster_view, menu_availability
from offload_spawner.hub.manifest import apply_plan_to_pod, apply_storage_to_pod, plan_traits
from offload_spawner.pipeline.catalog import CatalogError, build_catalog
from offload_spawner.pipeline.menu import build_menu
from offload_spawner.pipeline.plan import build_plan
from offload_spawner.pipeline.pod_shape import REMOTE_PVC_ANNOTATION
from offload_spawner.pipeline.reservations import reservation_affinity, reservation_tolerations
from offload_spawner.pipeline.selection import SelectionError, select
from offload_spawner.pipeline.storage import build_storage, fill_username

TARGETS = {
    "cluster": {"display_name": "This cluster", "backend": "kubernetes"},
    "leonardo": {
        "display_name": "CINECA Leonardo",
        "backend": "slurm",
        "node": "vk-leonardo",
        "slurm": {"partition": "boost_usr_prod"},
    },
    "naples": {"display_name": "INFN Naples", "backend": "htcondor", "node": "vk-naples"},
    "remote-k8s": {"display_name": "Remote cluster", "backend": "interlink-kubernetes", "node": "vk-remote"},
    "docker": {"display_name": "FPGA box", "backend": "docker", "node": "vk-fpga"},
    "dask-naples": {"display_name": "Dask at Naples", "backend": "htcondor", "node": "vk-naples", "offload": "dask"},
}

STORAGE = {
    "home": {
        "display_name": "home",
        "mount_path": "/home/jovyan",
        "cluster": {"kind": "pvc", "size": "10G", "storage_class": "standard"},
        "targets": {"remote-k8s": {"claim": "home-{username}"}},
    },
    "cvmfs": {
        "display_name": "CVMFS",
        "mount_path": "/cvmfs",
        "read_only": True,
        "cluster": {"kind": "csi", "driver": "cvmfs.csi.cern.ch", "volume_attributes": {"repository": "sft.cern.ch"}},
        "targets": {"leonardo": {"path": "/cvmfs"}, "naples": {"path": "/cvmfs"}},
    },
    "work": {
        "display_name": "$WORK",
        "mount_path": "/work",
        "targets": {"leonardo": {"path": "/leonardo_work/{username}", "description": "your Leonardo work area"}},
    },
    "cms-data": {
        "display_name": "CMS group area",
        "mount_path": "/data/cms",
        "allowed_groups": ["cms"],
        "offered": True,
        "cluster": {"kind": "nfs", "server": "nfs.example.org", "path": "/export/cms"},
    },
}


def catalog(storage=STORAGE, reservations=None, targets=TARGETS):
    return build_catalog(
        profile_list=[{"display_name": "Default", "slug": "default", "cores": {"min": 1, "max": 4}}],
        offload_targets=targets,
        storage=storage,
        reservations=reservations,
    )


def plan(cat, groups, options, username="alice"):
    selection = select(build_menu(cat, groups), options)
    return build_plan(cat, selection, groups, safe_slug(username, max_length=48))


def pod() -> V1Pod:
    return V1Pod(
        metadata=V1ObjectMeta(name="jupyter-alice", annotations={}),
        spec=V1PodSpec(containers=[V1Container(name="notebook")]),
    )


# --- check time -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("storage", "path", "words"),
    [
        (
            {"v": {"display_name": "V", "mount_path": "/v", "targets": {"docker": {"path": "/x"}}}},
            "storage.v.targets.docker",
            "docker target cannot mount",
        ),
        (
            {"v": {"display_name": "V", "mount_path": "/v", "targets": {"cluster": {"path": "/x"}}}},
            "storage.v.targets.cluster",
            "run in this cluster",
        ),
        (
            {"v": {"display_name": "V", "mount_path": "/v", "targets": {"dask-naples": {"path": "/x"}}}},
            "storage.v.targets.dask-naples",
            "run in this cluster",
        ),
        (
            {"v": {"display_name": "V", "mount_path": "/v", "targets": {"leonardo": {"claim": "c"}}}},
            "storage.v.targets.leonardo",
            "takes 'path'",
        ),
        (
            {"v": {"display_name": "V", "mount_path": "/v", "targets": {"remote-k8s": {"path": "/x"}}}},
            "storage.v.targets.remote-k8s",
            "takes 'claim'",
        ),
        (
            {"v": {"display_name": "V", "mount_path": "/v", "targets": {"nowhere": {"path": "/x"}}}},
            "storage.v.targets",
            "not a key of offload_targets",
        ),
        (
            {"v": {"display_name": "V", "mount_path": "/v", "targets": {"leonardo": {"path": "/x y"}}}},
            "storage.v.targets.leonardo.path",
            "absolute path",
        ),
        (
            {"v": {"display_name": "V", "mount_path": "/v", "targets": {"leonardo": {"path": "/a:/etc"}}}},
            "storage.v.targets.leonardo.path",
            "absolute path",
        ),
        (
            {"v": {"display_name": "V", "mount_path": "/v", "targets": {"leonardo": {"path": "/w/{user}"}}}},
            "storage.v.targets.leonardo.path",
            "absolute path",
        ),
        ({"v": {"display_name": "V", "mount_path": "v"}}, "storage.v.mount_path", "mount path"),
        (
            {"a": {"display_name": "A", "mount_path": "/m"}, "b": {"display_name": "B", "mount_path": "/m"}},
            "storage.b.mount_path",
            "also the mount path",
        ),
        (
            {
                "a": {"display_name": "A", "mount_path": "/a", "cluster": {"kind": "pvc"}},
                "b": {"display_name": "B", "mount_path": "/b", "cluster": {"kind": "pvc"}},
            },
            "storage",
            "only one volume",
        ),
        (
            {"v": {"display_name": "V", "mount_path": "/v", "cluster": {"kind": "nfs", "server": "s"}}},
            "storage.v.cluster",
            "needs 'path'",
        ),
        (
            {
                "v": {
                    "display_name": "V",
                    "mount_path": "/v",
                    "cluster": {"kind": "claim", "claim_name": "c-{username}"},
                }
            },
            "storage.v.cluster",
            "kind 'pvc'",
        ),
        (
            {"v": {"display_name": "V", "mount_path": "/v", "cluster": {"kind": "pvc", "claim_name": "Home"}}},
            "storage.v.cluster.claim_name",
            "claim name",
        ),
        ({"v": {"display_name": "V", "mount_path": "/v", "size": "1G"}}, "storage.v.size", "unknown key"),
    ],
)
def test_a_volume_a_target_cannot_have_is_refused_with_its_path(storage, path, words):
    with pytest.raises(CatalogError) as e:
        catalog(storage=storage)
    assert any(p.startswith(f"{path}:") and words in p for p in e.value.problems), e.value.problems


def test_reservation_needs_groups_and_a_value():
    with pytest.raises(CatalogError) as e:
        catalog(reservations=[{"value": "ai-infn", "groups": []}, {"groups": ["x"]}])
    assert {p.split(":")[0] for p in e.value.problems} == {"reservations[0].groups", "reservations[1].value"}


# --- each backend's mapping ---------------------------------------------------------


def test_in_cluster_server_gets_kubernetes_volumes_and_its_claim_through_kubespawner():
    p = plan(catalog(), ["cms"], {"target": "cluster"})
    storage = p.storage
    assert storage is not None
    by_name = {v["name"]: v for v in storage.volumes}
    assert by_name["offload-storage-home"] == {
        "name": "offload-storage-home",
        "persistentVolumeClaim": {"claimName": "claim-alice"},
    }
    assert by_name["offload-storage-cvmfs"]["csi"] == {
        "driver": "cvmfs.csi.cern.ch",
        "volumeAttributes": {"repository": "sft.cern.ch"},
        "readOnly": True,
    }
    assert by_name["offload-storage-cms-data"]["nfs"] == {"server": "nfs.example.org", "path": "/export/cms"}
    assert "offload-storage-work" not in by_name  # $WORK exists only on Leonardo
    mounts = {m["mountPath"]: m for m in storage.volume_mounts}
    assert mounts["/cvmfs"]["readOnly"] is True and "readOnly" not in mounts["/home/jovyan"]
    assert storage.annotations == {}
    traits = plan_traits(p)
    assert traits["storage_pvc_ensure"] is True and traits["pvc_name"] == "claim-alice"
    assert traits["storage_capacity"] == str(10 * 2**30) and traits["storage_class"] == "standard"
    manifest = apply_storage_to_pod(pod(), storage)
    assert {v.name for v in manifest.spec.volumes} == set(by_name)
    assert {m.mount_path for m in manifest.spec.containers[0].volume_mounts} == {"/home/jovyan", "/cvmfs", "/data/cms"}


def test_dask_offload_server_stays_here_and_keeps_the_cluster_volumes():
    p = plan(catalog(), [], {"target": "dask-naples"})
    assert {v["name"] for v in p.storage.volumes} == {"offload-storage-home", "offload-storage-cvmfs"}


def test_slurm_target_binds_site_paths_in_the_annotation_the_plugin_reads():
    p = plan(catalog(), [], {"target": "leonardo"})
    assert p.storage.volumes == () and plan_traits(p).get("storage_pvc_ensure") is None
    assert p.annotations["slurm-job.vk.io/singularity-mounts"] == (
        "--bind /cvmfs:/cvmfs:ro --bind /leonardo_work/alice:/work"
    )
    assert p.env["OFFLOAD_STORAGE"].splitlines() == [
        "no home here",
        "CVMFS at /cvmfs (read-only)",
        "$WORK (your Leonardo work area) at /work",
    ]


def test_storage_binds_join_an_admins_own_singularity_mounts():
    slurm = {**TARGETS["leonardo"]["slurm"], "singularity_mounts": [{"source": "/scratch", "target": "/scratch"}]}
    targets = {**TARGETS, "leonardo": {**TARGETS["leonardo"], "slurm": slurm}}
    p = plan(catalog(targets=targets), [], {"target": "leonardo"})
    assert p.annotations["slurm-job.vk.io/singularity-mounts"] == (
        "--bind /scratch:/scratch --bind /cvmfs:/cvmfs:ro --bind /leonardo_work/alice:/work"
    )


def test_htcondor_target_binds_in_singularity_options():
    p = plan(catalog(), [], {"target": "naples"})
    assert p.annotations["htcondor-job.vk.io/singularity-options"] == "--bind /cvmfs:/cvmfs:ro"
    assert "slurm-job.vk.io/singularity-mounts" not in p.annotations


def test_interlink_kubernetes_target_mounts_the_remote_claim_and_lists_it():
    p = plan(catalog(), [], {"target": "remote-k8s"})
    assert p.storage.volumes == (
        {"name": "offload-storage-home", "persistentVolumeClaim": {"claimName": "home-alice"}},
    )
    manifest = apply_storage_to_pod(pod(), p.storage)
    assert manifest.metadata.annotations[REMOTE_PVC_ANNOTATION] == "home-alice"
    assert plan_traits(p).get("storage_pvc_ensure") is None  # the claim is the remote cluster's


def test_docker_target_has_no_volumes_and_says_so():
    p = plan(catalog(), [], {"target": "docker"})
    assert p.storage.volumes == () and p.storage.annotations == {}
    assert set(p.env["OFFLOAD_STORAGE"].splitlines()) == {"no home here", "no CVMFS here", "no $WORK here"}


@pytest.mark.parametrize(
    "name", ["Alice", "a b;rm -rf /", "../../etc", "bob@infn.it", "$(id)", "`x`", "é" * 70, "x\ny"]
)
def test_username_in_paths_and_claims_is_the_safe_slug_never_raw_text(name):
    slug = safe_slug(name, max_length=48)
    for target in ("cluster", "leonardo", "remote-k8s"):
        p = plan(catalog(), [], {"target": target}, username=name)
        binds = [v for k, v in p.annotations.items() if k.endswith("singularity-mounts")]
        texts = [str(v) for v in p.storage.volumes] + binds
        assert texts, target
        for text in texts:
            assert name not in text or name == slug
        for value in binds:
            assert re.fullmatch(r"(--bind [A-Za-z0-9_./+:-]+ ?)+", value), value
    assert re.fullmatch(r"[a-z0-9-]+", slug)
    assert fill_username("/w/{username}", slug) == f"/w/{slug}"


def test_template_text_other_than_username_is_never_expanded():
    assert fill_username("/w/{username}{username}", "bob") == "/w/bobbob"
    assert build_storage(catalog(), "leonardo", [], "{username}").annotations  # no recursion, no format()


# --- the user's choices -------------------------------------------------------------


def test_group_volume_only_for_members():
    assert "offload-storage-cms-data" not in {v["name"] for v in plan(catalog(), ["atlas"], {}).storage.volumes}
    assert "offload-storage-cms-data" in {v["name"] for v in plan(catalog(), ["cms"], {}).storage.volumes}
    with pytest.raises(SelectionError) as e:
        select(build_menu(catalog(), ["atlas"]), {"storage": ["cms-data"]})
    assert e.value.field == "storage" and "not a volume you can choose" in e.value.message


def test_offered_volume_can_be_left_out_and_the_choice_is_kept():
    menu = build_menu(catalog(), ["cms"])
    selection = select(menu, {"storage": [""]})  # the form's marker alone: nothing ticked
    assert selection.storage == ()
    assert selection.to_user_options()["storage"] == []
    p = build_plan(catalog(), selection, ["cms"], "alice")
    assert "offload-storage-cms-data" not in {v["name"] for v in p.storage.volumes}
    assert select(menu, {"storage": ["", "cms-data"]}).storage == ("cms-data",)
    assert select(menu, {}).storage is None  # REST without the key: the defaults


@pytest.mark.parametrize("bad", [5, {"a": 1}, [1], [["x"]]])
def test_storage_of_the_wrong_shape_is_refused(bad):
    with pytest.raises(SelectionError) as e:
        select(build_menu(catalog(), ["cms"]), {"storage": bad})
    assert e.value.field == "storage"


def test_required_volume_refuses_a_target_that_cannot_mount_it():
    storage = {**STORAGE, "work": {**STORAGE["work"], "required": True}}
    cat = catalog(storage=storage)
    with pytest.raises(SelectionError) as e:
        select(build_menu(cat, []), {"target": "naples"})
    assert e.value.field == "target"
    assert e.value.message == "Your $WORK cannot be mounted on INFN Naples; choose another target."
    assert select(build_menu(cat, []), {"target": "leonardo"}).target == "leonardo"


def test_menu_tells_per_target_what_is_where():
    menu = build_menu(catalog(), [])
    by_target = {t.slug: [line.text() for line in t.storage] for t in menu.profiles[0].targets}
    assert by_target["cluster"] == [
        "home (your 10G volume) at /home/jovyan",
        "CVMFS at /cvmfs (read-only)",
        "no $WORK here",
    ]
    assert by_target["leonardo"] == [
        "no home here",
        "CVMFS at /cvmfs (read-only)",
        "$WORK (your Leonardo work area) at /work",
    ]


def test_form_shows_the_storage_summary_per_target_autoescaped():
    from offload_spawner.hub.forms import render_form

    storage = {**STORAGE, "work": {**STORAGE["work"], "display_name": "<b>$WORK</b>"}}
    html = render_form(build_menu(catalog(storage=storage), ["cms"]))
    assert 'data-storage="leonardo"' in html and 'data-storage="cluster"' in html
    assert "&lt;b&gt;$WORK&lt;/b&gt; (your Leonardo work area) at /work" in html
    assert "<b>$WORK</b>" not in html
    assert 'name="profile-option-default--storage" value="cms-data"' in html


# --- group-reserved nodes ---------------------------------------------------------------

RESERVATIONS = [{"value": "ai-infn", "groups": ["ai-infn"], "node_label": {"reserved": "ai-infn"}}]


async def test_reserved_nodes_are_tolerated_and_preferred_only_by_members():
    cat = catalog(reservations=RESERVATIONS)
    member = plan(cat, ["ai-infn"], {"target": "cluster"})
    other = plan(cat, ["cms"], {"target": "cluster"})
    toleration = {"key": "reserved", "operator": "Equal", "value": "ai-infn", "effect": "NoSchedule"}
    assert toleration in member.tolerations and toleration not in other.tolerations
    assert member.preferred_node_terms == (
        {
            "weight": 100,
            "preference": {"matchExpressions": [{"key": "reserved", "operator": "In", "values": ["ai-infn"]}]},
        },
    )
    assert other.preferred_node_terms == ()
    manifest = ApiClient().sanitize_for_serialization(apply_plan_to_pod(pod(), member))
    terms = manifest["spec"]["affinity"]["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert terms == [dict(member.preferred_node_terms[0])]
    assert toleration in manifest["spec"]["tolerations"]
    assert apply_plan_to_pod(pod(), other).spec.affinity is None
    assert reservation_tolerations(cat.reservations, []) == [] and reservation_affinity(cat.reservations, []) == []


def test_reserved_virtual_node_counts_only_for_its_groups():
    targets = {"leonardo": {**TARGETS["leonardo"], "limits": {"cores": 8}}}
    cat = build_catalog(
        profile_list=[{"display_name": "Default", "slug": "default", "cores": {"min": 1, "max": 4}}],
        offload_targets=targets,
        reservations=RESERVATIONS,
    )
    node = {
        "metadata": {"name": "vk-leonardo", "labels": {"reserved": "ai-infn"}},
        "spec": {
            "taints": [
                {"key": "virtual-node.interlink/no-schedule", "value": "true", "effect": "NoSchedule"},
                {"key": "reserved", "value": "ai-infn", "effect": "NoSchedule"},
            ]
        },
        "status": {
            "conditions": [{"type": "Ready", "status": "True", "reason": "InterlinkPingSuccessful"}],
            "allocatable": {"cpu": "8", "memory": "32Gi"},
        },
    }
    view = cluster_view([{"kind": "Node", **node}], ["vk-leonardo"])
    member = menu_availability(build_menu(cat, ["ai-infn"]), cat, view)["leonardo"]
    other = menu_availability(build_menu(cat, ["cms"]), cat, view)["leonardo"]
    assert member.status == "up" and member.cores_free == 8
    assert other.status == "down" and other.reason == "the site is reserved for the group ai-infn"


def test_capacity_gauges_count_a_reserved_node_as_up():
    """The gauges describe the site, not one user: a node reserved to a group is up."""
    from types import SimpleNamespace

    from offload_spawner.metrics import capacity_families

    cat = build_catalog(
        profile_list=[{"display_name": "Default", "slug": "default"}],
        offload_targets={"leonardo": TARGETS["leonardo"]},
        reservations=RESERVATIONS,
    )
    node = {
        "kind": "Node",
        "metadata": {"name": "vk-leonardo", "labels": {}},
        "spec": {"taints": [{"key": "reserved", "value": "ai-infn", "effect": "NoSchedule"}]},
        "status": {"conditions": [{"type": "Ready", "status": "True"}], "allocatable": {"cpu": "8", "memory": "32Gi"}},
    }
    view = cluster_view([node], ["vk-leonardo"])
    watcher = SimpleNamespace(catalog=cat, view=lambda: view, reservations={})
    up = next(f for f in capacity_families([watcher]) if f.name.endswith("target_up"))
    assert [(s.labels["target"], s.value) for s in up.samples] == [("leonardo", 1)]
