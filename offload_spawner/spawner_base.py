"""The base class the spawner's mixins have under mypy.

Each mixin of :class:`~offload_spawner.hub.spawner.OffloadSpawner` uses KubeSpawner's
attributes and methods (``self.log``, ``self.namespace``, ``super().start()``)
and sits before KubeSpawner in OffloadSpawner's bases. For mypy the mixins
subclass KubeSpawner (untyped, so ``Any`` to mypy); at run time they subclass
``object``, so the method resolution order is OffloadSpawner's as before. The
traits and attributes a mixin reads from OffloadSpawner or another mixin are
declared (annotation only) in the mixin's class body, so those stay typed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kubespawner import KubeSpawner as SpawnerBase
else:
    SpawnerBase = object

__all__ = ["SpawnerBase"]
