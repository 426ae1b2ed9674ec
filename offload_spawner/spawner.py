"""``OffloadSpawner``: KubeSpawner wired to the offload_spawner core.

This module only wires: config traits -> :func:`build_catalog` ->
:func:`build_menu` -> :func:`select` -> :func:`build_plan` -> KubeSpawner
traits and pod manifest.  The logic lives in those modules.
"""

from __future__ import annotations

import inspect
from collections import OrderedDict
from typing import Any

from jupyterhub.spawner import SpawnException
from jupyterhub.utils import maybe_future, url_escape_path, url_path_join
from kubernetes_asyncio.client.models import V1Volume, V1VolumeMount
from kubespawner import KubeSpawner
from kubespawner.utils import get_k8s_model
from traitlets import Dict, List, Unicode, default

from .catalog import Catalog, CatalogError, build_catalog, catalog_fingerprint
from .dask_config import DaskServerConfig, dask_config
from .forms import render_form, user_options_from_form
from .limits import target_ceiling, user_ceiling
from .manifest import apply_plan_to_pod, plan_traits
from .menu import Menu, build_menu
from .plan import PodPlan, build_plan
from .selection import Selection, SelectionError, select
from .server_secret import file_volumes, secret_name

_CATALOG_CACHE: OrderedDict[str, Catalog] = OrderedDict()
_CATALOG_CACHE_SIZE = 16


def cached_catalog(profile_list: Any, offload_targets: Any, group_limits: Any, default_limits: Any) -> Catalog:
    """Build (or reuse) the catalog for this configuration data."""
    key = catalog_fingerprint(profile_list, offload_targets, group_limits, default_limits)
    catalog = _CATALOG_CACHE.get(key)
    if catalog is None:
        catalog = build_catalog(profile_list, offload_targets, group_limits, default_limits)
        _CATALOG_CACHE[key] = catalog
        while len(_CATALOG_CACHE) > _CATALOG_CACHE_SIZE:
            _CATALOG_CACHE.popitem(last=False)
    else:
        _CATALOG_CACHE.move_to_end(key)
    return catalog


def refusal(message: str) -> SpawnException:
    """A refused selection: HTTP 400 on the REST API, the message on the spawn page."""
    exc = SpawnException(message, reason="invalid_user_options", status_code=400)
    # JupyterHub's spawn page shows this attribute instead of the exception's repr.
    exc.jupyterhub_message = message
    return exc


class OffloadSpawner(KubeSpawner):
    """A KubeSpawner that offers each user what their groups allow and can
    place the server (or only its Dask clusters) on interLink virtual nodes."""

    offload_targets = Dict(
        help="""
        Where servers may run, by slug. Each target has a ``display_name``, a
        ``backend`` (kubernetes | slurm | htcondor | docker |
        interlink-kubernetes | generic), the interLink virtual ``node`` for
        non-kubernetes backends, ``offload`` ("session": the server runs there;
        "dask": only Dask clusters do), ``allowed_groups``, ``limits``
        ({cores, memory, accelerators}), ``start_timeout``, ``http_timeout``,
        ``hub_api_url`` and typed backend settings (``slurm``, ``htcondor``,
        ``docker``, ``kubernetes_plugin``). See docs/configuration.md.
        """,
    ).tag(config=True)

    group_limits = Dict(
        help="""
        Ceilings per group: {group: {cores, memory, accelerators}}. A user's
        ceiling is, field by field, the most generous among their groups
        (else ``default_limits``). Naming an accelerator here reserves it to
        the groups that name it.
        """,
    ).tag(config=True)

    default_limits = Dict(
        default_value=None,
        allow_none=True,
        help="""
        The ceiling for a field no group of the user sets: {cores, memory,
        accelerators}. When it lists ``accelerators``, accelerators it does
        not list are not offered to such users. Default: no ceiling.
        """,
    ).tag(config=True)

    offload_template_paths = List(
        Unicode(),
        help="""
        Directories searched first for the spawn form template (``form.html``),
        so an admin can override the form shipped with offload_spawner. The
        template is rendered with autoescaping and receives only the user's menu.
        """,
    ).tag(config=True)

    _plan: PodPlan | None = None
    _dask: DaskServerConfig | None = None
    _form_error: SelectionError | None = None
    _form_posted: dict | None = None

    # --- the one path: config -> catalog -> menu -> selection -> plan ---------

    async def get_catalog(self) -> Catalog:
        """The validated catalog (a callable profile_list is evaluated here)."""
        profile_list = self.profile_list
        if callable(profile_list):
            profile_list = await maybe_future(profile_list(self))
        return cached_catalog(profile_list, self.offload_targets, self.group_limits, self.default_limits)

    def user_groups(self) -> list[str]:
        return sorted(group.name for group in getattr(self.user, "groups", None) or [])

    async def get_menu(self) -> Menu:
        return build_menu(await self.get_catalog(), self.user_groups())

    async def plan_for(self, user_options: dict | None) -> tuple[Selection, PodPlan]:
        """Validate user_options for this user; raise SpawnException (HTTP 400) if refused."""
        catalog = await self.get_catalog()
        try:
            selection = select(build_menu(catalog, self.user_groups()), user_options)
        except SelectionError as e:
            raise refusal(e.message) from None
        return selection, build_plan(catalog, selection)

    def _uses_catalog(self) -> bool:
        return bool(self.profile_list) or bool(self.offload_targets)

    # --- JupyterHub hooks -------------------------------------------------------

    @default("options_form")
    def _options_form_default(self):
        if not self._uses_catalog():
            return ""
        return OffloadSpawner._render_options_form_for

    @staticmethod
    async def _render_options_form_for(spawner: OffloadSpawner) -> str:
        error, posted = spawner._form_error, spawner._form_posted
        spawner._form_error = spawner._form_posted = None
        menu = await spawner.get_menu()
        return render_form(
            menu,
            user_options=posted if error else spawner.user_options,
            error=error,
            template_paths=spawner.offload_template_paths,
        )

    @default("options_from_form")
    def _options_from_form_default(self):
        return self._offload_options_from_form

    async def _offload_options_from_form(self, formdata: dict) -> dict:
        """Form data -> user_options, refused here already so that the form
        comes back with the message next to the field and the choices kept."""
        try:
            options = user_options_from_form(formdata)
            if self._uses_catalog():
                # Store the canonical form (typed numbers, defaults filled in).
                options = select(await self.get_menu(), options).to_user_options()
        except SelectionError as e:
            self._form_error = e
            self._form_posted = _posted_for_refill(formdata)
            raise refusal(e.message) from None
        return options

    @default("apply_user_options")
    def _apply_user_options_default(self):
        return OffloadSpawner._check_user_options

    @staticmethod
    async def _check_user_options(spawner: OffloadSpawner, user_options: dict) -> None:
        """JupyterHub 5.3+ hook: refuse a bad selection before anything is created."""
        if not spawner._uses_catalog():
            if user_options:
                raise refusal("This hub offers no server options.")
            return
        _, plan = await spawner.plan_for(user_options)
        # JupyterHub reads start_timeout before calling start().
        if plan.start_timeout:
            spawner.start_timeout = plan.start_timeout
        if plan.http_timeout:
            spawner.http_timeout = plan.http_timeout

    async def load_user_options(self):
        """Called by KubeSpawner at the start of ``_start``: apply the plan."""
        if not self._uses_catalog():
            self._plan = None
            return
        _, plan = await self.plan_for(self.user_options)
        for override in plan.overrides:
            await self._apply_overrides_async(override)
        for name, value in plan_traits(plan).items():
            setattr(self, name, value)
        self._plan = plan
        self._dask = await self._dask_config_for(plan)

    async def _apply_overrides_async(self, override: dict) -> None:
        """KubeSpawner's override semantics, but callables' results are awaited."""
        resolved = {}
        for key, value in override.items():
            if callable(value):
                value = value(self)
                if inspect.isawaitable(value):
                    value = await value
            resolved[key] = value
        self._apply_overrides(resolved)

    async def get_pod_manifest(self):
        pod = await super().get_pod_manifest()
        if self._plan is not None:
            apply_plan_to_pod(pod, self._plan)
            self._mount_server_files(pod, await self.server_files())
        return pod

    def get_env(self):
        env = super().get_env()
        plan = self._plan
        if plan is not None:
            env.update(plan.env)
            if self._dask is not None:
                env.update(self._dask.env)
            if plan.hub_api_url:
                # A remote server reaches the hub at the target's own address.
                env["JUPYTERHUB_API_URL"] = plan.hub_api_url
                env["JUPYTERHUB_ACTIVITY_URL"] = url_path_join(
                    plan.hub_api_url, "users", url_escape_path(self.user.name), "activity"
                )
        return env

    # --- Dask offloading (issue 8) ---------------------------------------------

    async def _dask_config_for(self, plan: PodPlan) -> DaskServerConfig | None:
        """The Dask files/env for this server's target (None: no Dask settings in force).

        Called after the plan's overrides are applied, so ``self.image`` is the
        server's own image (the Dask pods' default)."""
        if plan.target is None:
            return None
        catalog = await self.get_catalog()
        target = catalog.offload_targets[plan.target]
        if target.dask_settings is None:
            return None
        return dask_config(
            target_slug=plan.target,
            target=target,
            ceiling=target_ceiling(user_ceiling(catalog, self.user_groups()), target),
            image=self.image,
            namespace=self.namespace,
            pod_name=self.pod_name,
            user_name=self.user.name,
            # Dask pods on a virtual node reach the hub at the target's address.
            hub_api_url=target.hub_api_url or self.hub.api_url,
        )

    async def server_files(self) -> dict[str, str]:
        """Non-secret files this server receives (absolute path -> text), delivered
        through the per-server Secret: its Dask configuration, if any.

        Known once ``load_user_options`` has run (KubeSpawner calls it first in
        ``_start``); before that there is no plan and no file."""
        if self._plan is None:
            return {}
        if self._dask is None:
            self._dask = await self._dask_config_for(self._plan)
        return dict(self._dask.files) if self._dask is not None else {}

    def _mount_server_files(self, pod, files: dict[str, str]) -> None:
        """Mount ``files`` from the per-server Secret into the server container."""
        if not files:
            return
        volumes, mounts = file_volumes(secret_name(self.pod_name), files)
        pod.spec.volumes = [*(pod.spec.volumes or []), *(get_k8s_model(V1Volume, v) for v in volumes)]
        container = pod.spec.containers[0]
        container.volume_mounts = [
            *(container.volume_mounts or []),
            *(get_k8s_model(V1VolumeMount, m) for m in mounts),
        ]


def _posted_for_refill(formdata: dict) -> dict:
    """What the user posted, as user_options, to refill the form after a refusal."""
    values = {k: v[0] for k, v in formdata.items() if isinstance(v, list) and len(v) == 1 and isinstance(v[0], str)}
    profile = values.get("profile", "")
    out = {"profile": profile} if profile else {}
    prefix = f"profile-option-{profile}--"
    for key, value in values.items():
        if profile and key.startswith(prefix):
            out[key[len(prefix):]] = value
    return out


def check_catalog(config_values: dict) -> Catalog:
    """Validate the catalog traits as resolved from a config (used at hub start and by the CLI)."""
    profile_list = config_values.get("profile_list")
    if callable(profile_list):
        profile_list = []
    return build_catalog(
        profile_list,
        config_values.get("offload_targets"),
        config_values.get("group_limits"),
        config_values.get("default_limits"),
    )


__all__ = ["CatalogError", "OffloadSpawner", "check_catalog"]

