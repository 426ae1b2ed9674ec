"""What each catalog field means, for admins: the help text of the reference.

Kept beside :mod:`offload_spawner.pipeline.catalog` rather than in it so that the
models stay short to read. A field's own ``Field(description=...)`` wins over
the text here; a backend's settings describe their fields themselves, in the
backend's module (:mod:`offload_spawner.backends`). ``docs/gen_reference.py``
renders both into docs/reference.md,
and a test makes sure every field of every catalog model has a description
and no entry here names a field that does not exist.
"""

from __future__ import annotations

from typing import Any

from .catalog import Catalog

#: "Model.field" -> description.
FIELD_HELP: dict[str, str] = {
    # Catalog: the OffloadSpawner traits it is built from
    "Catalog.profile_list": "KubeSpawner's `profile_list` with the extra keys of Profile. A callable is validated when called.",
    "Catalog.offload_targets": "Where servers may run, by slug (DNS label: lowercase letters, digits, '-').",
    "Catalog.group_limits": "Ceilings per group name. A user's ceiling is, field by field, the most generous of their groups'.",
    "Catalog.default_limits": "The ceiling for a field none of the user's groups sets. Unset: no ceiling.",
    "Catalog.storage": "Named volumes, by slug: where users find their files on each target (see Volume).",
    "Catalog.reservations": "Nodes reserved to groups: a taint only those groups' servers tolerate (see Reservation).",
    # Volume and Reservation
    "Volume.display_name": 'What users call it ("home", "$WORK", "CVMFS"): shown in the form\'s storage summary.',
    "Volume.description": 'A short note shown after the name (default for a per-user claim: "your 10G volume").',
    "Volume.mount_path": "Where the server sees it (absolute path).",
    "Volume.read_only": "Mount it read-only (`:ro` for singularity binds).",
    "Volume.allowed_groups": "Groups whose servers get it. Unset: everyone.",
    "Reservation.effect": "The taint's effect.",
    # Target
    "Target.display_name": 'Shown to users in the form ("Run on").',
    "Target.description": "Shown under the target in the form.",
    "Target.node": "The interLink virtual node: the pod gets `nodeSelector: {kubernetes.io/hostname: node}` and the interLink toleration. Required for every backend but `kubernetes`.",
    "Target.offload": "`session`: the server pod runs on the node; `dask`: the server stays in this cluster and only Dask clusters go to the node.",
    "Target.allowed_groups": "Groups that may use this target. Unset: everyone; `[]`: nobody.",
    "Target.limits": "Caps cores and memory where set; the target offers only the accelerators listed here.",
    "Target.start_timeout": "Seconds a server on this target may take to start (queued batch systems need long ones). Unset: the spawner's `start_timeout`.",
    "Target.http_timeout": "Seconds the hub waits for a started server to answer. Unset: the spawner's `http_timeout`.",
    "Target.hub_api_url": "The hub API as a remote server reaches it; sets `JUPYTERHUB_API_URL` and `JUPYTERHUB_ACTIVITY_URL` for session targets.",
    "Target.tolerations": "Extra tolerations for pods of this target (besides the interLink one).",
    "Target.node_selector": "Extra node selector labels for pods of this target.",
    "Target.annotations": "Extra pod annotations (admin text, copied verbatim).",
    "Target.labels": "Extra pod labels.",
    # Limits
    "Limits.cores": "CPU cores (may be fractional).",
    "Limits.memory": "Memory, as a size: `8G`, `512M` (K/M/G/T are powers of 1024, as in KubeSpawner; a bare number is gigabytes).",
    "Limits.accelerators": "Extended resource -> count, e.g. `{nvidia.com/gpu: 2}`.",
    # Toleration (Kubernetes' own fields)
    "Toleration.key": "Taint key to tolerate.",
    "Toleration.operator": "`Exists` or `Equal`.",
    "Toleration.value": "Taint value (with `Equal`).",
    "Toleration.effect": "`NoSchedule`, `PreferNoSchedule` or `NoExecute`; unset: all.",
    "Toleration.tolerationSeconds": "How long a `NoExecute` taint is tolerated.",
    # Profile
    "Profile.display_name": "Shown to users.",
    "Profile.slug": "Identifies the profile in user_options and form field names. Default: derived from display_name, as KubeSpawner does.",
    "Profile.description": "Shown under the profile in the form.",
    "Profile.default": "Pre-selected in the form.",
    "Profile.allowed_groups": "Groups that see and may use the profile. Unset: everyone.",
    "Profile.kubespawner_override": "KubeSpawner traits set for this profile (as in KubeSpawner).",
    "Profile.profile_options": "KubeSpawner's profile options (`image`, ...), by key.",
    "Profile.cores": "The cores a user may pick: choices or a min/max range. Unset: not offered.",
    "Profile.memory": "The memory a user may pick: choices or a min/max range. Unset: not offered.",
    "Profile.accelerators": "Accelerators offered, by extended resource name (`nvidia.com/gpu`, `xilinx.com/fpga`).",
    "Profile.targets": "Target slugs this profile may run on. Unset: every target.",
    "ProfileOption.display_name": "Shown to users.",
    "ProfileOption.choices": "The choices, by key.",
    "ProfileOption.unlisted_choice": "Free text instead of a choice (KubeSpawner's `unlisted_choice`).",
    "Choice.display_name": "Shown to users.",
    "Choice.description": "Shown with the choice.",
    "Choice.default": "Pre-selected.",
    "Choice.allowed_groups": "Groups that see and may pick it. Unset: everyone allowed the profile.",
    "Choice.kubespawner_override": "KubeSpawner traits this choice sets.",
    "UnlistedChoice.enabled": "Offer free text.",
    "UnlistedChoice.display_name": "Label of the text field.",
    "UnlistedChoice.display_name_in_choices": "The entry in the choices list that selects free text.",
    "UnlistedChoice.validation_regex": "The text must match it as a whole. Braces, spaces and control characters are always refused.",
    "UnlistedChoice.validation_message": "Shown when the text does not match.",
    "UnlistedChoice.kubespawner_override": "KubeSpawner traits; `{value}` is replaced by the text (never parsed as a template).",
    "CoresOption.choices": "The values offered.",
    "CoresOption.min": "Lowest value (with `max`, instead of `choices`).",
    "CoresOption.max": "Highest value.",
    "CoresOption.default": "Pre-selected value.",
    "MemoryOption.choices": "The sizes offered (`4G`, ...).",
    "MemoryOption.min": "Smallest size (with `max`, instead of `choices`).",
    "MemoryOption.max": "Largest size.",
    "MemoryOption.default": "Pre-selected size.",
    "AcceleratorOffer.display_name": "Shown to users (`NVIDIA GPU`).",
    "AcceleratorOffer.models": "Models offered; the chosen one becomes a node selector on the model label.",
    "AcceleratorOffer.max": "Most a user may ask for in one server (user and target limits cap it further).",
    # Tokens (per target: what the per-server Secret delivers)
    "Target.tokens": "Which of the user's tokens a server on this target receives, and how (env via secretKeyRef, files under /var/run/secrets/offload-spawner).",
    "TokenPolicy.access_token": "The IAM access token: `env` sets ACCESS_TOKEN, `file` writes it and sets BEARER_TOKEN_FILE.",
    "TokenPolicy.hub_token": "The server's JupyterHub API token (JUPYTERHUB_API_TOKEN); needs `env` or `file`.",
    "TokenPolicy.dask_pods": "Tokens the Dask scheduler and workers receive: `access_token` (default), `hub_token` only if named.",
    "TokenChannels.env": "Deliver the token as an env var (a `secretKeyRef`; keeps the value the server started with).",
    "TokenChannels.file": "Deliver the token as a file (follows rotation while the server runs).",
    "HubTokenChannels.env": "Deliver JUPYTERHUB_API_TOKEN as an env var (`secretKeyRef`); jupyterhub-singleuser reads it.",
    "HubTokenChannels.file": "Also deliver the hub token as a file under /var/run/secrets/offload-spawner.",
    # Pod shape and Dask
    "Target.pod_shape": "How a session pod is reshaped for the virtual node (volumes, privileged init containers, UID, service account token).",
    "DaskSettings.worker_cores": "Cores of each Dask worker by default (capped by `max_worker_cores` and the user's ceiling).",
    "DaskSettings.worker_memory": "Memory of each Dask worker by default (capped by `max_worker_memory` and the user's ceiling).",
    "DaskSettings.max_worker_cores": "Ceiling for a worker's cores. Unset: the user's ceiling on the target.",
    "DaskSettings.max_worker_memory": "Ceiling for a worker's memory. Unset: the user's ceiling on the target.",
    "DaskSettings.scheduler_cores": "Cores of the Dask scheduler pod.",
    "DaskSettings.scheduler_memory": "Memory of the Dask scheduler pod.",
}


def catalog_json_schema() -> dict[str, Any]:
    """The catalog's JSON schema (as admins write it) with every field described.

    Raises ``KeyError`` naming a ``FIELD_HELP`` entry for a field that does not
    exist (a stale entry).
    """
    schema = Catalog.model_json_schema(mode="serialization")
    models = {"Catalog": schema, **schema.get("$defs", {})}
    for key in FIELD_HELP:
        model, _, field = key.partition(".")
        if field not in models.get(model, {}).get("properties", {}):
            raise KeyError(f"FIELD_HELP[{key!r}]: {model} has no field {field!r}")
    for name, model in models.items():
        for field, spec in model.get("properties", {}).items():
            if "description" not in spec and f"{name}.{field}" in FIELD_HELP:
                spec["description"] = FIELD_HELP[f"{name}.{field}"]
    return schema


def catalog_schema_document() -> dict[str, Any]:
    """:func:`catalog_json_schema` as a standalone JSON Schema document, for
    editors and Helm values checks (``offload-spawner schema``,
    docs/catalog.schema.json): the four catalog traits as one object."""
    schema = catalog_json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "offload-spawner catalog (OffloadSpawner profile_list, offload_targets, group_limits, default_limits)",
        **{key: value for key, value in schema.items() if key != "title"},
    }
