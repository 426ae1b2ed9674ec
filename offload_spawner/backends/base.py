from __future__ import annotations

from ..catalog import Target
from ..selection import Selection


class BackendAdapter:
    """Annotations for one interLink plugin. The default adds none."""

    #: does the pod leave the cluster (bound to an interLink virtual node)?
    virtual: bool = True

    def annotations(self, target: Target, selection: Selection) -> dict[str, str]:
        return {}
