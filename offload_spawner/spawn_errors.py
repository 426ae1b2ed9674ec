"""The spawn failures a user sees: a :class:`SpawnException` whose message
JupyterHub shows on the spawn page as it is (not the exception's repr)."""

from __future__ import annotations

from jupyterhub.spawner import SpawnException

from .metrics import note_refusal


def spawn_error(message: str, reason: str, status_code: int) -> SpawnException:
    """A failed spawn: ``status_code`` on the REST API, ``message`` on the spawn page."""
    exc = SpawnException(message, reason=reason, status_code=status_code)
    # JupyterHub's spawn page shows this attribute instead of the exception's repr.
    exc.jupyterhub_message = message
    return exc


def refusal(message: str, code: str = "selection", target: str | None = None) -> SpawnException:
    """A refused selection: HTTP 400 on the REST API, the message on the spawn page.

    Counted in the refusal metrics (every caller raises what this returns):
    ``code`` says why in one word (see :data:`offload_spawner.metrics.REFUSAL_REASONS`),
    ``target`` is the validated target slug it concerns, if one."""
    note_refusal(code, target)
    return spawn_error(message, "invalid_user_options", 400)


__all__ = ["refusal", "spawn_error"]
