"""How `make test` shares the suite between its two pytest-xdist workers.

An e2e test file is one unit of work, taken whole by one worker: its
module-scoped interLink stacks and hubs start once. Any other test is a unit
of its own. A worker that runs e2e files starts its own test bed (the
session-scoped fixtures of tests/e2e/conftest.py), on its own ports, loopback
addresses and SLURM cluster, so two workers never share one.

This is a scheduler and not ``xdist_group`` marks: those work by a suffix on
the node id, which pytest 9 no longer lets a plugin set.
"""

from __future__ import annotations

from xdist.scheduler import LoadScopeScheduling

E2E_DIR = "tests/e2e/"


def xdist_scope(nodeid: str) -> str:
    """The unit of work a node id belongs to: its file for an e2e test, else itself."""
    return nodeid.split("::", 1)[0] if nodeid.startswith(E2E_DIR) else nodeid


class E2eFileScheduling(LoadScopeScheduling):
    """xdist's load-scope scheduling (the biggest units first) with :func:`xdist_scope`."""

    def _split_scope(self, nodeid: str) -> str:
        return xdist_scope(nodeid)
