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
from enum import Enum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    field_validator,
    model_validator,
)

from .units import QuantityError, format_memory, parse_memory

#: Option keys with a meaning of their own in user_options (CONTRACT §2).
RESERVED_KEYS = frozenset(
    {"profile", "cores", "memory", "accelerator", "accelerator_count", "target"}
)

#: The toleration every interLink virtual node requires (taint
#: ``virtual-node.interlink/no-schedule=true:NoSchedule``); ``Exists`` also
#: matches older releases that used the value "false".
INTERLINK_TOLERATION = {
    "key": "virtual-node.interlink/no-schedule",
    "operator": "Exists",
    "effect": "NoSchedule",
}

#: Node label carrying an accelerator's model, per extended resource.
DEFAULT_MODEL_LABELS = {
    "nvidia.com/gpu": "nvidia-gpu-type",
    "amd.com/gpu": "amd-gpu-type",
    "intel.com/gpu": "intel-gpu-type",
    "xilinx.com/fpga": "xilinx-fpga-type",
    "intel.com/fpga": "intel-fpga-type",
}


# --- scalar types -----------------------------------------------------------


def _memory(value: Any) -> int:
    try:
        return parse_memory(value)
    except QuantityError as e:
        raise ValueError(str(e)) from None


Memory = Annotated[
    int,
    BeforeValidator(_memory),
    PlainSerializer(format_memory, return_type=str),
]


def _pattern(regex: str, what: str):
    compiled = re.compile(regex)

    def check(value: str) -> str:
        if not compiled.fullmatch(value):
            raise ValueError(f"{value!r} is not a valid {what}")
        return value

    return AfterValidator(check)


# DNS-1123 label: valid as a label value, a URL path part and an HTML id.
Slug = Annotated[str, _pattern(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", "slug (lowercase letters, digits and '-')")]
# Keys of choices and profile options: safe in form field names.
_KEY_RE = re.compile(r"[A-Za-z0-9_.]([A-Za-z0-9_.-]*[A-Za-z0-9_.])?")
Key = Annotated[str, _pattern(_KEY_RE.pattern, "key (letters, digits, '_', '.', '-')")]
NodeName = Annotated[str, _pattern(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?", "node name")]
ResourceName = Annotated[str, _pattern(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?/[a-z0-9]([-a-z0-9_.]*[a-z0-9])?", "extended resource name (vendor.com/kind)")]
ModelName = Annotated[str, _pattern(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?", "accelerator model (a label value)")]
LabelKey = Annotated[str, _pattern(r"([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?", "label key")]
LabelValue = Annotated[str, _pattern(r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?", "label value")]
# A batch-system option: ``--name`` or ``--name=value`` with no space, quote or
# shell metacharacter, so that joining them with spaces is unambiguous.
BatchFlag = Annotated[str, _pattern(r"--?[A-Za-z][A-Za-z0-9-]*(=[A-Za-z0-9_.:,/@%+=-]+)?", "flag (--name or --name=value, no spaces or quotes)")]
BatchWord = Annotated[str, _pattern(r"[A-Za-z0-9_.+-]{1,128}", "name (letters, digits, '_', '.', '+', '-')")]
SlurmTime = Annotated[str, _pattern(r"(\d+-)?\d{1,2}(:\d{2}){0,2}|\d+", "SLURM time limit (e.g. 04:00:00 or 1-00:00:00)")]
GroupName = Annotated[str, Field(min_length=1, max_length=256)]


class _Model(BaseModel):
    """Strict by default: an unknown key is a typo, and a typo stops the hub."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# --- limits -----------------------------------------------------------------


class Limits(_Model):
    """A ceiling: cores, memory and accelerator counts. ``None`` caps nothing."""

    cores: Annotated[float, Field(gt=0)] | None = None
    memory: Memory | None = None
    accelerators: dict[ResourceName, Annotated[int, Field(ge=0)]] | None = None


# --- targets ----------------------------------------------------------------


class Backend(str, Enum):
    kubernetes = "kubernetes"
    slurm = "slurm"
    htcondor = "htcondor"
    docker = "docker"
    interlink_kubernetes = "interlink-kubernetes"
    generic = "generic"


class Toleration(_Model):
    key: LabelKey | None = None
    operator: Literal["Exists", "Equal"] = "Equal"
    value: LabelValue | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    tolerationSeconds: int | None = None


class SlurmSettings(_Model):
    """What the interLink SLURM plugin reads, as typed admin settings."""

    partition: BatchWord | None = None
    account: BatchWord | None = None
    qos: BatchWord | None = None
    time_limit: SlurmTime | None = None
    flavor: BatchWord | None = None
    extra_flags: list[BatchFlag] = []
    gres_from_accelerators: bool = Field(
        False,
        description="Add --gres=gpu:<model>:<count> for a chosen nvidia.com/gpu.",
    )
    image_root: Annotated[str, _pattern(r"[a-z]+://|[A-Za-z0-9_./:-]+", "image root")] | None = None
    singularity_options: list[BatchFlag] = []
    pre_exec: str | None = Field(
        None,
        description="Shell lines run before the payload (admin text only; users never reach it).",
    )


class HTCondorSettings(_Model):
    """What the interLink HTCondor plugin reads."""

    singularity_options: list[BatchFlag] = []
    image_root: Annotated[str, _pattern(r"[a-z]+://|[A-Za-z0-9_./:-]+", "image root")] | None = None


class DockerSettings(_Model):
    """What the interLink Docker plugin reads."""

    flags: list[BatchFlag] = []


class InterlinkKubernetesSettings(_Model):
    """What the interLink Kubernetes plugin reads."""

    remote_pvcs: list[Slug] = []


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


class TokenPolicy(_Model):
    """Which of the user's tokens a server receives, and how (see offload_spawner.tokens)."""

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


class PodShapeSettings(_Model):
    """How the server pod is reshaped for a virtual node (issue 7). Applied only
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
        None, description="securityContext.runAsUser of the pod and its containers (the SLURM plugin's job UID)."
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


class DaskSettings(_Model):
    """Dask clusters a server starts with dask-kubernetes (the operator's
    DaskCluster), placed like the target: defaults and per-pod ceilings.

    Each Dask pod's cores and memory are the default here, capped by the
    ``max_worker_*`` ceiling and by the user's own ceiling on the target
    (see :func:`offload_spawner.dask_config.dask_pod_size`).
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


_BACKEND_SETTINGS = {
    "slurm": Backend.slurm,
    "htcondor": Backend.htcondor,
    "docker": Backend.docker,
    "kubernetes_plugin": Backend.interlink_kubernetes,
}


class Target(_Model):
    """Where a server (or only its Dask clusters) runs."""

    display_name: str = Field(min_length=1, max_length=200)
    description: str = Field("", max_length=2000)
    backend: Backend = Backend.kubernetes
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
    slurm: SlurmSettings | None = None
    htcondor: HTCondorSettings | None = None
    docker: DockerSettings | None = None
    kubernetes_plugin: InterlinkKubernetesSettings | None = None
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
    def _consistent(self) -> Target:
        virtual = self.backend is not Backend.kubernetes
        if virtual and not self.node:
            raise ValueError(
                f"a {self.backend.value} target needs 'node', the name of its interLink virtual node"
            )
        if not virtual and self.node:
            raise ValueError("a kubernetes target runs in this cluster and takes no 'node'")
        if not virtual and self.offload == "dask":
            raise ValueError("offload 'dask' needs a virtual-node backend, not kubernetes")
        if self.offload == "dask" and self.dask is not None and not self.dask.enabled:
            raise ValueError("offload 'dask' with dask.enabled false would offload nothing")
        for field, backend in _BACKEND_SETTINGS.items():
            if getattr(self, field) is not None and self.backend is not backend:
                raise ValueError(f"'{field}' settings need backend {backend.value!r}, not {self.backend.value!r}")
        if not virtual and (self.network is not None or self.pod_shape is not None):
            raise ValueError("'network' and 'pod_shape' are for virtual-node targets, not kubernetes")
        if self.offload == "session" and self.network == "none":
            raise ValueError(
                "network 'none': the hub could not reach a server on this target; use offload 'dask', "
                "or network 'wstunnel' (with hub_api_url) or 'mesh'"
            )
        return self

    @property
    def is_virtual(self) -> bool:
        return self.backend is not Backend.kubernetes

    @property
    def runs_session_remotely(self) -> bool:
        return self.is_virtual and self.offload == "session"

    def effective_pod_shape(self) -> PodShapeSettings:
        """``pod_shape`` with the backend's default for ``volumes`` filled in."""
        shape = self.pod_shape or PodShapeSettings()
        if shape.volumes is None:
            volumes = "keep" if self.backend is Backend.interlink_kubernetes else "emptydir"
            shape = shape.model_copy(update={"volumes": volumes})
        return shape
    @property
    def dask_settings(self) -> DaskSettings | None:
        """The Dask settings in force: defaults for offload 'dask', else only when set and enabled."""
        if self.dask is not None:
            return self.dask if self.dask.enabled else None
        return DaskSettings() if self.offload == "dask" else None


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


def _check_range_shape(option: CoresOption | MemoryOption, show) -> None:
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
        None, description="Node label holding the model; defaults by vendor (nvidia-gpu-type, ...)."
    )


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

    @model_validator(mode="after")
    def _keys(self) -> Profile:
        slug = self.resolved_slug
        # The slug is part of form field names (profile-option-{slug}--{key}).
        if not _KEY_RE.fullmatch(slug) or "--" in slug:
            raise ValueError(f"slug {slug!r} must be letters, digits, '_', '.', single '-'")
        return self

    @field_validator("profile_options")
    @classmethod
    def _option_keys(cls, options: dict) -> dict:
        # A field validator, so the error's path ends in profile_options.
        for key in options:
            if key in RESERVED_KEYS:
                raise ValueError(f"profile option {key!r} clashes with the built-in field of that name")
            if "--" in key:
                raise ValueError(f"profile option {key!r} may not contain '--'")
        return options


# --- the catalog ------------------------------------------------------------


class Catalog(_Model):
    profile_list: list[Profile] = []
    offload_targets: dict[Slug, Target] = {}
    group_limits: dict[GroupName, Limits] = {}
    default_limits: Limits | None = None

    @model_validator(mode="after")
    def _references(self) -> Catalog:
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
) -> Catalog:
    """Validate admin configuration into a :class:`Catalog`, or raise :class:`CatalogError`."""
    data = {
        "profile_list": _profiles_as_list(profile_list),
        "offload_targets": offload_targets or {},
        "group_limits": group_limits or {},
        "default_limits": default_limits,
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
