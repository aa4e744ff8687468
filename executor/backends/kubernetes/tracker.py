"""One shared watch on our Jobs in a namespace: the backend's only source of Job progress.

The tracker lists the Jobs carrying our label selector (which gives a resourceVersion), then
watches from that resourceVersion. Waiters ask for one Job by name (and uid) and are resolved
when it has a Complete, Failed or FailureTarget condition (harvest.terminal_condition), or when
it is deleted before that. However many
tasks run, a namespace costs one open watch, not one request per task per poll interval.

Cost under load (profiled, see BENCHMARKS.md): most watch events are progress a waiter does not
need (active, ready, SuccessCriteriaMet, uncounted pods...), and reading each event as it
arrives costs a wake-up of the loop and of the HTTP reader per event. So an added or modified
Job whose line names none of those conditions is passed over without decoding
(its JSON is most of the work), except one that counts a ready pod while the pod-start check is
on (startup.py): that check learns from it that the Job's pod started, which saves it a pod list
after the grace (`started`). After each read the watch's connection is left unread for a
moment (COALESCE_SECONDS), so that a burst of endings is received and handled in one go. The
price is that an ending is noticed up to that moment later, when others came just before it.
The moment is short (20 ms) because a burst is handled in one go on the event loop: at 0.1 s
the bursts of outcome reads and reports held new events' Job creates behind them (p99 21 ms at
200 events/s against 9 ms at 20 ms, for the same CPU per event; bench/latency.py). A stream
busy enough to fill each read is not rested at all (watchstream.BUSY_CHUNK).
What the tracker keeps of a Job is therefore the latest version it decoded: as created or read
by the backend, as listed, or as it ended.

Failures: when the watch ends (server timeout, dropped connection) it resumes from the last
resourceVersion seen, so events in between are replayed; when the server no longer has that
history (410 Gone/Expired, as an ERROR event or an HTTP status) it lists again, which shows
every Job's current state, so no completion that happened meanwhile is lost. API errors and
broken connections are retried with capped, jittered exponential backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes_asyncio.client.exceptions import ApiException

from executor.backends.kubernetes.admission import PendingCap
from executor.backends.kubernetes.api import ApiError, KubeAPI
from executor.backends.kubernetes.harvest import is_finished
from executor.backends.kubernetes.waiters import Waiters
from executor.backends.kubernetes.watchstream import PROGRESS_PREFIXES, watch_event, watching
from executor.support import fastjson
from executor.support.backoff import KUBE_WATCH, Backoff

log = logging.getLogger(__name__)

Job = dict[str, Any]
LIST_PAGE = 500
COALESCE_SECONDS = 0.02
# A line with one of watchstream.PROGRESS_PREFIXES and none of these markers is progress no
# waiter needs; any other line (deleted, bookmark, error, or a shape not foreseen) is decoded.
_ENDING_MARKERS = (b'"Complete"', b'"Failed"', b'"FailureTarget"')
# status.ready of 1 or more. A Job has no other key "ready" (a label of that name has a string
# value), and a line that matches by chance is only decoded, as any other line may be.
_READY_MARKER = re.compile(rb'"ready":\s*[1-9]')


@dataclass
class TrackerStats:
    lists: int = 0  # full re-lists (the first one included)
    watches: int = 0  # watch requests opened
    expired: int = 0  # 410 Gone answers
    errors: int = 0  # failed lists or watches, retried after a backoff


class JobTracker:
    def __init__(
        self,
        api: KubeAPI,
        namespace: str,
        selector: str,
        *,
        backoff: Backoff | None = None,
        watch_timeout: tuple[int, int] = (240, 360),
        coalesce: float = COALESCE_SECONDS,
        pending: PendingCap | None = None,
        starts: bool = False,
    ) -> None:
        self.api = api
        # The pod-start check is on: decode the progress event that counts a ready pod.
        self.starts = starts
        # MAX_PENDING_JOBS: told of every Job version kept and every Job gone, to count those
        # not yet running. Then progress events (a pod turning ready) are decoded too.
        self.pending = pending
        self.namespace = namespace
        self.selector = selector
        self.backoff = backoff or KUBE_WATCH
        self.watch_timeout = watch_timeout  # server-side timeoutSeconds, drawn per watch
        self.coalesce = coalesce
        self.resource_version = ""
        self.stats = TrackerStats()
        self._jobs: dict[str, _Kept] = {}
        self._waiters = Waiters()
        # uids of the Jobs not ended whose status has counted a ready pod (monotonic: a later
        # ready 0 means the pod stopped, not that it never started).
        self._ready: set[str] = set()
        self._synced = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._checks: set[asyncio.Task[None]] = set()

    # ---- lifecycle ----

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"job-tracker-{self.namespace}")

    async def close(self) -> None:
        tasks = [t for t in (self._task, *self._checks) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._task = None
        self._waiters.cancel_all()

    async def synced(self, within: float | None = None) -> bool:
        """True once the first list has been read (False if that takes longer than `within` seconds)."""
        try:
            await asyncio.wait_for(self._synced.wait(), within)
        except TimeoutError:
            return False
        return True

    # ---- what the backend asks ----

    def latest(self, name: str) -> Job | None:
        kept = self._jobs.get(name)
        return None if kept is None else kept.job()

    def jobs(self) -> list[Job]:
        return [kept.job() for kept in self._jobs.values()]

    def count(self) -> int:
        return len(self._jobs)

    def started(self, name: str, uid: str) -> bool:
        """Whether a version of the Job seen here counted a ready pod: its main container ran
        (see `has_ready_pod`)."""
        kept = self._jobs.get(name)
        return kept is not None and kept.uid == uid and uid in self._ready

    def waiting(self) -> list[str]:
        """Names of the Jobs someone is waiting for."""
        return self._waiters.names()

    def observe(self, job: Mapping[str, Any]) -> None:
        """A Job the backend just created or read: known before the watch reports it."""
        meta = job.get("metadata") or {}
        current = self._jobs.get(meta.get("name", ""))
        if current is None or _newer(job, current.job(status=False)):
            self._store(job)  # _store keeps a slim copy: the caller's object is left as it was

    def ending(self, name: str, uid: str = "", until: float | None = None) -> asyncio.Future[Job | None]:
        """The Job once it has completed or failed; None if it is deleted before that;
        TimeoutError at `until` (epoch seconds) if it has not ended by then. A plain future,
        not a coroutine, and no timer of its own (waiters.py): 50,000 Jobs in flight each with
        a task, a timeout and their frames were much of the tracking's memory."""
        future: asyncio.Future[Job | None] = asyncio.get_running_loop().create_future()
        kept = self._jobs.get(name)
        current = None if kept is None else kept.job()
        if current is not None and (not uid or _uid(current) == uid) and is_finished(current):
            future.set_result(current)
            return future
        self._waiters.add(name, uid, future, until)
        return future

    # ---- the watch loop ----

    async def _run(self) -> None:
        failures = 0
        need_list = True
        listed_at = 0.0
        while True:
            try:
                if need_list:
                    listed_at = time.monotonic()
                    await self._list()
                    need_list = False
                began = time.monotonic()
                await self._watch()
                # A watch that ends at once without error is suspicious (a proxy closing it,
                # an empty answer): back off as for a failure, or this loop would spin.
                if time.monotonic() - began < 1.0:
                    failures += 1
                    await asyncio.sleep(self.backoff.delay(failures - 1))
                else:
                    failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if _status(exc) == 410:
                    self.stats.expired += 1
                    log.info("job watch in %s: history expired (410); listing again", self.namespace)
                    if time.monotonic() - listed_at < 1.0:  # again right after a list: no spinning
                        failures += 1
                        await asyncio.sleep(self.backoff.delay(failures - 1))
                    need_list = True
                    continue
                self.stats.errors += 1
                failures += 1
                delay = self.backoff.delay(failures - 1)
                log.warning(
                    "job watch in %s failed (%s); retrying in %.1f s",
                    self.namespace,
                    _describe(exc),
                    delay,
                )
                await asyncio.sleep(delay)

    async def _list(self) -> None:
        jobs: dict[str, _Kept] = {}
        # uid of each Job not ended -> whether its status counts a ready pod, and whether each
        # Job is pending: read from the listed object while it is at hand (as _store does), not
        # from a copy built again for it (its status decoded from the kept JSON).
        running: dict[str, bool] = {}
        meta: Job = {}
        async for page in self.api.job_pages(self.namespace, self.selector, LIST_PAGE):
            for item in page.get("items") or []:
                kept = jobs[item["metadata"]["name"]] = _Kept.of(item)
                if not is_finished(item):
                    running[kept.uid] = has_ready_pod(item)
                if self.pending is not None:
                    self.pending.observed(item)
            meta = page.get("metadata") or {}
        self.stats.lists += 1
        self.resource_version = str(meta.get("resourceVersion") or "")
        if self.pending is not None:
            for name in set(self._jobs) - set(jobs):
                self.pending.gone(name)
        self._ready = {uid for uid, ready in running.items() if ready or uid in self._ready}
        self._jobs = jobs
        self._synced.set()
        for name in self._waiters.names():
            found = jobs.get(name)
            if found is not None:
                self._resolve(name, found.job())
            else:
                # Not listed: deleted while we were not watching, or created after the list's
                # snapshot. Only a read tells which.
                check = asyncio.create_task(self._check_gone(name))
                self._checks.add(check)
                check.add_done_callback(self._checks.discard)

    async def _watch(self) -> None:
        self.stats.watches += 1
        timeout = random.randint(*self.watch_timeout)
        async with watching(
            self.api.batch.list_namespaced_job,
            self.namespace,
            self.selector,
            self.resource_version,
            timeout,
            self.coalesce,
        ) as lines:
            async for line in lines:
                if (
                    not _is_progress(line)
                    or (self.pending is not None and self.pending.pending)
                    or (self.starts and _READY_MARKER.search(line) is not None)
                ):
                    self._event(line)

    def _event(self, line: bytes) -> None:
        """One line of the watch stream (an error Status raises ApiError: watchstream.py)."""
        self._apply(*watch_event(line))

    def _apply(self, kind: str, obj: Job) -> None:
        meta = obj.get("metadata") or {}
        version = meta.get("resourceVersion")
        if version:
            self.resource_version = str(version)
        name = meta.get("name")
        if kind == "BOOKMARK" or not name:
            return
        if kind == "DELETED":
            gone = self._jobs.get(name)
            if gone is not None and gone.uid == meta.get("uid"):
                del self._jobs[name]
                self._ready.discard(gone.uid)
                if self.pending is not None:
                    self.pending.gone(name)
            self._resolve_deleted(name, str(meta.get("uid") or ""), dict(obj))
            return
        if kind in ("ADDED", "MODIFIED"):
            kept = self._store(obj)
            if is_finished(obj):
                self._resolve(name, kept.job())

    # ---- waiters ----

    def _store(self, seen: Mapping[str, Any]) -> _Kept:
        # Read from `seen` (the kept copy has the same status): a copy is made only to be handed out.
        kept = _Kept.of(seen)
        name = seen["metadata"]["name"]
        replaced = self._jobs.get(name)
        self._jobs[name] = kept
        if replaced is not None and replaced.uid != kept.uid:
            self._ready.discard(replaced.uid)
        if is_finished(seen):
            self._ready.discard(kept.uid)
        elif has_ready_pod(seen):
            self._ready.add(kept.uid)
        if self.pending is not None:
            self.pending.observed(seen)
        return kept

    def _resolve(self, name: str, job: Job) -> None:
        if not is_finished(job):
            return
        for future in self._waiters.take(name, _uid(job)):
            future.set_result(job)

    def _resolve_deleted(self, name: str, uid: str, final: Job, *, any_uid: bool = False) -> None:
        for future in self._waiters.take(name, uid, any_uid=any_uid):
            # A Job deleted after it finished still tells how it ended.
            future.set_result(final if is_finished(final) else None)

    async def _check_gone(self, name: str) -> None:
        try:
            job = await self.api.call(
                f"reading Job {self.namespace}/{name}",
                self.api.batch.read_namespaced_job,
                name,
                self.namespace,
            )
        except ApiError as exc:
            if exc.status == 404 and name not in self._jobs:
                # No Job of that name at all: every waiter for it, whatever its uid, lost it.
                self._resolve_deleted(name, "", {}, any_uid=True)
            elif exc.status != 404:
                log.warning("checking Job %s/%s after a re-list: %s", self.namespace, name, exc)
            return
        self.observe(job)
        current = self._jobs.get(name)
        if current is not None:
            self._resolve(name, current.job())


def _is_progress(line: bytes) -> bool:
    """An added or modified Job that has not ended (see the module's docstring)."""
    return line.startswith(PROGRESS_PREFIXES) and not any(m in line for m in _ENDING_MARKERS)


def has_ready_pod(job: Mapping[str, Any]) -> bool:
    """status.ready >= 1: the Job controller counted an active pod with the Ready condition
    (kubernetes/kubernetes pkg/controller/job/job_controller.go, countReadyPods over the active
    pods; pkg/api/v1/pod/util.go IsPodReady). Ready needs every container ready, which a
    container without a readiness probe is once it runs: the pod has started. API servers before
    1.24 have no `ready` (the JobReadyPods gate, GA in 1.29), and `active` alone counts pending
    pods too: for them this is False and the pod is read as before."""
    ready = (job.get("status") or {}).get("ready")
    return isinstance(ready, int) and ready >= 1


def _uid(job: Mapping[str, Any]) -> str:
    return str((job.get("metadata") or {}).get("uid") or "")


def _newer(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether `a` is a later version than `b` (resourceVersions compared as numbers when they are)."""
    if _uid(a) != _uid(b):
        return True
    va = str((a.get("metadata") or {}).get("resourceVersion") or "")
    vb = str((b.get("metadata") or {}).get("resourceVersion") or "")
    if va.isdigit() and vb.isdigit():
        return int(va) > int(vb)
    return va != vb


# What the backend reads of a Job it tracks (its wait, the pod-start check, the outcome, the
# live log): the rest is dropped. 50,000 Jobs held whole (their labels, their event annotation,
# their spec) took about 5 KB each, most of the tracking's memory (bench/tracking.py); held as
# the dicts below, still about 1.2 KB each, dicts mostly: hence _Kept. An ended Job's status
# (its conditions, six timestamps) held as parsed was another 1 KB and more in small objects
# spread over the memory its watch event was read into: it is held as its JSON text, read back
# when asked for (when the Job ends, and by `latest`); repeated strings (the namespace, label
# names, timestamps of the same second) are held once.
_KEPT_METADATA = ("name", "namespace", "uid", "resourceVersion", "creationTimestamp", "deletionTimestamp")
_SHARED_METADATA = frozenset({"namespace", "creationTimestamp", "deletionTimestamp"})
_ABSENT: Any = object()


def _shared(value: Any) -> Any:
    return sys.intern(value) if type(value) is str else value


@dataclass(frozen=True, slots=True)
class _Kept:
    """A Job as the tracker holds it, in a few tuples and its status's JSON; job() gives it
    back as the API's shape, {"metadata": the fields above, "spec": {"selector": ...},
    "status": ...}, each call a new object."""

    metadata: tuple[Any, ...]  # the values of _KEPT_METADATA, _ABSENT where the Job has none
    selector: Any  # spec.selector; a plain matchLabels as its pairs; _ABSENT: no selector
    has_spec: bool
    status: bytes | None  # its JSON; None: none

    @classmethod
    def of(cls, job: Mapping[str, Any]) -> _Kept:
        meta = job.get("metadata")
        meta = meta if isinstance(meta, dict) else {}
        values = tuple(
            _shared(meta[k]) if k in _SHARED_METADATA and k in meta else meta.get(k, _ABSENT)
            for k in _KEPT_METADATA
        )
        spec = job.get("spec")
        selector = spec.get("selector", _ABSENT) if isinstance(spec, dict) else _ABSENT
        if isinstance(selector, dict) and selector.keys() == {"matchLabels"}:
            labels = selector["matchLabels"]
            if isinstance(labels, dict):
                # The labels' values are the Job's name and uid: the same string objects, once.
                same = {v: v for v in values[:3] if type(v) is str}
                selector = tuple((_shared(k), same.get(v, v)) for k, v in labels.items())
        status = job.get("status", _ABSENT)
        text = None if status is _ABSENT else fastjson.dumps(status)
        return cls(values, selector, isinstance(spec, dict), text)

    @property
    def uid(self) -> str:
        uid = self.metadata[2]
        return "" if uid is _ABSENT or not uid else str(uid)

    def job(self, status: bool = True) -> Job:
        """`status=False`: without it, for a reader of the metadata alone (no JSON read back)."""
        job: Job = {
            "metadata": {k: v for k, v in zip(_KEPT_METADATA, self.metadata, strict=True) if v is not _ABSENT}
        }
        if self.has_spec:
            spec: Job = {}
            if isinstance(self.selector, tuple):
                spec["selector"] = {"matchLabels": dict(self.selector)}
            elif self.selector is not _ABSENT:
                spec["selector"] = self.selector
            job["spec"] = spec
        if status and self.status is not None:
            job["status"] = fastjson.loads(self.status)
        return job


def _status(exc: BaseException) -> int:
    if isinstance(exc, ApiException):
        return int(exc.status or 0)
    if isinstance(exc, ApiError):
        return exc.status
    return 0


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ApiException):
        return f"HTTP {exc.status} {exc.reason}"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
