"""Which failures of a pod create or delete are tried again (offload_spawner/hub/api_outage.py).

The classes and statuses are those the real kube-apiserver and aiohttp give while
the API server restarts (tests/e2e/test_faults_e2e.py restarts the test bed's);
here a stand-in for KubeSpawner's request methods raises each of them once.
"""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace

import aiohttp
import pytest
from kubernetes_asyncio.client.exceptions import ApiException

from offload_spawner.hub.api_outage import ApiOutageMixin


class _KubeSpawnerRequests:
    """What KubeSpawner's ``_make_create_pod_request`` / ``_make_delete_pod_request`` do
    on these errors: let them out (a 409 and a 404 it handles itself)."""

    log = logging.getLogger("test_api_outage")
    namespace = "jhub"
    error: BaseException | None = None

    async def _make_create_pod_request(self, pod, request_timeout):
        if self.error is not None:
            raise self.error
        return True

    async def _make_delete_pod_request(self, pod_name, delete_options, grace_seconds, request_timeout):
        if self.error is not None:
            raise self.error
        return True


class _Spawner(ApiOutageMixin, _KubeSpawnerRequests):
    pass


def refused() -> BaseException:
    key = SimpleNamespace(host="127.0.0.1", port=6443, ssl=None)
    return aiohttp.ClientConnectorError(key, ConnectionRefusedError(111, "Connect call failed"))


POD = SimpleNamespace(metadata=SimpleNamespace(name="jupyter-carol"))


def create(error: BaseException | None) -> bool:
    spawner = _Spawner()
    spawner.error = error
    return asyncio.run(spawner._make_create_pod_request(POD, 3))


def delete(error: BaseException | None) -> bool:
    spawner = _Spawner()
    spawner.error = error
    return asyncio.run(spawner._make_delete_pod_request("jupyter-carol", None, 1, 3))


@pytest.mark.parametrize(
    "error",
    [
        refused(),
        aiohttp.ServerDisconnectedError(),
        ConnectionResetError(104, "reset"),
        ApiException(status=503),
        ApiException(status=500),
        ApiException(status=429),
    ],
)
def test_an_api_server_that_cannot_answer_is_asked_again(error, caplog):
    with caplog.at_level(logging.WARNING):
        assert create(error) is False
        assert delete(error) is False
    assert "trying again" in caplog.text


def test_a_delete_answered_403_is_asked_again_a_create_is_not():
    """A starting API server answers 403 until its RBAC authorizer has loaded; a quota
    or an admission policy refusing a create answers 403 too, and that is final."""
    assert delete(ApiException(status=403)) is False
    with pytest.raises(ApiException):
        create(ApiException(status=403))


@pytest.mark.parametrize("status", [400, 401, 422])
def test_other_refusals_end_the_request(status):
    with pytest.raises(ApiException):
        create(ApiException(status=status))
    with pytest.raises(ApiException):
        delete(ApiException(status=status))


def test_success_is_passed_through():
    assert create(None) is True and delete(None) is True
