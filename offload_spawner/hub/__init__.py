"""The hub edge: OffloadSpawner (KubeSpawner), the hub start-up check, the spawn form,
the pod manifest, config loading and the offload-spawner command line."""
