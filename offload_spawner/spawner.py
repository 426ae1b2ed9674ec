"""``OffloadSpawner``: KubeSpawner wired to the offload_spawner core.

This module only wires: config traits -> :func:`build_catalog` ->
:func:`build_menu` -> :func:`select` -> :func:`build_plan` -> KubeSpawner
traits and pod manifest.  The logic lives in those modules.
"""

from __future__ import annotations

import asyncio
import inspect
from collections import OrderedDict
from typing import Any

from jupyterhub.spawner import SpawnException
from jupyterhub.utils import maybe_future, url_escape_path, url_path_join
from kubespawner import KubeSpawner
from traitlets import Bool, Dict, Float, List, Unicode, default

from .availability import (
    AcceleratorOffered,
    ClusterView,
    Demand,
    TargetAvailability,
    admission_refusal,
    menu_availability,
    target_availability,
)
from .catalog import Catalog, CatalogError, build_catalog, catalog_fingerprint
from .forms import render_form, user_options_from_form
from .manifest import apply_plan_to_pod, plan_traits
from .menu import Menu, build_menu
from .plan import PodPlan, build_plan
from .selection import Selection, SelectionError, select

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

    offload_availability = Bool(
        True,
        help="""
        Watch the targets' virtual nodes and the pods on them, show per target
        up/down, free cores and memory and accelerators by model in the form,
        and refuse a spawn that does not fit what is free. Needs the opt-in
        ClusterRole (helm-values/rbac-availability.yaml); without it,
        availability is "unknown" and spawns are not checked.
        """,
    ).tag(config=True)

    offload_availability_wait = Float(
        3.0,
        help="""
        Seconds the first form render (or spawn) after hub start waits for the
        node watcher's first load; later renders read memory only.
        """,
    ).tag(config=True)

    _plan: PodPlan | None = None
    _form_error: SelectionError | None = None
    _form_posted: dict | None = None
    #: a fixed cluster state (the CLI's --cluster FILE) instead of the watcher
    _static_view: ClusterView | None = None
    _reservation_key: str | None = None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self._uses_catalog() and self.offload_availability:
            from .startup import install_handlers_on_running_hub

            install_handlers_on_running_hub()

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

    # --- availability and admission (offload_spawner.availability, .watcher) ---

    def _watcher(self, catalog: Catalog):
        """The hub's node watcher for the targets' virtual nodes (created, not awaited)."""
        from .watcher import AvailabilityWatcher

        nodes = sorted({t.node for t in catalog.offload_targets.values() if t.is_virtual and t.node})
        if not nodes:
            return None
        # Kept with KubeSpawner's own reflectors: one per hub process and namespace,
        # stopped by KubeSpawner._stop_all_reflectors like them.
        key = ("offload-availability", self.namespace)
        watcher = KubeSpawner.reflectors.get(key)
        stale = watcher is not None and (
            set(watcher.node_names) != set(nodes) or watcher.loop is not asyncio.get_event_loop()
        )
        if watcher is None or stale:
            if stale and watcher.loop is asyncio.get_event_loop():
                asyncio.ensure_future(watcher.stop())
            watcher = AvailabilityWatcher(nodes, self.namespace, self.log)
            KubeSpawner.reflectors[key] = watcher
        return watcher

    async def cluster_view(self, catalog: Catalog | None = None) -> ClusterView:
        """What is known of the targets' nodes: from memory once the watcher runs."""
        if self._static_view is not None:
            return self._static_view
        if not self.offload_availability:
            return ClusterView(known=False, note="not tracked on this hub")
        watcher = self._watcher(catalog or await self.get_catalog())
        if watcher is None:
            return ClusterView(known=False, note="no virtual-node targets")
        await watcher.ready(self.offload_availability_wait)
        return watcher.view()

    def _reservations(self) -> dict[str, Demand]:
        watcher = KubeSpawner.reflectors.get(("offload-availability", self.namespace))
        return watcher.reservations if watcher is not None else {}

    async def get_availability(self, menu: Menu | None = None) -> dict[str, TargetAvailability]:
        """Per target in the user's menu: up/down, free resources, accelerators by model."""
        catalog = await self.get_catalog()
        menu = menu or build_menu(catalog, self.user_groups())
        view = await self.cluster_view(catalog)
        return menu_availability(menu, catalog, view, self._reservations().values())

    async def availability_json(self) -> dict:
        """What the availability endpoint returns: only this user's targets and models."""
        if not self._uses_catalog():
            return {"targets": {}}
        return {"targets": {slug: a.to_json() for slug, a in (await self.get_availability()).items()}}

    async def _admit(self, selection: Selection, plan: PodPlan, reserve: bool) -> None:
        """Refuse (HTTP 400) a session that does not fit what is free on its node now;
        with ``reserve``, hold what it takes until its pod is bound or the spawn ends."""
        if plan.offload not in ("session", "dask") or not selection.target:
            return
        catalog = await self.get_catalog()
        target = catalog.offload_targets[selection.target]
        view = await self.cluster_view(catalog)
        if not view.known:
            return  # unknown availability never blocks a spawn
        offers = []
        menu_target = build_menu(catalog, self.user_groups()).profile(selection.profile).target(selection.target)
        accelerator = menu_target.accelerator(selection.accelerator) if selection.accelerator else None
        if accelerator is not None:
            offers.append(AcceleratorOffered(
                accelerator.resource, accelerator.display_name, accelerator.model_label, accelerator.models))
        key = f"{self.namespace}/{self.pod_name}"
        # From here to the reservation there is no await: the check and the
        # reservation are one step for the hub's single event loop, so two
        # concurrent spawns cannot both take the last GPU.
        reservations = self._reservations()
        others = [d for k, d in reservations.items() if k != key]
        available = target_availability(selection.target, target, offers, view, others)
        if plan.offload == "dask":
            # The session runs here; only its Dask clusters need the site to be up.
            if available.status == "down":
                raise refusal(admission_refusal(available, None, None) or "")
            return
        message = admission_refusal(
            available, plan.cpu_guarantee, plan.mem_guarantee,
            selection.accelerator, selection.accelerator_model, selection.accelerator_count,
        )
        if message:
            raise refusal(message)
        if reserve and self._static_view is None:
            reservations[key] = Demand(
                node=target.node or "", cores=plan.cpu_guarantee or 0.0, memory=plan.mem_guarantee or 0,
                extended={k: float(v) for k, v in plan.extra_resource_limits.items()}, pod=key,
            )
            self._reservation_key = key

    def _release_reservation(self) -> None:
        if self._reservation_key is not None:
            self._reservations().pop(self._reservation_key, None)
            self._reservation_key = None

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
            availability=await spawner.get_availability(menu),
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
        selection, plan = await spawner.plan_for(user_options)
        await spawner._admit(selection, plan, reserve=False)
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
        selection, plan = await self.plan_for(self.user_options)
        for override in plan.overrides:
            await self._apply_overrides_async(override)
        for name, value in plan_traits(plan).items():
            setattr(self, name, value)
        self._plan = plan
        # Checked again and reserved here, before KubeSpawner creates anything.
        await self._admit(selection, plan, reserve=True)

    def start(self):
        future = super().start()
        # A failed spawn gives its reservation back; a started one keeps it until
        # stop (it no longer counts once the node's pods include the pod).
        future.add_done_callback(lambda f: (f.cancelled() or f.exception()) and self._release_reservation())
        return future

    async def stop(self, now=False):
        try:
            return await super().stop(now=now)
        finally:
            self._release_reservation()

    async def poll(self):
        status = await super().poll()
        if status is not None:
            self._release_reservation()
        return status

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
        return pod

    def get_env(self):
        env = super().get_env()
        plan = self._plan
        if plan is not None:
            env.update(plan.env)
            if plan.hub_api_url:
                # A remote server reaches the hub at the target's own address.
                env["JUPYTERHUB_API_URL"] = plan.hub_api_url
                env["JUPYTERHUB_ACTIVITY_URL"] = url_path_join(
                    plan.hub_api_url, "users", url_escape_path(self.user.name), "activity"
                )
        return env


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

