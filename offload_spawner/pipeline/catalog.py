"""The validated catalog: everything an admin configured, checked once.

Admin configuration (``profile_list``, ``offload_targets``, ``group_limits``,
``default_limits``) goes in as plain data; a :class:`Catalog` comes out, or a
:class:`CatalogError` whose lines name the key path of every problem
(``offload_targets.naples.limits.memory: ...``).  Nothing here talks to a hub or
a cluster.

Every string that later reaches a pod annotation or a batch-system flag is
typed and pattern-checked here, so that the pod plan can copy it verbatim.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

from ..backends import ADAPTERS, adapter_for, backend_choice_help, settings_adapters
from .catalog_types import (
    KEY_RE,
    CatalogModel,
    GroupName,
    Key,
    LabelKey,
    LabelValue,
    Memory,
    ModelName,
    NodeName,
    ResourceName,
    Slug,
)
from .catalog_types import CatalogModel as _Model
from .catalog_types import pattern as _pattern
from .owned_annotations import owned_annotation, owned_annotation_message
from .units import format_memory, parse_memory

#: Option keys with a meaning of their own in user_options (the form and the REST API use the same keys).
RESERVED_KEYS = frozenset({"profile", "cores", "memory", "accelerator", "accelerator_count", "target", "storage"})

#: The toleration every interLink virtual node requires (taint
#: ``virtual-node.interlink/no-schedule=true:NoSchedule``); ``Exists`` also
#: matches older releases that used the value "false".
INTERLINK_TOLERATION = {
    "key": "virtual-node.interlink/no-schedule",
    "operator": "Exists",
    "effect": "NoSchedule",
}

#: Node label carrying an accelerator's model, per extended resource: exactly
#: the labels interLink's virtual kubelet sets from its configured accelerators
#: (interLink/pkg/virtualkubelet/virtualkubelet.go, NewProviderConfig). Any
#: other resource (amd.com/gpu, intel.com/gpu, ...) gets no model label from
#: interLink, so an offer of it must name its ``model_label``.
DEFAULT_MODEL_LABELS = {
    "nvidia.com/gpu": "nvidia-gpu-type",
    "xilinx.com/fpga": "xilinx-fpga-type",
    "intel.com/fpga": "intel-fpga-type",
}

# --- limits -----------------------------------------------------------------


class Limits(_Model):
    """A ceiling: cores, memory and accelerator counts. ``None`` caps nothing."""

    cores: Annotated[float, Field(gt=0)] | None = None
    memory: Memory | None = None
    accelerators: dict[ResourceName, Annotated[int, Field(ge=0)]] | None = None


# --- targets ----------------------------------------------------------------


#: The ``backend`` values: one per backend module of :mod:`offload_spawner.backends`,
#: in its order; a member is named like its value with ``_`` for ``-``
#: (``Backend.interlink_nats``). Built from the registry, so a new backend module
#: needs no line here.
Backend = Enum(  # type: ignore[misc]
    "Backend", [(name.replace("-", "_"), name) for name in ADAPTERS], type=str, module=__name__
)


class Toleration(_Model):
    key: LabelKey | None = None
    operator: Literal["Exists", "Equal"] = "Equal"
    value: LabelValue | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    tolerationSeconds: int | None = None


class TokenChannels(_Model):
    """Where one token reaches the server: an env var and/or a file under TOKEN_DIR."""

    env: bool = True
    file: bool = True


class HubTokenChannels(_Model):
    """Where the server's JupyterHub API token goes (jupyterhub-singleuser reads the env)."""

    env: bool = True
    file: bool = False

    @model_validator(mode="after")
    def _delivered(self) -> HubTokenChannels:
        if not (self.env or self.file):
            raise ValueError(
                "the JupyterHub API token must reach the server: set 'env' or 'file' (jupyterhub-singleuser needs it)"
            )
        return self


class RefreshInJob(_Model):
    """The job renews its own access token (see offload_spawner.identity.job_refresh): for
    remote targets, where a rotated Secret never reaches a running job."""

    client_id: Annotated[str, _pattern(r"[A-Za-z0-9][A-Za-z0-9_.:@/-]{0,255}", "OAuth client id")] = Field(
        description=(
            "The OAuth client the job's refresh requests name. The identity provider must accept the user's "
            "refresh token from it: providers bind a refresh token to the client it was issued to (the hub's)."
        )
    )
    client_secret: SecretStr | None = Field(
        None,
        description=(
            "The secret of client_id, sent to the remote site in the server's Secret (the refresher's "
            "configuration file). Leave unset for a public client. Setting it hands that client's credentials to "
            "the site and to everything running in the server; never the hub's own client secret unless you "
            "accept that (docs/security.md)."
        ),
    )
    token_url: Annotated[str, _pattern(r"https?://[^\s{}\"'<>]+", "http(s) URL")] | None = Field(
        None, description="The token endpoint the job calls. Default: the hub authenticator's token_url."
    )
    refresh_at: Annotated[float, Field(gt=0, lt=1)] = Field(
        0.75, description="Renew the access token when this fraction of its lifetime has passed."
    )
    python: Annotated[str, _pattern(r"[A-Za-z0-9_./][A-Za-z0-9_./+-]{0,254}", "program name or absolute path")] = Field(
        "python3",
        description="The Python 3 interpreter in the server's image that runs the refresher (standard library only).",
    )


#: The Dask pods' hub token by default may only tell whose it is.
DEFAULT_DASK_HUB_SCOPES = ("read:users:name!user",)
#: Scopes that would give the Dask pods as much as the server's own token, or more.
_BROAD_SCOPES = ("inherit", "self", "admin-ui", "tokens", "servers", "delete:servers")


def dask_hub_scope_problem(scope: str) -> str | None:
    """Why ``scope`` may not go to Dask pods because it is too broad (a
    sentence), or None. Whether JupyterHub knows the scope is checked at the hub
    edge (:func:`offload_spawner.hub.catalog_check.unknown_scope_problems`): the
    pure catalog imports nothing of JupyterHub."""
    name = scope.partition("!")[0]
    if name in _BROAD_SCOPES or name.startswith("admin:"):
        return f"scope '{scope}' would give the Dask pods the server's own rights or more: name narrower scopes"
    return None


class TokenPolicy(_Model):
    """Which of the user's tokens a server receives, and how (see offload_spawner.identity.tokens)."""

    access_token: TokenChannels = TokenChannels()
    hub_token: HubTokenChannels = HubTokenChannels()
    refresh_token: bool = Field(
        False,
        description="Deliver the refresh token (file + env REFRESH_TOKEN). Admin opt-in: "
        "a refresh token lets whoever reads it mint access tokens for days.",
    )
    min_lifetime: Annotated[int, Field(ge=0)] | None = Field(
        None, description="Seconds an access token must still live when a server starts."
    )
    renew_before: Annotated[int, Field(gt=0)] = Field(
        600, description="Rotate the delivered access token when it has less than this many seconds left."
    )
    dask_pods: list[Literal["access_token", "hub_token"]] = Field(
        ["access_token"],
        description="Which tokens the server's Dask scheduler and workers receive (as env from the server's "
        "Secret; they run on the target's site). 'hub_token' (JUPYTERHUB_API_TOKEN, the hub's API as the user) "
        "only when named here.",
    )
    refresh_in_job: RefreshInJob | None = Field(
        None,
        description="Run a refresher in the server's container that renews the access token file (BEARER_TOKEN_FILE) "
        "before it expires. Needs access_token.file and refresh_token: true.",
    )

    @model_validator(mode="after")
    def _refresh_in_job_inputs(self) -> TokenPolicy:
        if self.refresh_in_job is not None:
            missing = []
            if not self.access_token.file:
                missing.append("access_token.file: true (the refresher renews the token file)")
            if not self.refresh_token:
                missing.append("refresh_token: true (the refresher needs the refresh token)")
            if missing:
                raise ValueError("refresh_in_job needs " + " and ".join(missing))
        return self

    dask_hub_scopes: list[str] = Field(
        list(DEFAULT_DASK_HUB_SCOPES),
        description="When dask_pods names 'hub_token': the JupyterHub scopes of the token the Dask pods get "
        "instead of the server's own (issued per server, revoked when it stops). JupyterHub scope names, "
        "e.g. 'read:users:name!user', 'access:services'; not 'inherit', 'self' or an 'admin' scope.",
    )

    @field_validator("dask_hub_scopes")
    @classmethod
    def _jupyterhub_scopes(cls, scopes: list[str]) -> list[str]:
        for scope in scopes:
            problem = dask_hub_scope_problem(scope)
            if problem:
                raise ValueError(problem)
        return scopes


class PodShapeSettings(_Model):
    """How the server pod is reshaped for a virtual node. Applied only
    to session-offload targets; in-cluster pods stay as KubeSpawner makes them."""

    volumes: Literal["keep", "drop", "emptydir"] | list[Slug] | None = Field(
        None,
        description=(
            "PVC volumes: 'keep', 'drop' (volume and its mounts), 'emptydir' (same mount, empty), "
            "or the names of the PVC volumes to keep (the others become emptyDir). "
            "Default: 'keep' for interlink-kubernetes (listed in interlink.io/remote-pvc), else 'emptydir'."
        ),
    )
    privileged_init_containers: Literal["local", "drop", "keep"] = Field(
        "local",
        description=(
            "Privileged init containers (Zero-to-JupyterHub's block-cloud-metadata): 'local' lists them in "
            "interlink.eu/disable-offload-init-containers (they run in the cluster's shadow pod), "
            "'drop' removes them, 'keep' sends them to the site."
        ),
    )
    run_as_user: Annotated[int, Field(ge=0)] | None = Field(
        None,
        description=(
            "securityContext.runAsUser of the pod and its containers (the SLURM plugin's sbatch --uid): "
            "one fixed UID for every user. For a per-user UID use run_as_user_claim."
        ),
    )
    run_as_user_claim: Annotated[str, _pattern(r"[A-Za-z0-9_.:-]{1,128}", "claim name")] | None = Field(
        None,
        description=(
            "The user's claim (in auth_state: the IAM userinfo, else the ID token) holding their POSIX UID at "
            "the site; it becomes runAsUser (the SLURM plugin's sbatch --uid). A spawn is refused when the "
            "user has no such claim or it is not a non-negative integer."
        ),
    )
    run_as_group: Annotated[int, Field(ge=0)] | None = Field(None, description="securityContext.runAsGroup.")
    fs_group: Annotated[int, Field(ge=0)] | None = Field(None, description="Pod securityContext.fsGroup.")
    automount_service_account_token: bool = Field(
        False, description="Mount the pod's ServiceAccount token (the remote site would receive it)."
    )
    keep_node_purpose_affinity: bool = Field(
        False,
        description=(
            "Keep Zero-to-JupyterHub's required node affinity on hub.jupyter.org/node-purpose "
            "(matchNodePurpose: require), which no virtual node satisfies."
        ),
    )

    @model_validator(mode="after")
    def _one_uid_source(self) -> PodShapeSettings:
        if self.run_as_user is not None and self.run_as_user_claim is not None:
            raise ValueError("give either run_as_user (one UID for all) or run_as_user_claim (per user), not both")
        return self


class DaskSettings(_Model):
    """Dask clusters a server starts with dask-kubernetes (the operator's
    DaskCluster), placed like the target: defaults and per-pod ceilings.

    Each Dask pod's cores and memory are the default here, capped by the
    ``max_worker_*`` ceiling and by the user's own ceiling on the target
    (see :func:`offload_spawner.dask.dask_config.dask_pod_size`).
    """

    enabled: bool = Field(
        True,
        description="Write the Dask configuration for servers on this target.",
    )
    image: Annotated[str, _pattern(r"[A-Za-z0-9][A-Za-z0-9._/:@-]{0,511}", "image reference")] | None = Field(
        None, description="Image of the scheduler and workers (default: the server's image)."
    )
    workers: Annotated[int, Field(ge=0)] = Field(1, description="Workers a new cluster starts with.")
    max_workers: Annotated[int, Field(ge=1)] | None = Field(
        None, description="Upper bound for adaptive scaling (distributed.adaptive.maximum)."
    )
    worker_cores: Annotated[float, Field(gt=0)] = 1.0
    worker_memory: Memory = parse_memory("2G")
    max_worker_cores: Annotated[float, Field(gt=0)] | None = None
    max_worker_memory: Memory | None = None
    scheduler_cores: Annotated[float, Field(gt=0)] = 1.0
    scheduler_memory: Memory = parse_memory("2G")
    idle_timeout: Annotated[int, Field(ge=0)] = Field(
        3600, description="Seconds an idle cluster lives (the DaskCluster's idleTimeout; 0: forever)."
    )

    @model_validator(mode="after")
    def _bounds(self) -> DaskSettings:
        if self.max_worker_cores is not None and self.worker_cores > self.max_worker_cores:
            raise ValueError(f"worker_cores {self.worker_cores:g} is above max_worker_cores {self.max_worker_cores:g}")
        if self.max_worker_memory is not None and self.worker_memory > self.max_worker_memory:
            raise ValueError(
                f"worker_memory {format_memory(self.worker_memory)} is above "
                f"max_worker_memory {format_memory(self.max_worker_memory)}"
            )
        if self.max_workers is not None and self.workers > self.max_workers:
            raise ValueError(f"workers {self.workers} is above max_workers {self.max_workers}")
        return self


def _is_gpu(resource: str) -> bool:
    return resource.endswith("/gpu")


class TargetFields(_Model):
    """Where a server (or only its Dask clusters) runs."""

    # The fields every target has; Target (below) adds one settings field per
    # backend that takes settings (slurm, nats, ...), from the backend modules.

    display_name: str = Field(min_length=1, max_length=200)
    description: str = Field("", max_length=2000)
    backend: Backend = Field(
        Backend["kubernetes"],
        description="Where the pods run: " + backend_choice_help() + ".",
    )
    node: NodeName | None = None
    offload: Literal["session", "dask"] = "session"
    allowed_groups: list[GroupName] | None = None
    limits: Limits = Limits()
    start_timeout: Annotated[int, Field(gt=0)] | None = None
    http_timeout: Annotated[int, Field(gt=0)] | None = None
    hub_api_url: Annotated[str, _pattern(r"https?://[^\s{}\"'<>]+", "http(s) URL")] | None = None
    request_fraction: Annotated[float, Field(gt=0, le=1)] = Field(
        1.0,
        description="Requests as a fraction of limits (batch backends size jobs from requests).",
    )
    tolerations: list[Toleration] = []
    node_selector: dict[LabelKey, LabelValue] = {}
    annotations: dict[LabelKey, str] = {}
    labels: dict[LabelKey, LabelValue] = {}
    tokens: TokenPolicy = TokenPolicy()
    network: Literal["wstunnel", "mesh", "none"] | None = Field(
        None,
        description=(
            "How the hub reaches a server on the virtual node: 'wstunnel' (interLink's tunnel; set hub_api_url "
            "so the server can reach the hub), 'mesh' (both ways), 'none' (not at all: an error for offload 'session')."
        ),
    )
    pod_shape: PodShapeSettings | None = None
    dask: DaskSettings | None = Field(
        None,
        description="Dask offloading (defaults apply to offload 'dask' targets; a session target needs it set).",
    )

    @model_validator(mode="after")
    def _consistent(self) -> TargetFields:
        adapter = adapter_for(self.backend)
        virtual = adapter.virtual
        if virtual and not self.node:
            raise ValueError(f"a {self.backend.value} target needs 'node', the name of its interLink virtual node")
        if not virtual and self.node:
            raise ValueError("a kubernetes target runs in this cluster and takes no 'node'")
        if not virtual and self.offload == "dask":
            raise ValueError("offload 'dask' needs a virtual-node backend, not kubernetes")
        if self.offload == "dask" and self.dask is not None and not self.dask.enabled:
            raise ValueError("offload 'dask' with dask.enabled false would offload nothing")
        for other in settings_adapters():
            field = other.settings_field
            if other is not adapter and getattr(self, field or "", None) is not None:
                raise ValueError(f"'{field}' settings need backend {other.name!r}, not {self.backend.value!r}")
        if adapter.settings_required and self.backend_settings is None:
            model = adapter.settings_model
            required = [name for name, info in (model.model_fields if model else {}).items() if info.is_required()]
            names = (
                ", ".join(f"'{adapter.settings_field}.{name}'" for name in required) or f"'{adapter.settings_field}'"
            )
            raise ValueError(f"a {adapter.name} target needs {names}")
        if not virtual and (self.network is not None or self.pod_shape is not None):
            raise ValueError("'network' and 'pod_shape' are for virtual-node targets, not kubernetes")
        if self.offload == "session" and self.network == "none":
            raise ValueError(
                "network 'none': the hub could not reach a server on this target; use offload 'dask', "
                "or network 'wstunnel' (with hub_api_url) or 'mesh'"
            )
        no_files = adapter.volume_files_refusal
        if no_files and self.offload == "session":
            tokens = self.tokens
            if tokens.refresh_in_job is not None:
                raise ValueError(
                    f"tokens.refresh_in_job renews a token file, and no token file may go to this site: {no_files}"
                )
            asked = [
                f"tokens.{name}.file"
                for name, channels in (("access_token", tokens.access_token), ("hub_token", tokens.hub_token))
                if channels.file and "file" in channels.model_fields_set
            ]
            if asked:
                raise ValueError(f"{', '.join(asked)}: no token file may go to this site ({no_files}); use env")
        gpus = [name for name, count in (self.limits.accelerators or {}).items() if count and _is_gpu(name)]
        why = adapter.gpu_refusal(self) if gpus else None
        if why:
            raise ValueError(f"this target offers {gpus[0]} but cannot request it: {why}")
        return self

    @property
    def site_tokens(self) -> TokenPolicy:
        """The token policy of the pods this target runs on its site: ``tokens``,
        without token files where the backend's plugin mishandles Secret volumes
        (its ``volume_files_refusal``); the tokens then go as env only."""
        tokens = self.tokens
        if adapter_for(self.backend).volume_files_refusal is None:
            return tokens
        return tokens.model_copy(
            update={
                "access_token": tokens.access_token.model_copy(update={"file": False}),
                "hub_token": tokens.hub_token.model_copy(update={"file": False}),
            }
        )

    @property
    def server_tokens(self) -> TokenPolicy:
        """The token policy of the server pod: the site's when the server runs
        there (offload "session"), else ``tokens`` (it runs in this cluster)."""
        return self.site_tokens if self.offload == "session" else self.tokens

    @property
    def backend_settings(self) -> CatalogModel | None:
        """This target's settings for its own backend (its ``slurm``, ``nats``, ...), if given."""
        field = adapter_for(self.backend).settings_field
        settings = getattr(self, field) if field else None
        return settings if isinstance(settings, CatalogModel) else None

    @property
    def gpu_refusal(self) -> str | None:
        """Why a GPU chosen for this target would not reach the batch system (None: it would)."""
        return adapter_for(self.backend).gpu_refusal(self)

    @property
    def can_request_gpus(self) -> bool:
        return self.gpu_refusal is None

    @property
    def is_virtual(self) -> bool:
        return adapter_for(self.backend).virtual

    @property
    def runs_session_remotely(self) -> bool:
        return self.is_virtual and self.offload == "session"

    @field_validator("annotations")
    @classmethod
    def _no_owned_annotations(cls, annotations: dict[str, str]) -> dict[str, str]:
        # A field validator, so the error's path ends in annotations.
        for key in annotations:
            if owned_annotation(key):
                raise ValueError(owned_annotation_message(key))
        return annotations

    def effective_pod_shape(self) -> PodShapeSettings:
        """``pod_shape`` with the backend's default for ``volumes`` filled in."""
        shape = self.pod_shape or PodShapeSettings()
        if shape.volumes is None:
            volumes = "keep" if adapter_for(self.backend).keeps_claims else "emptydir"
            shape = shape.model_copy(update={"volumes": volumes})
        return shape

    @property
    def dask_settings(self) -> DaskSettings | None:
        """The Dask settings in force: defaults for offload 'dask', else only when set and enabled."""
        if self.dask is not None:
            return self.dask if self.dask.enabled else None
        return DaskSettings() if self.offload == "dask" else None


def _backend_settings_fields() -> dict[str, Any]:
    """One optional field per backend that takes settings (its settings model)."""
    fields: dict[str, Any] = {}
    for adapter in settings_adapters():
        model = adapter.settings_model
        if adapter.settings_field is not None and model is not None:
            fields[adapter.settings_field] = (model | None, Field(None, description=adapter.settings_help))
    return fields


if TYPE_CHECKING:
    Target = TargetFields
else:
    #: A target: :class:`TargetFields` and the backends' settings fields.
    Target = create_model(
        "Target",
        __base__=TargetFields,
        __module__=__name__,
        __doc__=TargetFields.__doc__,
        **_backend_settings_fields(),
    )


# --- profiles ---------------------------------------------------------------


class Choice(_Model):
    display_name: str = Field(min_length=1, max_length=200)
    description: str = Field("", max_length=2000)
    default: bool = False
    allowed_groups: list[GroupName] | None = None
    kubespawner_override: dict[str, Any] = {}


class UnlistedChoice(_Model):
    enabled: bool = False
    display_name: str = Field("", max_length=200)
    display_name_in_choices: str = Field("Other...", max_length=200)
    validation_regex: str | None = None
    validation_message: str = Field("", max_length=500)
    kubespawner_override: dict[str, Any] = {}

    @field_validator("validation_regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as e:
                raise ValueError(f"not a valid regular expression: {e}") from None
        return value


class ProfileOption(_Model):
    display_name: str = Field(min_length=1, max_length=200)
    choices: dict[Key, Choice] = {}
    unlisted_choice: UnlistedChoice = UnlistedChoice()

    @model_validator(mode="after")
    def _has_something(self) -> ProfileOption:
        if not self.choices and not self.unlisted_choice.enabled:
            raise ValueError("an option needs 'choices' or an enabled 'unlisted_choice'")
        if sum(c.default for c in self.choices.values()) > 1:
            raise ValueError("more than one choice is marked default")
        return self

    @property
    def default_choice(self) -> str | None:
        for key, choice in self.choices.items():
            if choice.default:
                return key
        return next(iter(self.choices), None)


class CoresOption(_Model):
    """Cores as a list of choices or a min/max range."""

    choices: list[Annotated[float, Field(gt=0)]] | None = None
    min: Annotated[float, Field(gt=0)] | None = None
    max: Annotated[float, Field(gt=0)] | None = None
    default: Annotated[float, Field(gt=0)] | None = None

    @model_validator(mode="after")
    def _shape(self) -> CoresOption:
        _check_range_shape(self, lambda v: f"{v:g}")
        return self


class MemoryOption(_Model):
    """Memory as a list of choices or a min/max range."""

    choices: list[Memory] | None = None
    min: Memory | None = None
    max: Memory | None = None
    default: Memory | None = None

    @model_validator(mode="after")
    def _shape(self) -> MemoryOption:
        _check_range_shape(self, format_memory)
        return self


def _check_range_shape(option: CoresOption | MemoryOption, show: Callable[[Any], str]) -> None:
    if option.choices is not None:
        if option.min is not None or option.max is not None:
            raise ValueError("give either 'choices' or 'min'/'max', not both")
        if not option.choices:
            raise ValueError("'choices' is empty")
        if option.default is not None and option.default not in option.choices:
            raise ValueError(f"default {show(option.default)} is not one of the choices")
    else:
        if option.min is None or option.max is None:
            raise ValueError("give 'choices', or both 'min' and 'max'")
        if option.min > option.max:
            raise ValueError(f"min {show(option.min)} is above max {show(option.max)}")
        if option.default is not None and not option.min <= option.default <= option.max:
            raise ValueError(f"default {show(option.default)} is outside {show(option.min)}..{show(option.max)}")


class AcceleratorOffer(_Model):
    display_name: str = Field(min_length=1, max_length=200)
    models: list[ModelName] = Field(min_length=1)
    max: Annotated[int, Field(ge=1)] = 1
    model_label: LabelKey | None = Field(
        None,
        description=(
            "Node label holding the model. Default: the label interLink sets (nvidia-gpu-type, xilinx-fpga-type, "
            "intel-fpga-type); required for any other resource, whose model interLink does not label."
        ),
    )


def accelerator_model_label(resource: str, offer: AcceleratorOffer | None = None) -> str:
    """The node label whose value names the model of accelerator ``resource``.

    The one place that decides it (the menu, the pod plan's nodeSelector and the
    availability count all call it): the offer's ``model_label``, else the
    label interLink itself sets for that resource (:data:`DEFAULT_MODEL_LABELS`).
    The catalog refuses an offer of any other resource without ``model_label``,
    so a validated offer always has one.
    """
    if offer is not None and offer.model_label:
        return offer.model_label
    if resource in DEFAULT_MODEL_LABELS:
        return DEFAULT_MODEL_LABELS[resource]
    raise ValueError(f"interLink sets no model label for {resource}: the offer must name its model_label")


class Profile(_Model):
    display_name: str = Field(min_length=1, max_length=200)
    slug: str | None = None
    description: str = Field("", max_length=5000)
    default: bool = False
    allowed_groups: list[GroupName] | None = None
    kubespawner_override: dict[str, Any] = {}
    profile_options: dict[Key, ProfileOption] = {}
    cores: CoresOption | None = None
    memory: MemoryOption | None = None
    accelerators: dict[ResourceName, AcceleratorOffer] = {}
    targets: list[Slug] | None = None

    @property
    def resolved_slug(self) -> str:
        """The slug, derived from display_name when unset (as KubeSpawner does)."""
        return self.slug or _slugify(self.display_name)

    @field_validator("accelerators")
    @classmethod
    def _model_labels(cls, offers: dict[str, AcceleratorOffer]) -> dict[str, AcceleratorOffer]:
        for resource, offer in offers.items():
            if offer.model_label is None and resource not in DEFAULT_MODEL_LABELS:
                raise ValueError(
                    f"{resource}: interLink labels virtual nodes only with "
                    f"{', '.join(DEFAULT_MODEL_LABELS.values())}; name the node label that holds the "
                    f"{resource} model in 'model_label'"
                )
        return offers

    @model_validator(mode="after")
    def _keys(self) -> Profile:
        slug = self.resolved_slug
        # The slug is part of form field names (profile-option-{slug}--{key}).
        if not KEY_RE.fullmatch(slug) or "--" in slug:
            raise ValueError(f"slug {slug!r} must be letters, digits, '_', '.', single '-'")
        return self

    @field_validator("profile_options")
    @classmethod
    def _option_keys(cls, options: dict[str, ProfileOption]) -> dict[str, ProfileOption]:
        # A field validator, so the error's path ends in profile_options.
        for key in options:
            if key in RESERVED_KEYS:
                raise ValueError(f"profile option {key!r} clashes with the built-in field of that name")
            if "--" in key:
                raise ValueError(f"profile option {key!r} may not contain '--'")
        return options


# --- storage and reserved nodes ----------------------------------------------
# The settings models live here with the rest of the catalog; how each backend
# gets a volume is decided in offload_spawner/pipeline/storage.py, and who tolerates a
# reserved node in offload_spawner/pipeline/reservations.py.

# An absolute path, with ``{username}`` the only placeholder. The characters
# allowed are safe in a shell word, a singularity ``--bind`` list (no ',' or
# ':') and a Kubernetes mount path, so a path can be copied verbatim.
_PATH_RE = r"/([A-Za-z0-9_.+-]|\{username\})*(/([A-Za-z0-9_.+-]|\{username\})+)*/?"
# Not the bind mounts' SitePath (no '@', but the {username} placeholder).
UserSitePath = Annotated[str, _pattern(_PATH_RE, "absolute path (letters, digits, '_', '.', '+', '-', and {username})")]
MountPath = Annotated[str, _pattern(r"/([A-Za-z0-9_.+-]+(/[A-Za-z0-9_.+-]+)*)?", "absolute mount path")]
# A claim name: a DNS-1123 subdomain once ``{username}`` is filled in.
ClaimTemplate = Annotated[
    str,
    _pattern(
        r"([a-z0-9]|\{username\})([-a-z0-9.]|\{username\}){0,200}",
        "claim name (lowercase, digits, '-', '.', {username})",
    ),
]
HostName = Annotated[str, _pattern(r"[A-Za-z0-9]([-A-Za-z0-9.]{0,252}[A-Za-z0-9])?", "host name or address")]


class ClusterStorage(_Model):
    """How a volume reaches a server that runs in this cluster."""

    kind: Literal["pvc", "claim", "nfs", "csi"] = Field(
        description=(
            "'pvc': a claim per user, created on the first spawn and kept (KubeSpawner's own "
            "storage_pvc_ensure machinery); 'claim': an existing claim; 'nfs': an NFS export; "
            "'csi': an inline CSI volume (e.g. the CVMFS CSI driver)."
        )
    )
    claim_name: ClaimTemplate | None = Field(
        None, description="'pvc': the claim's name (default claim-{username}); 'claim': the existing claim."
    )
    size: Memory = Field(parse_memory("10G"), description="'pvc': the requested capacity.")
    storage_class: LabelValue | None = Field(None, description="'pvc': the storage class (default: the cluster's).")
    access_modes: list[Literal["ReadWriteOnce", "ReadWriteMany", "ReadOnlyMany", "ReadWriteOncePod"]] = Field(
        ["ReadWriteOnce"], min_length=1, description="'pvc': the claim's access modes."
    )
    server: HostName | None = Field(None, description="'nfs': the NFS server.")
    path: UserSitePath | None = Field(None, description="'nfs': the exported path ({username} allowed).")
    driver: LabelKey | None = Field(None, description="'csi': the CSI driver (e.g. cvmfs.csi.cern.ch).")
    volume_attributes: dict[LabelKey, LabelValue] = Field({}, description="'csi': the driver's volumeAttributes.")

    @model_validator(mode="after")
    def _fields_for_kind(self) -> ClusterStorage:
        needed = {"claim": ("claim_name",), "nfs": ("server", "path"), "csi": ("driver",)}.get(self.kind, ())
        missing = [name for name in needed if getattr(self, name) is None]
        if missing:
            raise ValueError(f"kind {self.kind!r} needs {' and '.join(repr(m) for m in missing)}")
        if self.kind == "claim" and "{username}" in (self.claim_name or ""):
            raise ValueError("kind 'claim' names one existing claim; use kind 'pvc' for a claim per user")
        return self


class SiteStorage(_Model):
    """How a volume reaches a server on one offload target."""

    path: UserSitePath | None = Field(
        None,
        description="SLURM and HTCondor targets: the site path bound into the job's container ({username} allowed).",
    )
    claim: ClaimTemplate | None = Field(
        None, description="interlink-kubernetes targets: the claim in the remote cluster ({username} allowed)."
    )
    description: str = Field(
        "", max_length=500, description="What the user finds there, in their words (e.g. '$WORK')."
    )

    @model_validator(mode="after")
    def _one_source(self) -> SiteStorage:
        if (self.path is None) == (self.claim is None):
            raise ValueError("give exactly one of 'path' (SLURM, HTCondor) or 'claim' (interlink-kubernetes)")
        return self


class Volume(_Model):
    """A named volume: who may have it, where it mounts, and how each target gets it."""

    display_name: str = Field(min_length=1, max_length=100)
    description: str = Field("", max_length=500)
    mount_path: MountPath
    read_only: bool = False
    offered: bool = Field(
        False,
        description="False: always mounted where it can be; True: a checkbox on the form (ticked by default).",
    )
    required: bool = Field(False, description="Refuse a spawn on a target where this volume cannot be mounted.")
    allowed_groups: list[GroupName] | None = None
    cluster: ClusterStorage | None = Field(
        None,
        description="How servers in this cluster get it (kubernetes targets, and servers of offload 'dask' targets).",
    )
    targets: dict[Slug, SiteStorage] = Field(
        {}, description="How servers on each offload target get it, by target slug."
    )


class Reservation(_Model):
    """Nodes reserved to groups: a taint only the groups' servers tolerate."""

    key: LabelKey = Field("reserved", description="The taint's key.")
    value: LabelValue = Field(description="The taint's value (e.g. the group's name).")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] = "NoSchedule"
    groups: list[GroupName] = Field(min_length=1, description="Groups whose servers tolerate the taint.")
    node_label: dict[LabelKey, LabelValue] | None = Field(
        None,
        description="The label the reserved nodes carry, preferred for the groups' servers (default: key=value).",
    )
    weight: Annotated[int, Field(ge=1, le=100)] = Field(100, description="Weight of the preferred node affinity.")


# --- the catalog ------------------------------------------------------------


class Catalog(_Model):
    profile_list: list[Profile] = []
    offload_targets: dict[Slug, Target] = {}
    group_limits: dict[GroupName, Limits] = {}
    default_limits: Limits | None = None
    storage: dict[Slug, Volume] = {}
    reservations: list[Reservation] = []

    @model_validator(mode="after")
    def _references(self) -> Catalog:
        _check_storage(self)
        slugs: list[str] = []
        for index, profile in enumerate(self.profile_list):
            slug = profile.resolved_slug
            if slug in slugs:
                raise _located(f"profile_list[{index}].slug", f"slug {slug!r} is used twice")
            slugs.append(slug)
            for target in profile.targets or []:
                if target not in self.offload_targets:
                    raise _located(
                        f"profile_list[{index}].targets",
                        f"{target!r} is not a key of offload_targets",
                    )
            gpus = [r for r in profile.accelerators if _is_gpu(r)]
            for slug in self.profile_targets(profile) if gpus else []:
                why = self.offload_targets[slug].gpu_refusal
                if why:
                    raise _located(
                        f"profile_list[{index}].accelerators",
                        f"{gpus[0]} is offered on target {slug!r}, which cannot request it: {why}",
                    )
        if sum(p.default for p in self.profile_list) > 1:
            raise _located("profile_list", "more than one profile is marked default")
        return self

    def profile(self, slug: str) -> Profile | None:
        for profile in self.profile_list:
            if profile.resolved_slug == slug:
                return profile
        return None

    def profile_targets(self, profile: Profile) -> list[str]:
        """Targets a profile may use, in admin order (all of them when unset)."""
        if profile.targets is None:
            return list(self.offload_targets)
        return list(profile.targets)


def _check_storage(catalog: Catalog) -> None:
    """A volume a target cannot have is refused here, with its key path."""
    mounts: dict[str, str] = {}
    per_user_claims = []
    for name, volume in catalog.storage.items():
        where = f"storage.{name}"
        if volume.mount_path in mounts:
            raise _located(
                f"{where}.mount_path", f"{volume.mount_path} is also the mount path of {mounts[volume.mount_path]!r}"
            )
        mounts[volume.mount_path] = name
        if volume.cluster is not None and volume.cluster.kind == "pvc":
            per_user_claims.append(name)
        for slug, site in volume.targets.items():
            target = catalog.offload_targets.get(slug)
            if target is None:
                raise _located(f"{where}.targets", f"{slug!r} is not a key of offload_targets")
            if not target.runs_session_remotely:
                raise _located(
                    f"{where}.targets.{slug}",
                    "servers of this target run in this cluster; give the volume's 'cluster' source instead",
                )
            # The site form of a volume the backend takes (see offload_spawner/pipeline/storage.py).
            wanted = adapter_for(target.backend).site_storage
            if wanted is None:
                raise _located(
                    f"{where}.targets.{slug}",
                    f"a {target.backend.value} target cannot mount a volume (no interLink setting for it); "
                    "leave it out, and users see that the volume is not there",
                )
            if getattr(site, wanted) is None:
                raise _located(f"{where}.targets.{slug}", f"a {target.backend.value} target takes {wanted!r}")
    if len(per_user_claims) > 1:
        raise _located(
            "storage",
            f"only one volume may be of kind 'pvc' (KubeSpawner ensures one claim per server): {', '.join(per_user_claims)}",
        )


class CatalogError(ValueError):
    """The admin configuration is invalid. ``problems`` holds ``path: message`` lines."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid offload_spawner configuration:\n" + "\n".join(f"  {p}" for p in problems))


class _LocatedError(ValueError):
    def __init__(self, path: str, message: str):
        self.path = path
        super().__init__(message)


def _located(path: str, message: str) -> _LocatedError:
    return _LocatedError(path, message)


def _slugify(display_name: str) -> str:
    # KubeSpawner derives missing profile slugs with python-slugify; use the same.
    from slugify import slugify

    return slugify(display_name)


_MESSAGES = {
    "extra_forbidden": "unknown key (check its spelling and where it is placed)",
    "missing": "this key is required",
}


def _format_loc(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part.startswith(("function-", "constrained-", "tagged-union")) or part == "[key]":
            continue
        else:
            path += ("." if path else "") + str(part)
    return path


def build_catalog(
    profile_list: Any = None,
    offload_targets: Any = None,
    group_limits: Any = None,
    default_limits: Any = None,
    storage: Any = None,
    reservations: Any = None,
) -> Catalog:
    """Validate admin configuration into a :class:`Catalog`, or raise :class:`CatalogError`."""
    data = {
        "profile_list": _profiles_as_list(profile_list),
        "offload_targets": offload_targets or {},
        "group_limits": group_limits or {},
        "default_limits": default_limits,
        "storage": storage or {},
        "reservations": reservations or [],
    }
    try:
        return Catalog.model_validate(data)
    except ValidationError as e:
        problems = []
        for err in e.errors():
            message = _MESSAGES.get(err["type"]) or err["msg"].removeprefix("Value error, ")
            ctx_error = (err.get("ctx") or {}).get("error")
            path = _format_loc(err["loc"])
            if isinstance(ctx_error, _LocatedError):
                path = ctx_error.path
            problems.append(f"{path or '(top)'}: {message}")
        raise CatalogError(problems) from None


def _profiles_as_list(profile_list: Any) -> Any:
    """KubeSpawner also accepts a dict of profiles, taken in key order."""
    if profile_list is None:
        return []
    if isinstance(profile_list, dict):
        return [profile_list[key] for key in sorted(profile_list)]
    return profile_list


def catalog_fingerprint(*parts: Any) -> str:
    """A cache key for configuration data (callables keep their identity).

    A digest of the plain data's ``repr`` (a third of the time of
    ``json.dumps`` for a catalog of a thousand profiles, and the cache holds
    a short key, not a copy of the configuration); equal data in another key
    order only misses the cache.
    """
    return hashlib.blake2b(repr(parts).encode("utf-8", "surrogatepass"), digest_size=20).hexdigest()
