"""The Kubernetes backend: each task a batch/v1 Job, tracked by one shared watch per namespace.

submit renders the task (render.py beside this module), creates its ConfigMap of staged files (if any)
and its Job, then makes the Job the ConfigMap's owner so they are garbage-collected together.
Job names are deterministic, so a second submit of the same task is answered 409 by the API
server: the existing Job is adopted (after checking it belongs to the same event), never run
twice. wait asks the namespace's JobTracker (tracker.py) for the Job's end, then reads its
pod: the job container's log tail and termination message (the task's result file), and on
failure the init container's log and the pod's warning events, so the reason says more than
"BackoffLimitExceeded". A Job ends for it at FailureTarget already (harvest.terminal_condition),
while its pod can still be read. A pod that cannot start (startup.py) fails the task once the
start grace has passed, and its Job is deleted (a Job the watch has shown with a ready pod is
not checked). Past maxPollDuration (counted from the Job's creation, so an adopted Job keeps
its deadline) the Job is deleted and the task is timed_out.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from kubernetes_asyncio import client

from executor.backends.kubernetes import harvest
from executor.backends.kubernetes.admission import Admission
from executor.backends.kubernetes.api import (
    ApiError,
    ApiOverQuota,
    ApiRefused,
    JSONBody,
    KubeAPI,
    load_api_client,
    over_quota,
)
from executor.backends.kubernetes.harvest import is_finished, running_log, terminal_condition
from executor.backends.kubernetes.podwatch import SucceededPods
from executor.backends.kubernetes.render import RenderOptions, render_task
from executor.backends.kubernetes.startup import Stuck, never_started
from executor.backends.kubernetes.tracker import JobTracker
from executor.backends.naming import A_EVENT_ID, A_EVENT_SOURCE, selector
from executor.model.tasks import Adopted, TaskHandle, TaskOutcome, TaskSpec
from executor.support.backoff import KUBE_REQUEST, Backoff
from executor.support.crashpoints import crash_point

log = logging.getLogger(__name__)

Obj = dict[str, Any]
BACKGROUND = {"propagationPolicy": "Background"}
OUTCOME_READS = 8  # ended Jobs whose pod and log are read at the same time


class KubernetesBackend:
    name = "kubernetes"

    def __init__(
        self,
        options: RenderOptions,
        namespaces: Sequence[str] = ("default",),
        *,
        api_client: client.ApiClient | None = None,
        backoff: Backoff | None = None,
        watch_backoff: Backoff | None = None,
        sync_timeout: float = 5.0,
        pod_start_grace: float = 60.0,
        pod_check_interval: float = 10.0,
        kubeconfig: str = "",
        context: str = "",
        admission: Admission | None = None,
    ) -> None:
        self.options = options
        # KUBE_WRITE_QPS/BURST and MAX_PENDING_JOBS of this cluster (admission.py).
        self.admission = admission or Admission()
        self.kubeconfig, self.context = kubeconfig, context  # "": KUBECONFIG or in-cluster
        self.namespaces = tuple(dict.fromkeys(namespaces))  # where adopt() looks
        self.backoff = backoff or KUBE_REQUEST
        self.watch_backoff = watch_backoff
        self.sync_timeout = sync_timeout
        # A pod that cannot start fails its task this long after the Job's creation (0: never;
        # then only maxPollDuration ends it); read again every pod_check_interval until it starts.
        self.pod_start_grace = pod_start_grace
        self.pod_check_interval = max(0.01, min(pod_check_interval, pod_start_grace or pod_check_interval))
        self._api_client = api_client  # injected (tests) or loaded by start()
        self._owns_client = api_client is None
        self._api: KubeAPI | None = None
        self._trackers: dict[str, JobTracker] = {}
        self._pods: dict[str, SucceededPods] = {}  # started with each namespace's tracker
        # Endings come in bursts (the watch hands over what arrived together). Reading every
        # ended Job's pod and log at once held up the creation of new events' Jobs behind that
        # work (p99 about 19 ms at 100 events/s, 13 with this bound; bench/latency.py) and
        # would load the API server in spikes.
        self._outcome_reads = asyncio.Semaphore(OUTCOME_READS)

    # ---- lifecycle ----

    async def start(self) -> None:
        await self._ready()
        for namespace in self.namespaces:
            self.tracker(namespace)
        ready = await asyncio.gather(*(t.synced(self.sync_timeout) for t in self._trackers.values()))
        for tracker, ok in zip(self._trackers.values(), ready, strict=True):
            if ok:
                log.info(
                    "kubernetes backend: watching %d Job(s) of ours in namespace %s",
                    tracker.count(),
                    tracker.namespace,
                )
            else:
                log.warning(
                    "kubernetes backend: no Job list from namespace %s yet; still trying",
                    tracker.namespace,
                )

    async def close(self) -> None:
        # Jobs keep running in the cluster; a restarted service adopts them.
        trackers, self._trackers = list(self._trackers.values()), {}
        for tracker in trackers:
            await tracker.close()
        pods, self._pods = list(self._pods.values()), {}
        for watch in pods:
            await watch.close()
        if self._owns_client and self._api_client is not None:
            await self._api_client.close()
            self._api_client = None
        self._api = None

    async def _ready(self) -> KubeAPI:
        if self._api is None:
            if self._api_client is None:
                self._api_client = await load_api_client(self.kubeconfig, self.context)
            writes = self.admission.writes if self.admission.writes.rate > 0 else None
            self._api = KubeAPI(self._api_client, self.backoff, writes=writes)
        return self._api

    def tracker(self, namespace: str) -> JobTracker:
        """The namespace's shared watch, started on first use."""
        tracker = self._trackers.get(namespace)
        if tracker is None:
            assert self._api is not None, "start() the backend first"
            pending = self.admission.pending if self.admission.pending.limit > 0 else None
            tracker = JobTracker(
                self._api,
                namespace,
                selector(self.options.managed_by),
                backoff=self.watch_backoff,
                pending=pending,
                starts=self.pod_start_grace > 0,
            )
            self._trackers[namespace] = tracker
            tracker.start()
            pods = self._pods[namespace] = SucceededPods(
                self._api, namespace, tracker.selector, backoff=self.watch_backoff
            )
            pods.start()
        return tracker

    def pod_watch(self, namespace: str) -> SucceededPods | None:
        """The namespace's watch on the succeeded pods of our Jobs (podwatch.py), once started."""
        return self._pods.get(namespace)

    async def succeeded_pod(self, namespace: str, job: Obj) -> Obj | None:
        """The pod of a completed Job, when the namespace's pod watch brings it (None for a
        failed Job: its pods are always listed, see harvest.outcome)."""
        pods = self._pods.get(namespace)
        if pods is None or harvest.failed(job):
            return None
        return await pods.take(_uid(job))

    def watched_namespaces(self) -> tuple[str, ...]:
        """The namespaces with a watch open (or being opened) on our Jobs."""
        return tuple(self._trackers)

    async def live_log(self, job: str) -> str | None:
        """A running task's output so far, for the read API (its log is kept with its outcome
        once it ends); None when no watch knows the Job."""
        found = next((j for t in self._trackers.values() if (j := t.latest(job)) is not None), None)
        return None if found is None or self._api is None else await running_log(self._api, found)

    # ---- the Backend protocol ----

    async def submit(self, spec: TaskSpec, files: Mapping[str, bytes]) -> TaskHandle:
        api = await self._ready()
        objects = render_task(spec, self.options, files)
        job_manifest = objects[-1]
        configmap = objects[0] if len(objects) > 1 else None
        namespace = job_manifest["metadata"]["namespace"] or self.namespaces[0]
        name = job_manifest["metadata"]["name"]
        # MAX_PENDING_JOBS: wait while the cluster has that many Jobs of ours not yet running.
        async with self.admission.pending.creating():
            job, adopted = await self._create(api, namespace, name, spec, job_manifest, configmap)
        if configmap is not None:
            await self._set_owner(api, namespace, name, job)
        return TaskHandle(name, namespace, adopted=adopted)

    async def _create(
        self,
        api: KubeAPI,
        namespace: str,
        name: str,
        spec: TaskSpec,
        job_manifest: Obj,
        configmap: Obj | None,
    ) -> tuple[Obj, bool]:
        if configmap is not None:
            try:
                await self._create_configmap(api, namespace, configmap)
            except ApiError as exc:
                raise self._refusal(namespace, name, exc) from None
        adopted = False
        try:
            job = await api.call(
                f"creating Job {namespace}/{name}",
                api.batch.create_namespaced_job,
                namespace,
                JSONBody(job_manifest),
            )
            log.info("created Job %s/%s for task %r", namespace, name, spec.task_name)
        except ApiError as exc:
            if exc.status != 409:
                if configmap is not None:
                    await self._delete_configmap(api, namespace, name)
                raise self._refusal(namespace, name, exc) from None
            job = await self._existing_job(api, namespace, name, spec)
            adopted = True
            log.info("Job %s/%s already exists for this event: adopting it", namespace, name)
        crash_point("kube.job_created")
        # The namespace's watch starts only once a Job of ours exists there: a namespace the
        # service may not use must not leave a watch retrying its 403 for the life of the process.
        self.tracker(namespace).observe(job)
        if not adopted:
            self.admission.admitted()
        return job, adopted

    async def wait(self, handle: TaskHandle, spec: TaskSpec) -> TaskOutcome:
        api = await self._ready()
        namespace = handle.namespace or spec.namespace
        tracker = self.tracker(namespace)
        job = tracker.latest(handle.name)
        if job is None:
            try:
                job = await self._read_job(api, namespace, handle.name)
            except ApiError as exc:
                if exc.status != 404:
                    raise
                return harvest.lost(namespace, handle.name)
            tracker.observe(job)
        limit = spec.max_poll_duration
        name, uid = handle.name, _uid(job)
        created = _created(job["metadata"].get("creationTimestamp"))
        # While it waits, a wait holds the Job's name and uid, not a copy of the Job: the tracker
        # has it (50,000 waits each holding their Job's copy were 1 KB a Job; bench/tracking.py).
        del job
        deadline = created + limit
        # Most Jobs end, or show a ready pod, within the pod-start grace: their wait is a future
        # whose deadline the tracker keeps, with no check started, no timer and no coroutine of
        # its own (a task per Job for the check, one for the ending, timers and coroutine frames
        # were much of the memory of 50,000 Jobs in flight; bench/tracking.py).
        first = min(created + self.pod_start_grace, deadline) if self.pod_start_grace > 0 else deadline
        final: Obj | Stuck | None
        try:
            try:
                final = await tracker.ending(name, uid, until=first)
            except TimeoutError:
                if first >= deadline:
                    raise
                final = await self._after_grace(api, tracker, name, uid, created, deadline)
        except TimeoutError:
            latest = tracker.latest(name) or _known(namespace, name, uid)
            if terminal_condition(latest) is not None and _uid(latest) == uid:
                return await harvest.outcome(api, latest)  # it ended just as time ran out
            return await self._time_out(api, latest, limit)
        if isinstance(final, Stuck):
            now = tracker.latest(name)
            if now is None or _uid(now) != uid:
                return await self._give_up_start(api, _known(namespace, name, uid), final)
            if terminal_condition(now) is None:
                return await self._give_up_start(api, now, final)
            final = now  # it ended meanwhile after all: its own end tells more
        if final is None:
            return harvest.lost(namespace, handle.name)
        crash_point("kube.ended")
        pod = await self.succeeded_pod(namespace, final)
        async with self._outcome_reads:
            return await harvest.outcome(api, final, pod=pod)

    async def _after_grace(
        self, api: KubeAPI, tracker: JobTracker, name: str, uid: str, created: float, deadline: float
    ) -> Obj | Stuck | None:
        """Once the pod-start grace is over: the Job once ended (None: deleted first), or why its
        pod cannot start, whichever is first; TimeoutError at `deadline` (epoch seconds)."""
        ending = tracker.ending(name, uid)  # the first one expired with the grace
        if ending.done():
            return ending.result()
        async with asyncio.timeout(max(0.0, deadline - time.time())):
            if tracker.started(name, uid):
                return await ending
            job = tracker.latest(name) or _known(tracker.namespace, name, uid)
            checking = asyncio.ensure_future(
                never_started(
                    api,
                    job,
                    created,
                    self.pod_start_grace,
                    self.pod_check_interval,
                    lambda: tracker.started(name, uid),
                )
            )
            try:
                await asyncio.wait((ending, checking), return_when=asyncio.FIRST_COMPLETED)
                if ending.done():
                    return ending.result()
                stuck = checking.result()
                return stuck if stuck is not None else await ending
            finally:
                ending.cancel()
                checking.cancel()

    async def _give_up_start(self, api: KubeAPI, job: Obj, stuck: Stuck) -> TaskOutcome:
        """A pod that cannot start: say why (reason, message, its warning events), delete the Job."""
        meta = job["metadata"]
        outcome = await harvest.never_started(api, job, stuck.pod, stuck.describe(self.pod_start_grace))
        await self._delete_job(api, meta["namespace"], meta["name"])
        log.info(
            "Job %s/%s: its pod cannot start (%s); deleted it", meta["namespace"], meta["name"], stuck.reason
        )
        return outcome

    async def discard(self, names: Sequence[str]) -> None:
        """Nothing to do: a Job goes by its ttlSecondsAfterFinished, its ConfigMap with it."""

    async def cancel(self, handle: TaskHandle) -> None:
        api = await self._ready()
        await self._delete_job(api, handle.namespace or self.namespaces[0], handle.name)

    async def adopt(self) -> list[Adopted]:
        api = await self._ready()
        found: list[Adopted] = []
        for namespace in self.namespaces:
            async for page in api.job_pages(namespace, selector(self.options.managed_by)):
                for job in page.get("items") or []:
                    meta = job["metadata"]
                    handle = TaskHandle(meta["name"], namespace, adopted=True)
                    annotations = dict(meta.get("annotations") or {})
                    found.append(Adopted(handle, annotations, running=not is_finished(job)))
                    self.tracker(namespace).observe(job)
        return found

    # ---- submit's steps ----

    async def _create_configmap(self, api: KubeAPI, namespace: str, configmap: Obj) -> None:
        name = configmap["metadata"]["name"]
        try:
            await api.call(
                f"creating ConfigMap {namespace}/{name}",
                api.core.create_namespaced_config_map,
                namespace,
                configmap,
            )
        except ApiError as exc:
            if exc.status != 409:  # 409: made by an earlier submit of this task, same content
                raise

    def _refusal(self, namespace: str, name: str, exc: ApiError) -> ApiError:
        """A 403 or a missing namespace as a Permanent that says what to change; others as they are."""
        if over_quota(exc):
            return ApiOverQuota(
                f"cannot create Job {namespace}/{name} now: {exc}; tried again once the quota has room",
                exc.status,
                exc.reason,
            )
        if exc.status == 403:
            return ApiRefused(
                f"the service may not create Job {namespace}/{name}: namespace {namespace!r} is "
                f"outside its RBAC ({exc}). The Helm chart's Role covers the job namespace only "
                f"({self.namespaces[0]!r}, JOB_NAMESPACE): run the task there (drop its `namespace`), "
                f"or bind the service's account a Role in {namespace!r} like the chart's",
                exc.status,
                exc.reason,
            )
        if exc.status == 404:  # on a create, only the namespace can be missing
            return ApiRefused(
                f"cannot create Job {namespace}/{name}: namespace {namespace!r} does not exist ({exc}); "
                "create it, or run the task in an existing namespace",
                exc.status,
                exc.reason,
            )
        return exc

    async def _existing_job(self, api: KubeAPI, namespace: str, name: str, spec: TaskSpec) -> Obj:
        try:
            job = await self._read_job(api, namespace, name)
        except ApiError as exc:
            if exc.status == 404:
                raise ApiError(
                    f"Job {namespace}/{name} was refused as already existing, then not found "
                    "(deleted meanwhile?); not creating it again",
                    exc.status,
                ) from None
            raise
        annotations = job["metadata"].get("annotations") or {}
        theirs = (annotations.get(A_EVENT_SOURCE, ""), annotations.get(A_EVENT_ID, ""))
        ours = (spec.trigger.event_source, spec.trigger.event_id)
        if theirs != ours:
            raise ApiError(
                f"Job {namespace}/{name} already exists but belongs to another event "
                f"(source {theirs[0]!r}, id {theirs[1]!r}; this task's event is source "
                f"{ours[0]!r}, id {ours[1]!r}); refusing to adopt it",
                409,
                "AlreadyExists",
            )
        return job

    async def _set_owner(self, api: KubeAPI, namespace: str, name: str, job: Obj) -> None:
        owner = {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "name": job["metadata"]["name"],
            "uid": job["metadata"]["uid"],
        }
        try:
            await api.call(
                f"making Job {name} the owner of its ConfigMap",
                api.core.patch_namespaced_config_map,
                name,
                namespace,
                {"metadata": {"ownerReferences": [owner]}},
                _content_type="application/merge-patch+json",
            )
        except ApiError as exc:
            # The task runs regardless; only the ConfigMap's clean-up depends on this.
            log.warning("%s (the ConfigMap will outlive the Job)", exc)

    async def _time_out(self, api: KubeAPI, job: Obj, limit: int) -> TaskOutcome:
        outcome = await harvest.timed_out(api, job, limit)
        meta = job["metadata"]
        await self._delete_job(api, meta["namespace"], meta["name"])
        log.info("Job %s/%s timed out after %d s; deleted it", meta["namespace"], meta["name"], limit)
        return outcome

    # ---- small calls ----

    async def _read_job(self, api: KubeAPI, namespace: str, name: str) -> Obj:
        job: Obj = await api.call(
            f"reading Job {namespace}/{name}", api.batch.read_namespaced_job, name, namespace
        )
        return job

    async def _delete_job(self, api: KubeAPI, namespace: str, name: str) -> None:
        try:
            await api.call(
                f"deleting Job {namespace}/{name}",
                api.batch.delete_namespaced_job,
                name,
                namespace,
                body=BACKGROUND,
            )
        except ApiError as exc:
            if exc.status != 404:
                raise

    async def _delete_configmap(self, api: KubeAPI, namespace: str, name: str) -> None:
        try:
            await api.call(
                f"deleting ConfigMap {namespace}/{name}",
                api.core.delete_namespaced_config_map,
                name,
                namespace,
            )
        except ApiError as exc:
            log.warning("%s", exc)


def _uid(job: Obj) -> str:
    return str(job["metadata"].get("uid") or "")


def _known(namespace: str, name: str, uid: str) -> Obj:
    """What a wait knows of its Job when the tracker no longer has it: enough to find its pod
    (by the Job's name labels) and to delete it."""
    return {"metadata": {"name": name, "namespace": namespace, "uid": uid}}


def _created(stamp: str | None) -> float:
    """When a Job was created, in seconds since the epoch, as late as its creationTimestamp allows
    (now when it is missing or unreadable). The API server writes whole seconds, so a Job created
    at 12:00:00.9 reads 12:00:00: counting from there would cut up to a second off its
    maxPollDuration and its pod's start grace. Counting from the end of that second never does."""
    if not stamp:
        return time.time()
    try:
        moment = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return time.time()
    return moment + 1.0 if moment.is_integer() else moment
