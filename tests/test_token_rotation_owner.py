"""A token rotation replaces the Secret (delete + create) only for a known pod:
the new Secret's ownerReference names the pod's uid, and a Secret the API server
refuses after the old one was deleted would leave the server without its tokens."""

from __future__ import annotations

from typing import Any

import pytest

from offload_spawner.identity.token_delivery import TokenSecretError
from offload_spawner.pipeline.catalog import TokenPolicy
from test_token_rotation import NEW_ACCESS, REFRESH, spawner_with


async def test_an_unknown_pod_uid_refuses_the_rotation_before_anything_is_deleted():
    spawner = spawner_with({"access_token": NEW_ACCESS, "refresh_token": REFRESH})
    spawner._token_pod_uid = None  # e.g. state saved before the pod's uid was known
    requests: list[tuple[str, Any]] = []

    async def read_secret(name: str) -> None:
        requests.append(("read", name))

    async def delete_secret(name: str) -> None:
        requests.append(("delete", name))

    async def create_secret(body: dict[str, Any]) -> None:
        requests.append(("create", body["metadata"]["name"]))

    spawner._read_secret = read_secret
    spawner._delete_secret = delete_secret
    spawner._create_secret = create_secret
    with pytest.raises(TokenSecretError, match="not known"):
        await spawner._replace_secret({"access_token": NEW_ACCESS, "refresh_token": REFRESH}, TokenPolicy())
    assert [kind for kind, _ in requests if kind != "read"] == []


async def test_a_known_pod_uid_replaces_the_secret_owned_by_that_pod():
    spawner = spawner_with({"access_token": NEW_ACCESS, "refresh_token": REFRESH})
    created: list[dict[str, Any]] = []
    deleted: list[str] = []

    async def read_secret(name: str) -> None:
        return None

    async def delete_secret(name: str) -> None:
        deleted.append(name)

    async def create_secret(body: dict[str, Any]) -> None:
        created.append(body)

    spawner._read_secret = read_secret
    spawner._delete_secret = delete_secret
    spawner._create_secret = create_secret
    await spawner._replace_secret({"access_token": NEW_ACCESS, "refresh_token": REFRESH}, TokenPolicy())
    assert deleted == [created[0]["metadata"]["name"]]
    assert [ref["uid"] for ref in created[0]["metadata"]["ownerReferences"]] == ["u1"]
