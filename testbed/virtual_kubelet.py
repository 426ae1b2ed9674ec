"""A small local "virtual kubelet": a stand-in for interLink + a plugin.

Why: the hub must see what it sees with interLink — a pod bound to a virtual
node goes Pending with "Remote pod submitted", maybe waits in a remote queue,
then runs with a pod IP it can reach, fails with reason ``ProviderFailed``,
and disappears when deleted — without a SLURM/HTCondor/Docker site. So this
process serves the test bed's nodes (:mod:`testbed.nodes`: the virtual nodes
*and* the ordinary ``node-local``, so in-cluster spawns run too):

* registers them and keeps them alive (Lease + status heartbeats);
* watches pods bound to them (``spec.nodeName``) and, for each, runs the
  first container's ``command + args`` as a **local process** with the pod's
  env, Secret/ConfigMap references resolved and Secret/ConfigMap volumes
  written as files (rules and limits in :mod:`testbed.podexec`): once, at
  start, on a virtual node, as interLink does; kept current on ``node-local``,
  as a kubelet does (see :meth:`PodRunner.keeps_volume_files_current`). **The image
  is ignored**: processes run from this machine's Python environment. Only the
  first container runs; init containers, probes and restarts are ignored;
* gives each pod its own loopback address 127.0.0.N as ``status.podIP`` and
  makes ``jupyterhub-singleuser`` bind it (``JUPYTERHUB_SERVICE_URL``);
* reports status like interLink: ``Pending`` with container Waiting reason
  "Remote pod submitted" and interLink's message (on a virtual node, as the
  virtual kubelet's CreatePod sets them:
  interLink/pkg/virtualkubelet/virtualkubelet.go; ``ContainerCreating`` on
  the ordinary node, as a kubelet); with the annotation
  ``testbed.offload-spawner.io/queue-seconds: "N"`` it then stays Pending N
  seconds with an empty Waiting state (a queued SLURM job); ``Running`` with
  Ready conditions and the pod IP once the process started; ``Succeeded`` /
  ``Failed`` from the process exit code; ``Failed`` with reason
  ``ProviderFailed`` and a message when the process cannot start or when the
  annotation ``testbed.offload-spawner.io/fail: "<message>"`` is set; writes
  back the ``JobID`` annotation as interLink does, once submitted (on a
  virtual node); while queued, an htcondor node reports Waiting
  ``ContainerCreating`` (HTCondor Idle), the others an empty Waiting state
  (SLURM); with ``testbed.offload-spawner.io/hold: "<reason>"`` the job is
  held: Waiting ``JobHeld`` with the reason as message, until deleted; the
  process id is written back as ``testbed.offload-spawner.io/pid``;
* on pod deletion kills the process group (SIGTERM, SIGKILL after the grace
  period, at most 10 s) and finalizes the delete (grace period 0), so that
  deletes complete as with a real kubelet.

Run it as ``python -m testbed.virtual_kubelet --kubeconfig K --state-dir D``
(:class:`VirtualKubeletProcess` does, from the test fixtures and the CLI).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import random
import signal
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import aiohttp
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

from .kubeapi import KubeRest
from .nodes import DEFAULT_NODES, MERGE_PATCH, NodeKeeper, NodeSpec
from .podexec import MissingObject, ProviderError, decode_data, prepare, sync_volumes
from .procs import ManagedProcess, die_with_parent

FAIL_ANNOTATION = "testbed.offload-spawner.io/fail"
QUEUE_ANNOTATION = "testbed.offload-spawner.io/queue-seconds"
LOG_ANNOTATION = "testbed.offload-spawner.io/log"
#: "<reason>": the job stays held (Waiting ``JobHeld``, message = reason) until deleted.
HOLD_ANNOTATION = "testbed.offload-spawner.io/hold"
#: written back once the process runs: its process id
PID_ANNOTATION = "testbed.offload-spawner.io/pid"
JOB_ID_ANNOTATION = "JobID"
#: interLink's CreatePod state for a pod handed to its plugin
#: (interLink/pkg/virtualkubelet/virtualkubelet.go): reason and message, verbatim.
SUBMITTED_REASON = "Remote pod submitted"
SUBMITTED_MESSAGE = "The pod has been submitted to the remote plugin for creation"
HELD_REASON = "JobHeld"
MAX_KILL_GRACE = 10.0
#: How often a pod waiting for a missing Secret/ConfigMap looks again, and how
#: often the Secret/ConfigMap volume files of running pods on ``node-local`` are
#: rewritten (never on a virtual node: see PodRunner.keeps_volume_files_current).
SECRET_RETRY_SECONDS = 0.5
SECRET_RESYNC_SECONDS = 1.0


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _say(message: str) -> None:
    print(f"virtual-kubelet: {message}", flush=True)


class IpPool:
    """Loopback addresses 127.0.0.2 ... 127.0.255.254, handed out round-robin
    (so a just-freed address is not reused at once) from a random start, so
    that two test beds on one machine (the demo beside the tests) do not hand
    out the same addresses."""

    def __init__(self, start: int | None = None) -> None:
        self._next = start if start is not None else random.randrange(2, 256 * 256 - 2)
        self.in_use: set[str] = set()

    def take(self) -> str:
        for _ in range(256 * 254):
            n = self._next
            self._next = self._next + 1 if self._next < 256 * 256 - 2 else 2
            if n % 256 in (0, 255, 1):
                continue
            ip = f"127.0.{n // 256}.{n % 256}"
            if ip not in self.in_use:
                self.in_use.add(ip)
                return ip
        raise ProviderError("no free loopback address left")

    def give_back(self, ip: str | None) -> None:
        if ip:
            self.in_use.discard(ip)


class PodRunner:
    """The life of one pod on one of our nodes."""

    def __init__(self, vk: VirtualKubelet, pod: dict[str, Any]) -> None:
        self.vk = vk
        self.pod = pod
        meta = pod["metadata"]
        self.namespace: str = meta["namespace"]
        self.name: str = meta["name"]
        self.uid: str = meta["uid"]
        self.container = (pod["spec"].get("containers") or [{"name": "?", "image": ""}])[0]
        self.virtual = vk.nodes[pod["spec"]["nodeName"]].virtual
        self.ip: str | None = None
        self.process: asyncio.subprocess.Process | None = None
        self.deleting = False
        self.started_at = ""
        self.pod_dir = vk.state_dir / "pods" / f"{self.namespace}_{self.name}_{self.uid[:8]}"
        self.log_path = vk.state_dir / "logs" / f"{self.namespace}_{self.name}_{self.uid[:8]}.log"
        self.task: asyncio.Task[None] = asyncio.create_task(self._run(), name=f"pod {self.key}")

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    # --- status ------------------------------------------------------------------

    def _container_status(self, state: dict[str, Any], ready: bool = False) -> dict[str, Any]:
        return {
            "name": self.container["name"],
            "image": self.container.get("image", ""),
            "imageID": "",
            "ready": ready,
            "started": "running" in state,
            "restartCount": 0,
            "state": state,
        }

    @staticmethod
    def _conditions(ready: bool) -> list[dict[str, str]]:
        now = _now()
        ready_status = "True" if ready else "False"
        return [
            {"type": kind, "status": status, "lastTransitionTime": now}
            for kind, status in (
                ("PodScheduled", "True"),
                ("Initialized", "True"),
                ("ContainersReady", ready_status),
                ("Ready", ready_status),
            )
        ]

    async def _patch_status(self, status: dict[str, Any]) -> None:
        base = {"hostIP": "127.0.0.1", "hostIPs": [{"ip": "127.0.0.1"}], "startTime": self.vk.start_time(self.uid)}
        body = {"metadata": {"uid": self.uid}, "status": {**base, **status}}
        try:
            await until_reachable(
                lambda: self.vk.core.patch_namespaced_pod_status(
                    self.name, self.namespace, body, _content_type=MERGE_PATCH
                )
            )
        except ApiException as e:
            if e.status not in (404, 409, 422):
                raise
            _say(f"{self.key}: status update refused ({e.status}): {e.reason}")

    async def report_pending(self, reason: str | None, message: str | None) -> None:
        waiting = {k: v for k, v in (("reason", reason), ("message", message)) if v}
        await self._patch_status(
            {
                "phase": "Pending",
                "conditions": self._conditions(False),
                "containerStatuses": [self._container_status({"waiting": waiting})],
            }
        )

    async def report_running(self) -> None:
        assert self.ip
        await self._patch_status(
            {
                "phase": "Running",
                "podIP": self.ip,
                "podIPs": [{"ip": self.ip}],
                "conditions": self._conditions(True),
                "containerStatuses": [self._container_status({"running": {"startedAt": self.started_at}}, ready=True)],
            }
        )

    async def report_failed(self, message: str) -> None:
        _say(f"{self.key}: ProviderFailed: {message}")
        await self._patch_status(
            {
                "phase": "Failed",
                "reason": "ProviderFailed",
                "message": message,
                "conditions": self._conditions(False),
                "containerStatuses": [
                    self._container_status(
                        {
                            "terminated": {
                                "exitCode": 1,
                                "reason": "ProviderFailed",
                                "message": message,
                                "startedAt": self.started_at or _now(),
                                "finishedAt": _now(),
                            }
                        }
                    )
                ],
            }
        )

    async def report_exit(self, code: int) -> None:
        phase, reason = ("Succeeded", "Completed") if code == 0 else ("Failed", "Error")
        status: dict[str, Any] = {
            "phase": phase,
            "conditions": self._conditions(False),
            "containerStatuses": [
                self._container_status(
                    {
                        "terminated": {
                            "exitCode": code,
                            "reason": reason,
                            "startedAt": self.started_at,
                            "finishedAt": _now(),
                        }
                    }
                )
            ],
        }
        if self.ip:
            status.update(podIP=self.ip, podIPs=[{"ip": self.ip}])
        await self._patch_status(status)

    # --- life ----------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            annotations = self.pod["metadata"].get("annotations") or {}
            if FAIL_ANNOTATION in annotations:
                await self.report_failed(annotations[FAIL_ANNOTATION] or "failed on request")
                return
            if self.virtual:
                await self.report_pending(SUBMITTED_REASON, SUBMITTED_MESSAGE)
            else:
                await self.report_pending("ContainerCreating", None)
            if self.virtual:
                await self.vk.annotate(self, {JOB_ID_ANNOTATION: self.vk.next_job_id()})
            queue = annotations.get(QUEUE_ANNOTATION)
            if queue:
                try:
                    seconds = float(queue)
                except ValueError:
                    raise ProviderError(f"{QUEUE_ANNOTATION}: {queue!r} is not a number") from None
                # queued: HTCondor reports Idle as ContainerCreating, SLURM an empty Waiting state
                htcondor = self.vk.nodes[self.pod["spec"]["nodeName"]].backend == "htcondor"
                await self.report_pending("ContainerCreating" if htcondor else None, None)
                await asyncio.sleep(seconds)
            if HOLD_ANNOTATION in annotations:
                await self.report_pending(HELD_REASON, annotations[HOLD_ANNOTATION] or "held")
                await asyncio.Event().wait()  # held until the pod is deleted
            if self.deleting:
                return
            self.ip = self.vk.ips.take()
            spec = await self._prepare_when_objects_exist()
            if self.deleting:
                return
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.log_path, "ab") as log:
                try:
                    self.process = await asyncio.create_subprocess_exec(
                        *spec.argv,
                        env=spec.env,
                        cwd=spec.cwd,
                        stdin=asyncio.subprocess.DEVNULL,
                        stdout=log,
                        stderr=asyncio.subprocess.STDOUT,
                        start_new_session=True,
                        preexec_fn=die_with_parent,
                    )
                except OSError as e:
                    raise ProviderError(f"cannot start {spec.argv[0]!r}: {e.strerror or e}") from None
            self.started_at = _now()
            _say(
                f"{self.key}: started pid {self.process.pid} on {self.pod['spec']['nodeName']} "
                f"as {self.ip} (log {self.log_path})"
            )
            written = {PID_ANNOTATION: str(self.process.pid), LOG_ANNOTATION: str(self.log_path)}
            if not self.virtual:
                written[JOB_ID_ANNOTATION] = f"testbed-{self.process.pid}"
            await self.vk.annotate(self, written)
            await self.report_running()
            resync = asyncio.create_task(self._resync_volumes()) if self.keeps_volume_files_current else None
            try:
                code = await self.process.wait()
            finally:
                if resync is not None:
                    resync.cancel()
            _say(f"{self.key}: pid {self.process.pid} exited with {code}")
            if not self.deleting:
                await self.report_exit(code if code >= 0 else 128 - code)
        except ProviderError as e:
            if not self.deleting:
                await self.report_failed(str(e))
        except asyncio.CancelledError:
            raise
        except Exception as e:  # keep serving other pods; the pod shows what went wrong
            _say(f"{self.key}: unexpected error: {e!r}")
            if not self.deleting:
                await self.report_failed(f"virtual kubelet error: {e}")

    # --- Secrets and ConfigMaps: wait for them, keep their files current ------------

    @property
    def keeps_volume_files_current(self) -> bool:
        """Whether a changed Secret/ConfigMap reaches the running pod's volume files.

        On ``node-local`` yes, as a kubelet re-syncs Secret/ConfigMap volumes.
        On a virtual node no: interLink's virtual kubelet collects a pod's
        Secrets and ConfigMaps once, for the create call to the plugin
        (``RemoteExecution`` in mode CREATE calls ``remoteExecutionHandleVolumes``,
        which reads each Secret/ConfigMap volume's object into the
        ``PodCreateRequests`` it sends: interLink/pkg/virtualkubelet/execute.go).
        Nothing sends them again: ``RemoteExecution`` has only the CREATE and
        DELETE modes, and ``Provider.UpdatePod`` only notifies the pod
        controller (interLink/pkg/virtualkubelet/virtualkubelet.go), so a
        rotated Secret never reaches a running remote job. The files are
        written once, at start (:meth:`_prepare_when_objects_exist`).
        """
        return not self.virtual

    async def _prepare_when_objects_exist(self) -> Any:
        """``prepare`` the pod, waiting while a Secret/ConfigMap it needs is missing.

        Like the kubelet (container Waiting, reason CreateContainerConfigError):
        the hub may create a pod's Secret just after the pod, because the
        Secret's ownerReference needs the pod's uid.
        """
        waiting_reported = False
        while True:
            try:
                return await prepare(self.pod, self.ip, self.pod_dir, self.vk.read_data)
            except MissingObject as e:
                if not waiting_reported:
                    await self.report_pending("CreateContainerConfigError", str(e))
                    waiting_reported = True
                await asyncio.sleep(SECRET_RETRY_SECONDS)

    async def _resync_volumes(self) -> None:
        """Re-read Secret/ConfigMap volumes every SECRET_RESYNC_SECONDS (a kubelet does,
        slower); only where :attr:`keeps_volume_files_current`."""
        while True:
            await asyncio.sleep(SECRET_RESYNC_SECONDS)
            try:
                await sync_volumes(self.pod, self.pod_dir, self.vk.read_data)
            except (ApiException, OSError) as e:
                _say(f"{self.key}: volume resync failed: {e!r}")

    async def kill(self, grace: float) -> None:
        """Stop the process group: SIGTERM, then SIGKILL after ``grace`` seconds."""
        self.deleting = True
        if self.process is None and not self.task.done():
            # Queued, resolving or starting: stop that first (asyncio kills a process
            # whose creation is cancelled), then look again.
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        proc = self.process
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), timeout=max(0.5, min(grace, MAX_KILL_GRACE)))
        if proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):  # also any children left in the group
                os.killpg(proc.pid, signal.SIGKILL)
            if proc.returncode is None:
                await proc.wait()
        if not self.task.done():
            self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        self.vk.ips.give_back(self.ip)
        await asyncio.to_thread(_rmtree, self.pod_dir)


async def _json(response: Any) -> Any:
    """Decode a ``_preload_content=False`` answer, which kubernetes_asyncio does not check."""
    if response.status >= 400:
        raise ApiException(status=response.status, reason=await response.text())
    return json.loads(await response.read())


#: How long a status report or read waits for an API server that cannot be reached.
UNREACHABLE_PATIENCE = 120.0


async def until_reachable(call: Any, patience: float = UNREACHABLE_PATIENCE) -> Any:
    """``await call()``, tried again while the API server refuses or drops the connection
    (it restarts): a kubelet keeps its pods' status to report until it gets through."""
    deadline = time.monotonic() + patience
    while True:
        try:
            return await call()
        except (aiohttp.ClientConnectionError, ConnectionError) as e:
            if time.monotonic() > deadline:
                raise
            _say(f"API server unreachable ({type(e).__name__}); trying again")
            await asyncio.sleep(0.5)


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


class VirtualKubelet:
    """Serves ``nodes``: registers them, keeps them alive, runs their pods."""

    def __init__(self, api: client.ApiClient, nodes: Iterable[NodeSpec], state_dir: Path) -> None:
        self.api = api
        self.core = client.CoreV1Api(api)
        self.nodes = {n.name: n for n in nodes}
        self.state_dir = state_dir
        self.ips = IpPool()
        self.runners: dict[str, PodRunner] = {}
        self.done: set[str] = set()
        self._start_times: dict[str, str] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self._job_ids = 0
        self.keeper = NodeKeeper(api, list(self.nodes.values()))

    def start_time(self, uid: str) -> str:
        return self._start_times.setdefault(uid, _now())

    async def read_data(self, kind: str, namespace: str, name: str) -> dict[str, bytes] | None:
        read = self.core.read_namespaced_secret if kind == "secret" else self.core.read_namespaced_config_map
        response = await until_reachable(lambda: read(name, namespace, _preload_content=False))
        if response.status == 404:
            return None
        return decode_data(await _json(response), kind)

    def next_job_id(self) -> str:
        self._job_ids += 1
        return f"testbed-{self._job_ids}"

    async def annotate(self, runner: PodRunner, annotations: dict[str, str]) -> None:
        try:
            await until_reachable(
                lambda: self.core.patch_namespaced_pod(
                    runner.name,
                    runner.namespace,
                    {"metadata": {"uid": runner.uid, "annotations": annotations}},
                    _content_type=MERGE_PATCH,
                )
            )
        except ApiException as e:
            if e.status not in (404, 409, 422):
                raise

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # --- pods ------------------------------------------------------------------------

    def handle(self, event_type: str, pod: dict[str, Any]) -> None:
        spec, meta, status = pod.get("spec") or {}, pod["metadata"], pod.get("status") or {}
        if spec.get("nodeName") not in self.nodes:
            return
        uid = meta["uid"]
        runner = self.runners.get(uid)
        if event_type == "DELETED":
            if runner is not None and not runner.deleting:
                runner.deleting = True
                self._spawn(self._finish(runner, delete=False, grace=0))
            self.done.discard(uid)
            return
        if meta.get("deletionTimestamp"):
            grace = float(meta.get("deletionGracePeriodSeconds") or 0)
            if runner is not None:
                if not runner.deleting:
                    runner.deleting = True
                    self._spawn(self._finish(runner, delete=True, grace=grace))
            elif uid not in self.done:
                self.done.add(uid)
                self._spawn(self._delete(meta["namespace"], meta["name"], uid))
            return
        if runner is not None or uid in self.done:
            return
        if status.get("phase") in ("Succeeded", "Failed"):
            self.done.add(uid)
            return
        if status.get("phase") == "Running":
            # Bound here, running, but not by us: a previous virtual kubelet's process is gone.
            self.done.add(uid)
            self._spawn(self._report_lost(pod))
            return
        self.runners[uid] = PodRunner(self, pod)

    async def _report_lost(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        body = {
            "metadata": {"uid": meta["uid"]},
            "status": {
                "phase": "Failed",
                "reason": "ProviderFailed",
                "message": "the virtual kubelet restarted and lost this pod's process",
            },
        }
        with contextlib.suppress(ApiException):
            await self.core.patch_namespaced_pod_status(
                meta["name"], meta["namespace"], body, _content_type=MERGE_PATCH
            )

    async def _finish(self, runner: PodRunner, delete: bool, grace: float) -> None:
        await runner.kill(grace)
        self.runners.pop(runner.uid, None)
        self.done.add(runner.uid)
        if delete:
            await self._delete(runner.namespace, runner.name, runner.uid)
        _say(f"{runner.key}: gone")

    async def _delete(self, namespace: str, name: str, uid: str) -> None:
        """Finalize a graceful delete, as the kubelet does once the containers are gone."""
        try:
            await until_reachable(
                lambda: self.core.delete_namespaced_pod(
                    name,
                    namespace,
                    grace_period_seconds=0,
                    body={"gracePeriodSeconds": 0, "preconditions": {"uid": uid}},
                )
            )
        except ApiException as e:
            if e.status not in (404, 409):
                raise

    async def watch_pods(self, ready: asyncio.Event) -> None:
        """List, then watch, every pod; relist when the watch expires (HTTP 410)."""
        resource_version = ""
        while True:
            try:
                if not resource_version:
                    response = await self.core.list_pod_for_all_namespaces(_preload_content=False)
                    listing = await _json(response)
                    for pod in listing["items"]:
                        self.handle("ADDED", pod)
                    resource_version = listing["metadata"]["resourceVersion"]
                    ready.set()
                response = await self.core.list_pod_for_all_namespaces(
                    watch=True,
                    resource_version=resource_version,
                    allow_watch_bookmarks=True,
                    timeout_seconds=240,
                    _request_timeout=300,
                    _preload_content=False,
                )
                if response.status != 200:
                    await _json(response)  # raises
                async with response:
                    async for line in response.content:
                        if not line.strip():
                            continue
                        event = json.loads(line)
                        obj = event["object"]
                        if event["type"] == "ERROR":
                            if obj.get("code") == 410:
                                resource_version = ""
                            break
                        resource_version = obj["metadata"].get("resourceVersion", resource_version)
                        if event["type"] != "BOOKMARK":
                            self.handle(event["type"], obj)
            except (TimeoutError, OSError, ApiException, aiohttp.ClientError) as e:
                # An API server that restarts drops the watch (ServerDisconnectedError)
                # and refuses connections for a while: keep trying, as a kubelet does.
                _say(f"watch interrupted ({e!r}); resuming")
                await asyncio.sleep(0.5)

    async def run(self, ready_file: Path | None = None) -> None:
        await self.keeper.register_all()
        _say(f"registered nodes {', '.join(self.nodes)}")
        ready = asyncio.Event()
        tasks = [asyncio.create_task(self.keeper.run()), asyncio.create_task(self.watch_pods(ready))]
        await ready.wait()
        if ready_file is not None:
            ready_file.write_text(str(os.getpid()))
        _say("ready")
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def shutdown(self) -> None:
        """Kill every process we run (pods are left to the API server)."""
        await asyncio.gather(*(runner.kill(0) for runner in list(self.runners.values())), return_exceptions=True)


async def _main(kubeconfig: Path, state_dir: Path, ready_file: Path | None) -> None:
    configuration = client.Configuration()
    await config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
    state_dir.mkdir(parents=True, exist_ok=True)
    async with client.ApiClient(configuration) as api:
        vk = VirtualKubelet(api, DEFAULT_NODES, state_dir)
        loop = asyncio.get_running_loop()
        main = asyncio.current_task()
        assert main is not None
        stopping = False

        def stop() -> None:
            nonlocal stopping
            if not stopping:
                stopping = True
                main.cancel()

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop)
        try:
            await vk.run(ready_file)
        except asyncio.CancelledError:
            pass
        finally:
            await vk.shutdown()
            _say("stopped")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m testbed.virtual_kubelet", description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument("--state-dir", type=Path, required=True, help="pod directories and process logs")
    parser.add_argument("--ready-file", type=Path, help="written once the nodes are registered and pods watched")
    args = parser.parse_args(argv)
    asyncio.run(_main(args.kubeconfig, args.state_dir, args.ready_file))
    return 0


class VirtualKubeletProcess:
    """Runs the virtual kubelet as a child process and waits until its nodes are schedulable."""

    def __init__(
        self, kubeconfig: Path, state_dir: Path, admin: KubeRest, nodes: Iterable[NodeSpec] = DEFAULT_NODES
    ) -> None:
        self.kubeconfig = kubeconfig
        self.state_dir = state_dir
        self.admin = admin
        self.node_names = [n.name for n in nodes]
        self.process: ManagedProcess | None = None

    def start(self, timeout: float = 60.0) -> VirtualKubeletProcess:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        ready_file = self.state_dir / "ready"
        ready_file.unlink(missing_ok=True)
        root = Path(__file__).resolve().parent.parent
        env = dict(
            os.environ,
            PYTHONPATH=os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])),
            PYTHONUNBUFFERED="1",
        )
        self.process = ManagedProcess(
            "virtual-kubelet",
            [
                sys.executable,
                "-m",
                "testbed.virtual_kubelet",
                "--kubeconfig",
                str(self.kubeconfig),
                "--state-dir",
                str(self.state_dir),
                "--ready-file",
                str(ready_file),
            ],
            self.state_dir / "virtual-kubelet.log",
            env=env,
            cwd=root,
        ).start()
        deadline = time.monotonic() + timeout
        while not (ready_file.exists() and self.nodes_schedulable()):
            if not self.process.alive():
                raise RuntimeError(f"virtual kubelet exited:\n{self.process.tail()}")
            if time.monotonic() > deadline:
                tail = self.process.tail()
                self.stop()
                raise RuntimeError(f"nodes not schedulable after {timeout:.0f}s:\n{tail}")
            time.sleep(0.25)
        return self

    def nodes_schedulable(self) -> bool:
        """Every node Ready, and the apiserver's not-ready taint removed by the node-lifecycle controller."""
        status, listing = self.admin.request("GET", "/api/v1/nodes")
        if status != 200:
            return False
        seen = {}
        for node in listing["items"]:
            ready = any(
                c["type"] == "Ready" and c["status"] == "True" for c in node.get("status", {}).get("conditions", [])
            )
            tainted = any(t["key"].startswith("node.kubernetes.io/") for t in node["spec"].get("taints") or [])
            seen[node["metadata"]["name"]] = ready and not tainted
        return all(seen.get(name) for name in self.node_names)

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop(timeout=20)
            self.process = None


if __name__ == "__main__":
    sys.exit(main())
