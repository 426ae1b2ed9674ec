"""What the e2e test bed said about itself (start and stop times, the stack
report), printed at the end of the run under "e2e test bed": by pytest itself,
or under pytest-xdist by the controller, from what its workers handed over."""

from __future__ import annotations

#: Messages of the test bed for the closing summary, in the order they came.
MESSAGES: list[str] = []
_WORTH_PRINTING = ("ready in", "schedulable in", "stopped in", "built", "stack report", "stack tally")


def closing_lines() -> list[str]:
    return [f"testbed: {m}" for m in MESSAGES if any(w in m for w in _WORTH_PRINTING)]
