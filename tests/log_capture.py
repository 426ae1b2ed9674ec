"""Capture every log record of every logger at DEBUG (to look for leaked secrets)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator


class _Keep(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))  # message, arguments and traceback text


@contextlib.contextmanager
def all_logs_at_debug() -> Iterator[list[str]]:
    """Every logger at DEBUG for the duration; yields the formatted lines."""
    handler = _Keep()
    root = logging.getLogger()
    loggers = [root] + [lg for lg in logging.root.manager.loggerDict.values() if isinstance(lg, logging.Logger)]
    levels = {lg: lg.level for lg in loggers}
    detached = [lg for lg in loggers if not lg.propagate and lg is not root]
    for lg in loggers:
        lg.setLevel(logging.DEBUG)
    root.addHandler(handler)
    for lg in detached:
        lg.addHandler(handler)
    try:
        yield handler.lines
    finally:
        root.removeHandler(handler)
        for lg in detached:
            lg.removeHandler(handler)
        for lg, level in levels.items():
            lg.setLevel(level)


def leaked(lines: list[str], secrets: list[str]) -> list[str]:
    """Lines holding any of ``secrets`` (or their base64 form)."""
    import base64

    needles = [s for s in secrets if s] + [base64.b64encode(s.encode()).decode() for s in secrets if s]
    return [line for line in lines if any(n in line for n in needles)]
