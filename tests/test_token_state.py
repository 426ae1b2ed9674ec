"""A restarted hub rotates a running server's tokens with the policy its Secret was made with.

JupyterHub keeps only the spawner's ``get_state()`` across a restart
(jupyterhub/user.py and app.py: ``load_state`` from the database, then ``poll``):
the plan of the target is gone, so the token policy must travel in the state.
tests/e2e/test_faults_e2e.py restarts a real hub with a running server.
"""

from __future__ import annotations

import json
import logging

from offload_spawner.identity.token_delivery import TokenDeliveryMixin
from offload_spawner.pipeline.catalog import TokenPolicy


class _State:
    log = logging.getLogger("test_token_state")
    pod_name = "jupyter-carol"

    def get_state(self):
        return {}

    def load_state(self, state):
        pass

    def clear_state(self):
        pass


class _Spawner(TokenDeliveryMixin, _State):
    pass


def test_the_token_policy_survives_a_hub_restart():
    policy = TokenPolicy(refresh_token=True, renew_before=120)
    before = _Spawner()
    before._token_pod_uid, before._delivered_access_digest, before._delivered_policy = "uid-1", "digest", policy
    state = json.loads(json.dumps(before.get_state()))  # as the hub's database keeps it

    after = _Spawner()
    after.load_state(state)
    assert after.token_policy() == policy
    assert after.token_policy() != TokenPolicy()

    after.clear_state()
    assert after.token_policy() == TokenPolicy()


def test_an_unreadable_saved_policy_falls_back_to_the_default(caplog):
    after = _Spawner()
    with caplog.at_level(logging.WARNING):
        after.load_state({"offload_tokens": {"pod_uid": "u", "policy": {"renew_before": -1}}})
    assert after.token_policy() == TokenPolicy()
    assert "unreadable" in caplog.text


def test_a_state_from_before_the_policy_was_kept_loads():
    after = _Spawner()
    after.load_state({"offload_tokens": {"pod_uid": "u", "access_sha256": "d", "access_expires": None}})
    assert after._token_pod_uid == "u" and after.token_policy() == TokenPolicy()
