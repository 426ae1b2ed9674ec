"""``OffloadSpawner``: KubeSpawner wired to the offload_spawner core.

This module only wires: config traits -> :func:`build_catalog` ->
:func:`build_menu` -> :func:`select` -> :func:`build_plan` -> KubeSpawner
traits and pod manifest.  The logic lives in those modules.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
from collections import OrderedDict
from html import escape as html_escape
from typing import Any

from jupyterhub.spawner import SpawnException
from jupyterhub.utils import maybe_future, url_escape_path, url_path_join
from kubespawner import KubeSpawner
from oauthenticator.oauth2 import OAuthenticator
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
from .dask_config import DaskServerConfig, dask_config
from .forms import render_form, user_options_from_form
from .lifecycle import describe, remote_failure
from .limits import target_ceiling, user_ceiling
from .manifest import apply_plan_to_pod, plan_traits
from .menu import Menu, build_menu
from .plan import PodPlan, build_plan
from .refresh import LoginExpired, ensure_fresh, min_lifetime_for
from .pod_shape import shape_pod
from .reachability import RESERVED_TUNNEL_PORT, port_problems
from .selection import Selection, SelectionError, select
from .token_delivery import TokenDeliveryMixin

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


def login_expired_refusal(logout_url: str, exc: LoginExpired) -> SpawnException:
    """A spawn refused because the user must log in again: HTTP 403 on the REST
    API, the message with a log-out/log-in link on the spawn page."""
    refused = SpawnException(
        f"{exc.message} Log out and log in again: {logout_url}",
        reason="login_expired",
        status_code=403,
        message_html=f'{html_escape(exc.message)} <a href="{html_escape(logout_url)}">Log out and log in again</a>.',
    )
    refused.jupyterhub_message = refused.message_html
    return refused


class OffloadSpawner(TokenDeliveryMixin, KubeSpawner):
    """A KubeSpawner that offers each user what their groups allow and can
    place the server (or only its Dask clusters) on interLink virtual nodes.

    Tokens reach the server only through its per-server Secret
    (:class:`~offload_spawner.token_delivery.TokenDeliveryMixin`: ``fresh_auth_state``,
    ``server_files``, Secret creation, rotation in ``poll``)."""

    offload_targets = Dict(
        help="""
        Where servers may run, by slug. Each target has a ``display_name``, a
        ``backend`` (kubernetes | slurm | htcondor | docker |
        interlink-kubernetes | generic), the interLink virtual ``node`` for
        non-kubernetes backends, ``offload`` ("session": the server runs there;
        "dask": only Dask clusters do), ``allowed_groups``, ``limits``
        ({cores, memory, accelerators}), ``start_timeout``, ``http_timeout``,
        ``hub_api_url``, ``network`` (wstunnel | mesh | none), ``pod_shape``
        (how a session pod is reshaped for its virtual node) and typed backend
        settings (``slurm``, ``htcondor``, ``docker``, ``kubernetes_plugin``).
        See docs/configuration.md.
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
    #: the configured start/http timeouts, before any target's own replaced them
    _base_timeouts: tuple[float, float] | None = None
    #: set once this start's pod create request succeeded (see _watch_remote_failure)
    _offload_pod_created = False
    #: when this start's pod was first seen bound to its node (monotonic clock),
    #: kept across page reloads so the time waited in the queue is the real one
    _offload_submitted_at: float | None = None
    _dask: DaskServerConfig | None = None
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
            await spawner._require_fresh_login(None)
            return
        selection, plan = await spawner.plan_for(user_options)
        await spawner._admit(selection, plan, reserve=False)
        # JupyterHub reads start_timeout before calling start().
        spawner._apply_plan_timeouts(plan)
        await spawner._require_fresh_login(plan)

    def _apply_plan_timeouts(self, plan: PodPlan) -> None:
        """The target's start/http timeouts, or the configured ones: a spawner object
        lives across spawns, and the previous target's timeout must not stick."""
        if self._base_timeouts is None:
            self._base_timeouts = (self.start_timeout, self.http_timeout)
        self.start_timeout = plan.start_timeout or self._base_timeouts[0]
        self.http_timeout = plan.http_timeout or self._base_timeouts[1]

    async def load_user_options(self):
        """Called by KubeSpawner at the start of ``_start``: apply the plan."""
        if not self._uses_catalog():
            self._plan = None
            return
        selection, plan = await self.plan_for(self.user_options)
        self._apply_plan_timeouts(plan)
        for override in plan.overrides:
            await self._apply_overrides_async(override)
        for name, value in plan_traits(plan).items():
            setattr(self, name, value)
        if plan.offload == "session" and self.port == RESERVED_TUNNEL_PORT:
            message = (
                f"This hub is misconfigured: the server on {plan.target_display_name} would listen on port "
                f"{RESERVED_TUNNEL_PORT}, which interLink reserves for its tunnel. Please tell the hub's admins."
            )
            exc = SpawnException(message, reason="config", status_code=500)
            exc.jupyterhub_message = message
            raise exc
        self._plan = plan
        self._dask = await self._dask_config_for(plan)
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
            if self._plan.pod_shape is not None:
                shape_pod(pod, self._plan.pod_shape, self._plan.backend or "")
        return pod

    # --- offloaded sessions: progress and fast failure (lifecycle.py) ------------

    async def _session_plan(self) -> PodPlan | None:
        """The plan of the spawn under way if its server runs on a virtual node."""
        plan = self._plan
        if plan is None and self._uses_catalog():
            try:
                _, plan = await self.plan_for(self.user_options)
            except SpawnException:
                return None
        return plan if plan is not None and plan.offload == "session" else None

    async def progress(self):
        """For a session on a virtual node: what the remote site is doing (submitted,
        queued with the job id and time waited, held with the reason, starting,
        running). Other pods: KubeSpawner's event messages."""
        plan = await self._session_plan()
        if plan is None:
            async for event in super().progress():
                yield event
            return
        await self._start_watching_pods()
        if self.events_enabled:
            await self._start_watching_events()
        target = plan.target_display_name or plan.target or "the remote site"
        start_future = self._start_future
        last_phase = last_message = None
        last_yield = 0.0
        while True:
            if start_future is None:
                start_future = self._start_future
            finished = start_future is not None and start_future.done()
            pod = self.pod_reflector.pods.get(f"{self.namespace}/{self.pod_name}")
            now = time.monotonic()
            self._note_submitted(pod, now)
            status = describe(target, pod, self.events, now, self._offload_submitted_at)
            # A new phase at once; the same phase (a growing wait time) every few seconds.
            if status.phase != last_phase or (status.message != last_message and now - last_yield >= 5):
                last_phase, last_message, last_yield = status.phase, status.message, now
                yield {"progress": status.progress, "message": status.message}
            if finished:
                break
            await asyncio.sleep(0.5)

    def _note_submitted(self, pod: dict | None, now: float) -> None:
        if self._offload_submitted_at is None and pod and (pod.get("spec") or {}).get("nodeName"):
            self._offload_submitted_at = now

    async def _make_create_pod_request(self, pod, request_timeout):
        created = await super()._make_create_pod_request(pod, request_timeout)
        if created:
            self._offload_pod_created = True
        return created

    async def _start(self):
        """KubeSpawner's start, raced against a watcher that ends it as soon as the
        remote site reports a failure (instead of waiting for start_timeout)."""
        self._offload_pod_created = False
        self._offload_submitted_at = None
        self._plan = None  # load_user_options sets this start's plan; never watch with the last one
        starting = asyncio.ensure_future(super()._start())
        watching = asyncio.ensure_future(self._watch_remote_failure())
        try:
            await asyncio.wait({starting, watching}, return_when=asyncio.FIRST_COMPLETED)
            if not starting.done() and watching.result() is not None:
                starting.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await starting
                raise watching.result()
            return await starting
        finally:
            for task in (starting, watching):
                if not task.done():
                    task.cancel()

    async def _watch_remote_failure(self) -> SpawnException | None:
        """Return the spawn's failure once this start's pod failed on its virtual
        node, or (just before JupyterHub's own start_timeout fires) a timeout that
        says what the site last reported ("Held: ..."); None at once if the
        server does not run on a virtual node."""
        began = time.monotonic()
        while self._plan is None and self._uses_catalog():
            await asyncio.sleep(0.1)  # load_user_options has not run yet
        plan = self._plan
        if plan is None or plan.offload != "session":
            return None
        target = plan.target_display_name or plan.target or "the remote site"
        # JupyterHub started its start_timeout clock just before start(): end a little earlier.
        deadline = began + self.start_timeout - min(1.0, self.start_timeout * 0.1)
        while True:
            await asyncio.sleep(0.2)
            if not self._offload_pod_created or self.pod_reflector is None:
                if time.monotonic() < deadline:
                    continue
            pod = self.pod_reflector.pods.get(f"{self.namespace}/{self.pod_name}") if self.pod_reflector else None
            if self._offload_pod_created:
                self._note_submitted(pod, time.monotonic())
            failure = remote_failure(pod)
            if failure is not None:
                message = f"{target} could not run your server: {failure}"
                exc = SpawnException(message, reason="remote_failure", status_code=503)
                exc.jupyterhub_message = message
                self.log.warning("Spawn of %s on %s failed remotely: %s", self._log_name, plan.target, failure)
                return exc
            if time.monotonic() >= deadline:
                last = describe(target, pod, self.events, time.monotonic(), self._offload_submitted_at).message
                message = (
                    f"{target} did not start your server within {self.start_timeout:g} seconds. "
                    f"Last status: {last}"
                )
                exc = SpawnException(message, reason="timeout", status_code=500)
                exc.jupyterhub_message = message
                self.log.warning("Spawn of %s on %s timed out: %s", self._log_name, plan.target, last)
                return exc

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

    # --- fresh tokens (issue 5, part A) -------------------------------------------
    # Before a spawn the user's access token must outlive the target's start (a
    # job may wait in a batch queue); the running server's token rotation calls
    # fresh_auth_state too.

    async def fresh_auth_state(self, min_lifetime: float | None = None) -> dict | None:
        """The user's auth_state, its access token refreshed when it would live
        less than ``min_lifetime`` seconds (default: this server's target's
        minimum, see refresh.min_lifetime_for). Raises LoginExpired when it
        cannot be refreshed; None when the authenticator keeps no auth_state."""
        if min_lifetime is None:
            min_lifetime = min_lifetime_for(self._plan)
        authenticator = getattr(self, "authenticator", None)
        if isinstance(authenticator, OAuthenticator) and authenticator.enable_auth_state:
            return await ensure_fresh(authenticator, self.user, min_lifetime)
        get_auth_state = getattr(self.user, "get_auth_state", None)  # the CLI's user stand-in has none
        return await get_auth_state() if get_auth_state is not None else None

    async def _require_fresh_login(self, plan: PodPlan | None) -> None:
        """Refuse the spawn (before anything is created) when the login cannot be renewed."""
        try:
            await self.fresh_auth_state(min_lifetime_for(plan))
        except LoginExpired as e:
            raise login_expired_refusal(url_path_join(self.hub.base_url, "logout"), e) from None

    # --- end fresh tokens -----------------------------------------------------------

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
    catalog = build_catalog(
        profile_list,
        config_values.get("offload_targets"),
        config_values.get("group_limits"),
        config_values.get("default_limits"),
    )
    problems = port_problems(catalog, config_values.get("port"))
    if problems:
        raise CatalogError(problems)
    return catalog


__all__ = ["CatalogError", "OffloadSpawner", "check_catalog"]

