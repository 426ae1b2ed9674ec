"""The Dask pods' hub token: the scopes a target may grant (checked with JupyterHub's
own scope check) and how the Dask pod spec refers to it. Issuing and revoking it
through a real hub: tests/e2e/test_dask_placement_e2e.py."""

from __future__ import annotations

import pytest

from offload_spawner.hub.catalog_check import check_catalog
from offload_spawner.identity.server_secret import DASK_HUB_TOKEN_KEY, HUB_TOKEN_KEY, secret_name
from offload_spawner.identity.tokens import build_delivery, dask_token_references, secret_data
from offload_spawner.pipeline.catalog import CatalogError, TokenPolicy

NAPLES = {"display_name": "Naples", "backend": "htcondor", "node": "vk-naples", "offload": "dask"}


def test_the_default_only_tells_whose_token_it_is():
    assert TokenPolicy().dask_hub_scopes == ["read:users:name!user"]


@pytest.mark.parametrize("scopes", [["access:services"], ["read:users:activity!user", "read:users:name!user"], []])
def test_jupyterhub_scopes_are_accepted(scopes):
    assert TokenPolicy(dask_hub_scopes=scopes).dask_hub_scopes == scopes


@pytest.mark.parametrize(
    ("scope", "words"),
    [
        ("read:userz", "does not exist"),
        ("read:users!usr", "does not exist"),
        ("inherit", "the server's own rights or more"),
        ("self", "the server's own rights or more"),
        ("admin:users", "the server's own rights or more"),
        ("servers!user", "the server's own rights or more"),
        ("tokens", "the server's own rights or more"),
    ],
)
def test_a_scope_that_is_unknown_or_too_broad_is_refused_with_its_key_path(scope, words):
    target = {**NAPLES, "tokens": {"dask_pods": ["hub_token"], "dask_hub_scopes": [scope]}}
    # Too broad: refused by the catalog; unknown to JupyterHub: by the check at hub start.
    with pytest.raises(CatalogError) as e:
        check_catalog({"offload_targets": {"naples": target}})
    assert "offload_targets.naples.tokens.dask_hub_scopes" in str(e.value)
    assert words in str(e.value)


@pytest.mark.parametrize("hub_token", [{"env": True}, {"env": True, "file": True}])
def test_dask_pods_read_the_scoped_key_under_the_usual_names(hub_token):
    policy = TokenPolicy(hub_token=hub_token, dask_pods=["hub_token"])
    refs = dask_token_references(policy, secret_name("jupyter-ann"))
    keys = [e["valueFrom"]["secretKeyRef"]["key"] for e in refs.env if "valueFrom" in e]
    assert keys == [DASK_HUB_TOKEN_KEY]
    assert [e["name"] for e in refs.env] == ["JUPYTERHUB_API_TOKEN"]
    items = [i for v in refs.volumes for i in v["secret"]["items"]]
    assert all(i["key"] != HUB_TOKEN_KEY for i in items)
    if hub_token.get("file"):
        assert items == [{"key": DASK_HUB_TOKEN_KEY, "path": HUB_TOKEN_KEY}]


def test_the_secret_stores_the_scoped_token_and_the_server_never_refers_to_it():
    policy = TokenPolicy(dask_pods=["hub_token"])
    assert secret_data(policy, None, "server-token", {}, "dask-token")[DASK_HUB_TOKEN_KEY] == "dask-token"
    assert DASK_HUB_TOKEN_KEY not in secret_data(policy, None, "server-token", {})
    delivery = build_delivery(policy, None, "server-token", {}, "jupyter-ann", dask_hub_token="dask-token")
    assert DASK_HUB_TOKEN_KEY in delivery.secret["data"]
    assert DASK_HUB_TOKEN_KEY not in str(delivery.env) + str(delivery.volumes)
