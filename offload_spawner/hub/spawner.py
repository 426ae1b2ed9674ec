"""``OffloadSpawner``: KubeSpawner wired to the offload_spawner core.

This module only wires: config traits -> :func:`build_catalog` ->
:func:`build_menu` -> :func:`select` -> :func:`build_plan` -> KubeSpawner
traits and pod manifest.  The logic lives in those modules, and the
spawner's own I/O in its mixins (every override of a KubeSpawner method calls
``super()``, so all of them run, in this order):

* :class:`~offload_spawner.availability.admission.AdmissionMixin`: availability for the form
  and the endpoint, admission and reservations (``start``/``stop``/``poll``);
* :class:`~offload_spawner.remote.remote_session.RemoteSessionMixin`: progress and fast
  failure of sessions on virtual nodes (``progress``, ``_start``);
* :class:`~offload_spawner.identity.fresh_login.FreshLoginMixin`: refresh-aware
  ``fresh_auth_state`` and the spawn's login check;
* :class:`~offload_spawner.identity.job_refresh_spawner.JobRefreshMixin`: the token
  refresher in the job, where the target opts in (its files, ``get_pod_manifest``);
* :class:`~offload_spawner.dask.dask_files.DaskFilesMixin`: the server's Dask files
  (``server_files``); OffloadSpawner answers TokenDeliveryMixin's two hooks
  with FreshLoginMixin's ``fresh_auth_state`` and its own ``server_files``
  (the Dask files and the refresher's);
* :class:`~offload_spawner.identity.token_delivery.TokenDeliveryMixin`: the per-server
  token Secret (``get_pod_manifest``, ``_make_create_pod_request``, ``poll``,
  ``stop``);
* :class:`~offload_spawner.dask.dask_placement_secret.DaskPlacementMixin`: the
  Dask placement Secret, created right after the pod;
* :class:`~offload_spawner.hub.api_outage.ApiOutageMixin`: the pod create and delete
  are tried again while the Kubernetes API cannot be reached, last before KubeSpawner.

What a spawn does, step by step and in which part, is written out in the
class, above :meth:`OffloadSpawner.load_user_options`, which prepares each
spawn into one :class:`~offload_spawner.hub.prepared_spawn.PreparedSpawn`.
"""

from __future__ import annotations

import inspect
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from jupyterhub.utils import maybe_future, url_escape_path, url_path_join
from kubespawner import KubeSpawner
from kubespawner.slugs import safe_slug
from traitlets import Bool, Dict, Float, List, Unicode, Union, default

from ..availability.admission import AdmissionMixin
from ..availability.auto_target import DEFAULT_LABEL, choose_target, is_auto
from ..backends import ADAPTERS, backend_choice_help, settings_adapters
from ..dask.dask_config import DaskServerConfig
from ..dask.dask_files import DaskFilesMixin
from ..dask.dask_hub_token import DaskHubTokenMixin
from ..dask.dask_placement_secret import DaskPlacementMixin
from ..identity.fresh_login import FreshLoginMixin, login_expired_refusal
from ..identity.job_refresh_spawner import JobRefreshMixin
from ..identity.site_uid import SiteUidError, site_uid
from ..identity.token_delivery import TokenDeliveryMixin
from ..metrics import SpawnMetricsMixin, note_auto_choice, observe_targets
from ..pipeline.catalog import Catalog, CatalogError, build_catalog, catalog_fingerprint
from ..pipeline.menu import Menu, build_menu
from ..pipeline.plan import PodPlan, build_plan
from ..pipeline.pod_shape import shape_pod
from ..pipeline.reachability import RESERVED_TUNNEL_PORT
from ..pipeline.selection import Selection, SelectionError, select
from ..remote.remote_session import RemoteSessionMixin
from ..spawn_errors import refusal, spawn_error
from .api_outage import ApiOutageMixin
from .auto_spawn import AutoTargetMixin
from .catalog_check import check_catalog
from .config_checks import override_problems
from .forms import options_from_link, render_form, user_options_from_form
from .manifest import STORAGE_TRAITS, apply_plan_to_pod, apply_storage_to_pod, plan_traits
from .prepared_spawn import PreparedSpawn

if TYPE_CHECKING:
    from kubernetes_asyncio.client.models import V1Pod

#: what a user sees when the hub's own configuration (a callable profile_list) is
#: invalid: the details go to the hub log, for the admins
CONFIG_ERROR_MESSAGE = (
    "The server options of this hub cannot be loaded because of an error in the hub's configuration. "
    "Please tell the hub's admins."
)
#: shown on the form a spawn link opens
LINK_MESSAGE = "A link cannot start a server. Check the choices below and press Start."
EMPTY_MENU = Menu(profiles=(), default_profile=None, groups=frozenset())

_CATALOG_CACHE: OrderedDict[str, Catalog] = OrderedDict()
_CATALOG_CACHE_SIZE = 16


def cached_catalog(
    profile_list: Any,
    offload_targets: Any,
    group_limits: Any,
    default_limits: Any,
    storage: Any = None,
    reservations: Any = None,
) -> Catalog:
    """Build (or reuse) the catalog for this configuration data."""
    key = catalog_fingerprint(profile_list, offload_targets, group_limits, default_limits, storage, reservations)
    catalog = _CATALOG_CACHE.get(key)
    if catalog is None:
        catalog = build_catalog(profile_list, offload_targets, group_limits, default_limits, storage, reservations)
        observe_targets(catalog.offload_targets)  # the metrics' target label values
        _CATALOG_CACHE[key] = catalog
        while len(_CATALOG_CACHE) > _CATALOG_CACHE_SIZE:
            _CATALOG_CACHE.popitem(last=False)
    else:
        _CATALOG_CACHE.move_to_end(key)
    return catalog


class OffloadSpawner(
    SpawnMetricsMixin,
    AdmissionMixin,
    AutoTargetMixin,
    RemoteSessionMixin,
    FreshLoginMixin,
    JobRefreshMixin,
    DaskFilesMixin,
    DaskHubTokenMixin,
    TokenDeliveryMixin,
    DaskPlacementMixin,
    ApiOutageMixin,
    KubeSpawner,
):
    """A KubeSpawner that offers each user what their groups allow and can
    place the server (or only its Dask clusters) on interLink virtual nodes.

    The config traits live here (also those the mixins read: traitlets sets
    up only traits declared on a HasTraits class); what each mixin does is
    listed in the module doc. Tokens reach the server only through its
    per-server Secret (:class:`~offload_spawner.identity.token_delivery.TokenDeliveryMixin`)."""

    offload_targets = Dict(
        help=f"""
        Where servers may run, by slug. Each target has a ``display_name``, a
        ``backend`` ({" | ".join(ADAPTERS)}), the interLink virtual ``node`` for
        non-kubernetes backends, ``offload`` ("session": the server runs there;
        "dask": only Dask clusters do), ``allowed_groups``, ``limits``
        ({{cores, memory, accelerators}}), ``start_timeout``, ``http_timeout``,
        ``hub_api_url``, ``network`` (wstunnel | mesh | none), ``pod_shape``
        (how a session pod is reshaped for its virtual node) and typed backend
        settings ({", ".join(f"``{a.settings_field}``" for a in settings_adapters())}).
        The backends: {backend_choice_help()}.
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

    storage = Dict(
        help="""
        Named volumes, by slug: where users find their files on each target.
        Each has a ``display_name``, a ``mount_path``, ``read_only``,
        ``allowed_groups``, ``offered`` (a checkbox on the form instead of
        always mounted), ``required`` (refuse a target that cannot mount it),
        a ``cluster`` source for servers in this cluster (``kind``: pvc — a
        claim per user, created once — | claim | nfs | csi) and ``targets``:
        per offload target, a site ``path`` to bind (SLURM, HTCondor) or a
        remote ``claim`` (interlink-kubernetes). ``{username}`` in a path or
        claim is the user's safe slug. See docs/admin-guide.md#storage.
        """,
    ).tag(config=True)

    reservations = List(
        Dict(),
        help="""
        Nodes reserved to groups: ``[{key, value, effect, groups, node_label,
        weight}]``. Members' servers tolerate the taint ``key=value:effect``
        and prefer nodes labelled ``node_label`` (default ``key=value``);
        other users' servers never tolerate it, and availability shows such
        a virtual node as reserved to them.
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

    offload_auto_target = Bool(
        False,
        help="""
        Offer "Any available" (``target: auto`` in user_options): the hub picks,
        at spawn, the first target of the user's profile (among those the user
        may use, ranked by ``offload_auto_target_ranking``) where the selection's
        cores, memory and accelerators fit what is free now, and says which on
        the spawn page. A target whose availability is unknown counts as fitting.
        """,
    ).tag(config=True)

    offload_auto_target_label = Unicode(
        DEFAULT_LABEL,
        help="""The name of the automatic choice in the form and in its messages.""",
    ).tag(config=True)

    offload_auto_target_ranking = Union(
        [List(Unicode()), Dict()],
        default_value=None,
        allow_none=True,
        help="""
        How "Any available" ranks targets: a list of target slugs (first is
        preferred) or a mapping {slug: weight} (higher is preferred). Targets
        not named come after, in the profile's own order. Default: the
        profile's order (that of ``offload_targets``).
        """,
    ).tag(config=True)

    # JupyterHub's Spawner traits (Integer), set per plan by _apply_plan_timeouts
    start_timeout: int
    http_timeout: int

    #: this spawn's preparation (see load_user_options); None before it, and
    #: when the hub's spawner uses no catalog
    _prepared: PreparedSpawn | None = None
    #: the configured start/http timeouts, before any target's own replaced them
    _base_timeouts: tuple[int, int] | None = None
    _base_storage_traits: dict[str, Any] | None = None
    _form_error: SelectionError | None = None
    _form_posted: dict[str, str] | None = None
    #: what a spawn link asked for: pre-fills the next form render
    _form_prefill: dict[str, str] | None = None
    #: (the catalog traits' values, the catalog built from them), see get_catalog
    _catalog_memo: tuple[tuple[Any, ...], Catalog] | None = None
    #: (catalog, (groups, repr of user_options), the plan_for answer), see plan_for
    _plan_memo: tuple[Catalog, tuple[tuple[str, ...], str], tuple[Selection, PodPlan]] | None = None

    # --- the one path: config -> catalog -> menu -> selection -> plan ---------

    async def get_catalog(self) -> Catalog:
        """The validated catalog (a callable profile_list is evaluated and checked here).

        A callable's result cannot be checked at hub start; it is checked at each
        call like a static list at start, and a failure is logged for the admins
        and raised as :class:`CatalogError` (see :func:`config_error_message`).
        """
        profile_list = self.profile_list
        if not callable(profile_list):
            return self._memo_catalog(profile_list)
        try:
            profile_list = await maybe_future(profile_list(self))
            catalog = self._memo_catalog(profile_list)
            problems = override_problems(catalog, type(self))
            if problems:
                raise CatalogError(problems)
        except CatalogError as e:
            self.log.error(
                "The callable profile_list gave an invalid configuration for %s:\n%s",
                self.user.name,
                "\n".join(f"  {p}" for p in e.problems),
            )
            raise
        except Exception as e:
            self.log.exception("The callable profile_list failed for %s", self.user.name)
            raise CatalogError([f"profile_list: the callable raised {type(e).__name__}"]) from None
        return catalog

    def _memo_catalog(self, profile_list: Any) -> Catalog:
        """The catalog of these traits' values. A spawn asks for it several times;
        while the traits hold the same objects, skip fingerprinting the whole
        configuration again (a trait set to a new value, or a callable's new
        list, is looked up anew)."""
        parts = (
            profile_list,
            self.offload_targets,
            self.group_limits,
            self.default_limits,
            self.storage,
            self.reservations,
        )
        memo = self._catalog_memo
        if memo is not None and all(a is b for a, b in zip(memo[0], parts, strict=True)):
            return memo[1]
        catalog = cached_catalog(*parts)
        self._catalog_memo = (parts, catalog)
        return catalog

    def username_slug(self) -> str:
        """The user's name as KubeSpawner's ``{username}`` gives it (the ``safe``
        scheme): what the user's storage paths and claims are filled with."""
        slug: str = safe_slug(self.user.name, max_length=48)
        return slug

    def user_groups(self) -> list[str]:
        return sorted(group.name for group in getattr(self.user, "groups", None) or [])

    async def get_menu(self) -> Menu:
        return build_menu(await self.get_catalog(), self.user_groups())

    async def selection_menu(self, user_options: Any, catalog: Catalog | None = None) -> Menu:
        """The menu that checking ``user_options`` needs: only the named profile's
        (building every profile of a large catalog for one selection is the cost
        of a spawn), else the whole menu, which also gives the refusal when the
        user may start nothing."""
        catalog = catalog or await self.get_catalog()
        slug = user_options.get("profile") if isinstance(user_options, Mapping) else None
        if isinstance(slug, str) and slug.strip():
            menu = build_menu(catalog, self.user_groups(), only_profile=slug.strip())
            if menu.profiles:
                return menu
        return build_menu(catalog, self.user_groups())

    async def plan_for(self, user_options: Mapping[str, Any] | None) -> tuple[Selection, PodPlan]:
        """Validate user_options for this user; raise SpawnException (HTTP 400) if refused."""
        try:
            catalog = await self.get_catalog()
        except CatalogError:
            raise spawn_error(CONFIG_ERROR_MESSAGE, "config", 503) from None
        # The hub checks a spawn's options (apply_user_options), then starts it
        # (load_user_options): the same answer twice, from the same catalog,
        # groups and options (Selection and PodPlan are frozen).
        key = (tuple(self.user_groups()), repr(user_options))
        memo = self._plan_memo
        if memo is not None and memo[0] is catalog and memo[1] == key:
            return memo[2]
        if is_auto(user_options):
            menu = build_menu(catalog, self.user_groups())
            choice = await self._choose_target(catalog, menu, user_options)
            picked = choice.chosen_plan()
            if picked is None:  # not reached: _choose_target refuses when no target fits
                raise refusal(choice.message(self.offload_auto_target_label), "no_target_fits")
            return picked
        try:
            selection = select(await self.selection_menu(user_options, catalog), user_options)
        except SelectionError as e:
            raise refusal(e.message) from None
        result = selection, build_plan(catalog, selection, self.user_groups(), self.username_slug())
        self._plan_memo = (catalog, key, result)
        return result

    def _uses_catalog(self) -> bool:
        return bool(self.profile_list) or bool(self.offload_targets)

    # --- JupyterHub hooks -------------------------------------------------------

    @default("options_form")
    def _options_form_default(self) -> str | Callable[[OffloadSpawner], Awaitable[str]]:
        if not self._uses_catalog():
            return ""
        return OffloadSpawner._render_options_form_for

    @staticmethod
    async def _render_options_form_for(spawner: OffloadSpawner) -> str:
        error, posted, prefill = spawner._form_error, spawner._form_posted, spawner._form_prefill
        spawner._form_error = spawner._form_posted = spawner._form_prefill = None
        try:
            menu = await spawner.get_menu()
        except CatalogError:
            return render_form(EMPTY_MENU, notice=CONFIG_ERROR_MESSAGE, template_paths=spawner.offload_template_paths)
        return render_form(
            menu,
            user_options=posted if error else (prefill or spawner.user_options),
            error=error,
            template_paths=spawner.offload_template_paths,
            availability=await spawner.get_availability(menu),
            auto_label=spawner.offload_auto_target_label if spawner.offload_auto_target else None,
        )

    @default("options_from_form")
    def _options_from_form_default(self) -> Callable[[Mapping[str, list[str]]], dict[str, Any]]:
        return self._offload_options_from_form

    def _offload_options_from_form(self, formdata: Mapping[str, list[str]]) -> dict[str, Any]:
        """Form data -> user_options: a plain function returning a dict, as
        KubeSpawner's is (callers may call it without awaiting). A malformed
        form is refused here; what the user may choose is checked in
        :meth:`run_options_from_form`, which JupyterHub awaits."""
        try:
            return user_options_from_form(formdata)
        except SelectionError as e:
            self._remember_refusal(e, formdata)
            raise refusal(e.message) from None

    async def run_options_from_form(self, form_data: Mapping[str, list[str]]) -> dict[str, Any]:
        """JupyterHub's form path: ``options_from_form``, then (with the
        default one) the selection checked against the user's menu and stored
        in its canonical form (typed numbers, defaults filled in).

        JupyterHub awaits this (``await maybe_future(spawner.run_options_from_form(...))``
        in jupyterhub/handlers/pages.py, SpawnHandler.post), so the catalog,
        which a callable ``profile_list`` makes async, is read here; refusing
        here brings the form back with the message next to the field and the
        user's choices kept. An admin's own ``options_from_form`` gets
        KubeSpawner's meaning: its result is used as it is and checked when
        the spawn starts (``apply_user_options``, ``load_user_options``)."""
        options: dict[str, Any] = await maybe_future(super().run_options_from_form(form_data))
        if not self._uses_catalog() or self.options_from_form != self._offload_options_from_form:
            return options
        try:
            if is_auto(options):
                # Kept as "auto": the target is chosen at spawn, afresh each start. Refused here
                # already when no target the user may use accepts these choices at all.
                label = self.offload_auto_target_label
                if not self.offload_auto_target:
                    raise SelectionError(f"{label!r} is not offered here.", "target")
                if choose_target(await self.get_catalog(), await self.get_menu(), options, {}).chosen is None:
                    message = f"No target you may use accepts these choices; {label!r} cannot start them."
                    raise SelectionError(message, "target")
                return options
            return select(await self.get_menu(), options).to_user_options()
        except SelectionError as e:
            self._remember_refusal(e, form_data)
            raise refusal(e.message) from None
        except CatalogError:
            raise spawn_error(CONFIG_ERROR_MESSAGE, "config", 503) from None

    def _remember_refusal(self, error: SelectionError, formdata: Mapping[str, Any]) -> None:
        """What the next form render shows: the message and the user's choices."""
        self._form_error = error
        self._form_posted = _posted_for_refill(formdata)

    def options_from_query(self, query_data: Mapping[str, list[Any]]) -> dict[str, Any]:
        """A spawn link never starts a server: its options pre-fill the form.

        JupyterHub starts a server from ``GET /hub/spawn/<user>?<options>``
        (jupyterhub/handlers/pages.py, SpawnHandler._get), which needs nothing
        but the victim's cookie: any site can make a browser follow a link, and
        the server would start with options the link's author chose, and with
        the user's tokens. Raising here makes JupyterHub render the form
        instead, with this message; starting then takes a POST of the form,
        which carries the hub's XSRF token.
        """
        if self._uses_catalog():
            self._form_prefill = options_from_link(query_data)
        raise spawn_error(LINK_MESSAGE, "link", 200)

    @default("apply_user_options")
    def _apply_user_options_default(self) -> Callable[[OffloadSpawner, dict[str, Any]], Awaitable[None]]:
        return OffloadSpawner._check_user_options

    @staticmethod
    async def _check_user_options(spawner: OffloadSpawner, user_options: dict[str, Any]) -> None:
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

    # --- the spawn, in order ------------------------------------------------------
    #
    # KubeSpawner's _start calls load_user_options first: it prepares this spawn
    # in five steps, before anything is created, into one PreparedSpawn
    # (self._prepared), which the parts read from then on:
    #   1. the options, checked against the user's menu -> selection, plan
    #      (target "auto": the first target that fits now, AutoTargetMixin);
    #   2. the plan onto KubeSpawner's traits (timeouts, overrides, storage);
    #   3. the user's UID at the site, when the target asks for one -> site_uid;
    #   4. the server's Dask files and env -> dask (DaskFilesMixin);
    #   5. admission: it fits what is free now, held until the pod is bound
    #      (AdmissionMixin).
    # Then KubeSpawner goes on, with these hooks:
    #   6. get_pod_manifest: the plan, the site UID and the storage onto
    #      KubeSpawner's pod (here), then the token Secret's env and volume
    #      references (TokenDeliveryMixin, with the tokens of fresh_auth_state
    #      and the files of server_files, answered below, and dask_hub_token);
    #   7. _make_create_pod_request: the pod, then its per-server Secret
    #      (TokenDeliveryMixin); the submission time (RemoteSessionMixin);
    #   8. _start waits for the server, raced against the remote site's failure
    #      (RemoteSessionMixin), with one failover for target "auto" (AutoTargetMixin);
    #      start/stop/poll release the reservation and count the spawn
    #      (AdmissionMixin, SpawnMetricsMixin).

    #: TokenDeliveryMixin asks these three hooks what the Secret delivers (its own
    #: defaults read the stored auth_state, issue no Dask token and deliver no file); answered by:
    fresh_auth_state = FreshLoginMixin.fresh_auth_state  # tokens, refreshed for the target's start
    dask_hub_token = DaskHubTokenMixin.dask_hub_token  # the Dask pods' hub token, with the target's scopes

    async def server_files(self) -> dict[str, str]:
        """The files of this server's Secret: its Dask configuration
        (DaskFilesMixin) and, where the target opts in, the job's token
        refresher (JobRefreshMixin)."""
        return {**await DaskFilesMixin.server_files(self), **self.job_refresher_files()}

    async def load_user_options(self) -> None:
        """Called by KubeSpawner at the start of ``_start``: prepare this spawn
        (steps 1-5 above) into :attr:`_prepared`."""
        self._prepared = None
        if not self._uses_catalog():
            return
        selection, plan = await self._checked_selection()  # 1
        await self._apply_plan_to_traits(plan)  # 2
        site_uid = await self._site_uid_for(plan)  # 3
        dask = await self._dask_config_for(plan)  # 4
        await self._admit(selection, plan, reserve=True)  # 5: checked again, and held
        self._prepared = PreparedSpawn(selection=selection, plan=plan, site_uid=site_uid, dask=dask)
        self._note_spawn_started(plan)

    async def _checked_selection(self) -> tuple[Selection, PodPlan]:
        """Step 1: this spawn's user_options checked (target "auto": the target chosen now)."""
        if not is_auto(self.user_options):
            return await self.plan_for(self.user_options)
        choice = await self._choose_target(await self.get_catalog(), await self.get_menu(), self.user_options)
        chosen = choice.chosen
        if chosen is None or chosen.selection is None or chosen.plan is None:  # pragma: no cover
            raise AssertionError("_choose_target refuses when no target fits; a chosen one has its plan")
        note_auto_choice(chosen.selection.target)
        self._auto_choice = choice  # shown on the spawn page at once (AutoTargetMixin.progress)
        return chosen.selection, chosen.plan

    async def _apply_plan_to_traits(self, plan: PodPlan) -> None:
        """Step 2: the plan's timeouts, overrides and traits onto this spawner."""
        self._apply_plan_timeouts(plan)
        self._restore_storage_traits()
        for override in plan.overrides:
            await self._apply_overrides_async(override)
        for name, value in plan_traits(plan).items():
            setattr(self, name, value)
        if plan.offload == "session" and self.port == RESERVED_TUNNEL_PORT:
            message = (
                f"This hub is misconfigured: the server on {plan.target_display_name} would listen on port "
                f"{RESERVED_TUNNEL_PORT}, which interLink reserves for its tunnel. Please tell the hub's admins."
            )
            raise spawn_error(message, "config", 500)

    def _restore_storage_traits(self) -> None:
        """The configured claim settings before this spawn's plan sets its own: a
        spawner object lives across spawns, and a claim for an in-cluster server
        must not be ensured again for the next server on a remote target."""
        if self._base_storage_traits is None:
            self._base_storage_traits = {name: getattr(self, name) for name in STORAGE_TRAITS}
        for name, value in self._base_storage_traits.items():
            setattr(self, name, value)

    async def _site_uid_for(self, plan: PodPlan) -> int | None:
        """The user's UID from their login when the target asks for one (else None);
        refuses the spawn, before anything is created, when it is not known."""
        claim = plan.pod_shape.run_as_user_claim if plan.pod_shape is not None else None
        if claim is None:
            return None
        try:
            return site_uid(await self.user.get_auth_state(), claim)
        except SiteUidError as e:
            raise refusal(f"{plan.target_display_name}: {e}") from None

    async def _apply_overrides_async(self, override: Mapping[str, Any]) -> None:
        """KubeSpawner's override semantics, but callables' results are awaited."""
        resolved: dict[str, Any] = {}
        for key, value in override.items():
            if callable(value):
                value = value(self)
                if inspect.isawaitable(value):
                    value = await value
            resolved[key] = value
        self._apply_overrides(resolved)

    @property
    def _plan(self) -> PodPlan | None:
        """This spawn's plan (what the parts read of :attr:`_prepared`)."""
        return self._prepared.plan if self._prepared is not None else None

    @property
    def _dask(self) -> DaskServerConfig | None:
        """This spawn's Dask files and env, if any."""
        return self._prepared.dask if self._prepared is not None else None

    async def get_pod_manifest(self) -> V1Pod:
        """Step 6: KubeSpawner's pod, then this spawn's plan, site UID and storage on it."""
        pod: V1Pod = await super().get_pod_manifest()
        prepared = self._prepared
        if prepared is not None:
            plan = prepared.plan
            apply_plan_to_pod(pod, plan)
            shape = plan.pod_shape
            if shape is not None:
                if prepared.site_uid is not None:
                    shape = shape.model_copy(update={"run_as_user": prepared.site_uid})
                shape_pod(pod, shape, plan.backend or "")
            if plan.storage is not None:
                apply_storage_to_pod(pod, plan.storage)
        return pod

    def get_env(self) -> dict[str, str]:
        env: dict[str, str] = super().get_env()
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


def _posted_for_refill(formdata: Mapping[str, Any]) -> dict[str, str]:
    """What the user posted, as user_options, to refill the form after a refusal."""
    values = {k: v[0] for k, v in formdata.items() if isinstance(v, list) and len(v) == 1 and isinstance(v[0], str)}
    profile = values.get("profile", "")
    out = {"profile": profile} if profile else {}
    prefix = f"profile-option-{profile}--"
    for key, value in values.items():
        if profile and key.startswith(prefix):
            out[key[len(prefix) :]] = value
    return out


# refusal and login_expired_refusal live in spawn_errors.py and fresh_login.py; still importable from here.
__all__ = ["CatalogError", "OffloadSpawner", "check_catalog", "login_expired_refusal", "refusal"]
