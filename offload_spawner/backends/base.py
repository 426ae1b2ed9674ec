from __future__ import annotations

from typing import Any

from ..catalog import Target
from ..selection import Selection


class BackendAdapter:
    """Annotations and tolerations for one interLink plugin. The default adds none."""

    def annotations(self, target: Target, selection: Selection) -> dict[str, str]:
        return {}

    def tolerations(self, target: Target) -> list[dict[str, Any]]:
        """Tolerations the plugin reads besides interLink's own (typed admin settings only)."""
        return []
