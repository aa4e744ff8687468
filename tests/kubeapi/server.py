"""A stateful fake Kubernetes API server on loopback, for tests and benchmarks.

It speaks the real REST and watch protocol, so the real ``kubernetes_asyncio``
client (config loading, ApiClient, BatchV1Api/CoreV1Api, ``watch.Watch``) runs
against it unchanged. In tests it runs inside the test's event loop (see
``tests/kubeapi/fixtures.py``); for benchmarks it runs as a process::

    python -m tests.kubeapi.server --port 8001 --auto-complete-delay 0.5,5

which prints its URL on the first line of stdout.

Why not kmock
-------------
kmock 0.8 (installed; by Kopf's author) was evaluated first. Its
``KubernetesEmulator`` is an in-memory object store behind a request-matching
DSL, and it lacks what job tracking is tested against: no resourceVersion at
all (lists answer ``metadata.resourceVersion: '...'``, objects get none), no
uid/creationTimestamp, no labelSelector or fieldSelector, watches ignore
``resourceVersion`` (every watch replays all objects as ADDED, then a live bus),
hence no replay of history, no 410 Expired and no compaction; no
``timeoutSeconds``, no bookmarks; 409s carry reason ``Object Already Exists``
instead of ``AlreadyExists``; and every request scans all objects of all
resources. Bolting all of that onto its DSL would be more code than this
in-repo fake, so this is a small aiohttp server of its own.

What it serves
--------------
batch/v1 jobs, v1 pods (+ ``pods/log``), v1 events, v1 secrets, v1 configmaps:
namespaced create/get/list/watch/patch/update/delete, plus all-namespace
list/watch (``/apis/batch/v1/jobs``). ``/version`` and the discovery documents
(``/api``, ``/apis``, ``/api/v1``, ``/apis/batch/v1``) are served too, although
the generated API classes of kubernetes_asyncio never ask for them (only its
dynamic client does). Namespaces are not objects: any namespace exists.

Protocol details kept
---------------------
* Errors are ``kind: Status`` bodies (reason NotFound, AlreadyExists, Conflict,
  Invalid, Expired, BadRequest, InternalError, ...) with the real message shapes.
* metadata.resourceVersion is one global counter (a string); objects get uid,
  creationTimestamp, generation; status is a subresource for jobs and pods.
* list: ``kind: JobList``, ``metadata.resourceVersion``, items without
  kind/apiVersion, labelSelector (``=``, ``==``, ``!=``, ``in``, ``notin``,
  exists, ``!``, ``<``, ``>``), fieldSelector (the field labels of each resource;
  others are 400), ``limit``/``continue`` pagination (a continue token older
  than the retained history is 410 Expired), ``resourceVersionMatch=Exact``.
* watch (``?watch=1|true``): chunked newline-delimited JSON events. No
  resourceVersion or ``0``: synthetic ADDED for the current objects, then live
  events. resourceVersion N: replay of the retained history after N, then live.
  N older than the retained history (see ``compact()``): HTTP 200 and one ERROR
  event with a Status 410 reason Expired, as a real API server does. Selector
  transitions are events too (an object that stops matching arrives as DELETED).
  ``allowWatchBookmarks`` (periodic BOOKMARKs, or ``send_bookmarks()``),
  ``sendInitialEvents`` (with the ``k8s.io/initial-events-end`` bookmark),
  ``timeoutSeconds`` (the stream ends cleanly).
* create validates against the official schema (``kubernetes_validate``, strict,
  Kubernetes 1.37) and the API server's semantic rules; failures are 422 Invalid
  with causes, and are recorded in ``validation_errors``. Jobs get the API
  server's defaults (generated selector, controller-uid/job-name pod labels,
  backoffLimit 6, ...). batch/v1 Jobs deleted without propagationPolicy orphan
  their pods, as on a real cluster; Foreground/Orphan deletions go through the
  ``deletionTimestamp`` + finalizer dance (MODIFIED, then DELETED).

Deliberate simplifications: schema violations (unknown or mistyped fields) are
422 Invalid, where a real server answers 400 for strict decoding errors or drops
unknown fields with a warning; strategic merge patch merges only the usual keyed
lists; no admission, RBAC, quotas or server-side apply (415).

The Job controller is simulated by test controls: ``set_job_running``,
``set_job_succeeded`` and ``set_job_failed`` (pod, container statuses, logs,
conditions, events), or ``auto_complete`` for benchmarks.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import bisect
import contextlib
import copy
import gc
import json
import logging
import random
import signal
import time
import traceback
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from aiohttp import web

from tests.kubeapi.patches import apply_patch
from tests.kubeapi.resources import (
    BY_PATH,
    JOBS,
    PODS,
    SECRETS,
    VERSION_INFO,
    ApiError,
    Obj,
    ResourceType,
    discovery,
    resolve,
    status_object,
)
from tests.kubeapi.selectors import Selector
from tests.kubeapi.validation import (
    FieldError,
    ValidationMode,
    invalid,
    schema_error,
    semantic_errors,
)
from tests.kubeapi.workloads import (
    FAILURE_MESSAGES,
    default_job,
    default_pod_spec,
    event_object,
    job_condition,
    new_pod,
    running_pod_status,
    terminated_pod_status,
    timestamp,
)

log = logging.getLogger(__name__)

INITIAL_RESOURCE_VERSION = 1000
_POD_SUFFIX = "bcdfghjklmnpqrstvwxz2456789"  # what the API server's generateName uses
_CONTINUE_EXPIRED = (
    "The provided continue parameter is too old to display a consistent list result. You can"
    " start a new list without the continue parameter, or use the continue token in this"
    " response to retrieve the remainder of the results. Continuing with the provided token"
    " results in an inconsistent list - objects that were created, modified, or deleted"
    " between the time the first chunk was returned and now may show up in the list."
)

LogText = str | Mapping[str, str]
EventSpec = str | Mapping[str, Any]


@dataclass
class RequestRecord:
    """One API request as the server saw it (``status`` is filled in once answered)."""

    method: str
    path: str
    query: dict[str, str]
    watch: bool = False
    status: int | None = None


@dataclass
class FaultRule:
    """``fail_next``: answer the next ``remaining`` matching requests with an error Status."""

    remaining: int
    status: int = 500
    method: str | None = None
    path_contains: str | None = None
    watch: bool | None = None
    reason: str | None = None
    message: str | None = None

    def matches(self, record: RequestRecord) -> bool:
        return (
            self.remaining > 0
            and (self.method is None or self.method.upper() == record.method)
            and (self.path_contains is None or self.path_contains in record.path)
            and (self.watch is None or self.watch == record.watch)
        )

    def error(self) -> ApiError:
        headers = {"Retry-After": "1"} if self.status in (429, 503) else None
        message = self.message or f"injected failure (HTTP {self.status})"
        return ApiError(self.status, message, reason=self.reason, headers=headers)


@dataclass(frozen=True)
class ValidationFailure:
    """A create or update the server refused with 422 Invalid."""

    kind: str
    namespace: str | None
    name: str
    message: str
    errors: tuple[str, ...]
    body: Any


@dataclass(frozen=True)
class AutoComplete:
    """Jobs finish by themselves: running at once, terminal after ``delay`` seconds.

    ``delay`` is a number or a (low, high) range drawn uniformly per Job; ``outcome`` is
    "succeeded", "failed" or the probability (0..1) that a Job fails.
    """

    delay: float | tuple[float, float] = 0.0
    outcome: Literal["succeeded", "failed"] | float = "succeeded"
    log: str = ""
    running: bool = True

    def draw_delay(self, rng: random.Random) -> float:
        if isinstance(self.delay, tuple):
            return rng.uniform(*self.delay)
        return float(self.delay)

    def draw_failure(self, rng: random.Random) -> bool:
        if isinstance(self.outcome, str):
            return self.outcome == "failed"
        return rng.random() < self.outcome


@dataclass(eq=False)
class _Event:
    """One change in the history: the global resourceVersion it got and the object before."""

    rv: int
    plural: str
    namespace: str
    type: str  # ADDED, MODIFIED, DELETED
    obj: Obj
    prev: Obj | None
    _lines: dict[str, bytes] = field(default_factory=dict)

    def line(self, kind: str, obj: Obj) -> bytes:
        if obj is not self.obj:
            return _event_line(kind, obj)
        if kind not in self._lines:
            self._lines[kind] = _event_line(kind, obj)
        return self._lines[kind]


@dataclass(frozen=True)
class _Stop:
    abort: bool


@dataclass(frozen=True)
class _Bookmark:
    rv: int


def _clone(obj: Any) -> Any:
    """A deep copy of JSON data (several times faster than copy.deepcopy)."""
    return json.loads(json.dumps(obj))


def _event_line(kind: str, obj: Obj) -> bytes:
    return json.dumps({"type": kind, "object": obj}, separators=(",", ":")).encode() + b"\n"


def _with_rv(obj: Obj, rv: str) -> Obj:
    return {**obj, "metadata": {**obj["metadata"], "resourceVersion": rv}}


class _Watch:
    """One open watch stream: its filter and its queue of changes to send."""

    def __init__(self, rt: ResourceType, namespace: str | None, selector: Selector, bookmarks: bool):
        self.rt = rt
        self.namespace = namespace
        self.selector = selector
        self.bookmarks = bookmarks
        self.queue: asyncio.Queue[_Event | _Stop | _Bookmark] = asyncio.Queue()

    def offer(self, ev: _Event) -> None:
        if self.namespace is None or ev.namespace == self.namespace:
            self.queue.put_nowait(ev)

    def translate(self, ev: _Event) -> tuple[str, Obj] | None:
        """What this watcher sees of a change, with selector transitions (the watch cache's rule)."""
        if self.namespace is not None and ev.namespace != self.namespace:
            return None
        if not self.selector:
            return ev.type, ev.obj
        now_ok = ev.type != "DELETED" and self.selector.matches(ev.obj)
        before_ok = ev.prev is not None and self.selector.matches(ev.prev)
        if now_ok:
            return ("MODIFIED" if before_ok else "ADDED"), ev.obj
        if before_ok:
            assert ev.prev is not None
            if ev.type == "DELETED":
                return "DELETED", ev.obj
            return "DELETED", _with_rv(ev.prev, ev.obj["metadata"]["resourceVersion"])
        return None


def _flag(value: str | None) -> bool:
    return value is not None and value.lower() in ("1", "true")


def _int_param(q: Mapping[str, str], name: str) -> int | None:
    text = q.get(name)
    if text in (None, ""):
        return None
    try:
        return int(text)
    except ValueError:
        raise ApiError(400, f'{name}: Invalid value: "{text}": must be an integer') from None


def _key(obj: Obj) -> tuple[str, str]:
    meta = obj["metadata"]
    return meta.get("namespace") or "", meta["name"]


def _strip_type(obj: Obj) -> Obj:
    return {k: v for k, v in obj.items() if k not in ("kind", "apiVersion")}


def _json_response(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps(body, separators=(",", ":")).encode(),
        content_type="application/json",
        headers=headers,
    )


def _encode_continue(rv: int, last: Obj) -> str:
    ns, name = _key(last)
    token = {"v": "meta.k8s.io/v1", "rv": rv, "start": f"{ns}/{name}\u0000"}
    return base64.urlsafe_b64encode(json.dumps(token).encode()).decode().rstrip("=")


def _decode_continue(token: str) -> tuple[int, tuple[str, str]]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        ns, _, name = data["start"].rstrip("\u0000").partition("/")
        return int(data["rv"]), (ns, name)
    except (ValueError, KeyError, TypeError, AttributeError):
        raise ApiError(400, "continue key is not valid: incorrect encoded start resourceVersion") from None


class FakeKubeAPI:
    """The fake API server and the handle tests drive it with.

    Use ``async with FakeKubeAPI() as api:`` (or ``await api.start()`` / ``await api.stop()``);
    ``api.url`` is where it listens. All test controls are plain synchronous methods; each
    change they make is a committed change with its own resourceVersion and watch event.

    Options: ``validation`` "full" (``kubernetes_validate.validate`` per object, 12 ms),
    "cached" (the same schema and validator, built once: 0.25 ms) or "off";
    ``auto_complete`` an ``AutoComplete`` or ``(delay, outcome)``; ``token`` a bearer token
    every request must carry (401 otherwise); ``history_limit`` changes kept for watches
    (beyond it the older half is compacted); ``bookmark_interval`` seconds between BOOKMARKs
    on watches that allow them; ``gc_delay`` seconds before the garbage collector acts on a
    delete; ``seed`` for uids, pod names and auto-complete draws.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        validation: ValidationMode = "full",
        auto_complete: AutoComplete | tuple[float | tuple[float, float], str | float] | None = None,
        token: str | None = None,
        history_limit: int | None = 100_000,
        bookmark_interval: float = 60.0,
        gc_delay: float = 0.0,
        seed: int | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.validation: ValidationMode = validation
        if isinstance(auto_complete, tuple):
            delay, outcome = auto_complete
            auto_complete = AutoComplete(delay=delay, outcome=outcome)  # type: ignore[arg-type]
        self.auto_complete: AutoComplete | None = auto_complete
        self.token = token
        self.history_limit = history_limit
        self.bookmark_interval = bookmark_interval
        self.gc_delay = gc_delay
        self.request_log: list[RequestRecord] = []
        # Wall-clock time each Job create arrived, for the latency benchmark.
        self.job_arrivals: dict[tuple[str, str], float] = {}
        self.validation_errors: list[ValidationFailure] = []
        self.server_errors: list[str] = []  # bugs of the fake itself (tracebacks)
        self._rng = random.Random(seed)
        self._rv = INITIAL_RESOURCE_VERSION
        self._compacted = INITIAL_RESOURCE_VERSION  # history holds the changes after this one
        self._objects: dict[str, dict[str, dict[str, Obj]]] = {}  # plural -> ns -> name -> obj
        self._label_index: dict[str, dict[tuple[str, str], set[tuple[str, str]]]] = {}
        self._owned: dict[str, set[tuple[str, str, str]]] = {}  # owner uid -> (plural, ns, name)
        self._history: list[_Event] = []
        self._history_rvs: list[int] = []
        self._watches: dict[str, set[_Watch]] = {}
        self._logs: dict[tuple[str, str, str], str] = {}
        self._faults: list[FaultRule] = []
        self._timers: dict[str, list[asyncio.Handle]] = {}
        self._gc_handles: set[asyncio.Handle] = set()
        self._names = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None

    # -----------------------------------------------------------------------------------------
    # Lifecycle

    async def start(self) -> FakeKubeAPI:
        self._loop = asyncio.get_running_loop()
        app = web.Application(client_max_size=3 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        for handles in self._timers.values():
            for handle in handles:
                handle.cancel()
        self._timers.clear()
        for handle in self._gc_handles:
            handle.cancel()
        self._gc_handles.clear()
        self.drop_watches()
        await asyncio.sleep(0)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeKubeAPI:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def kubeconfig(self, namespace: str = "default") -> Obj:
        """A kubeconfig (as a dict) whose current context points at this server."""
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake", "user": {"token": self.token or "fake-token"}}],
            "contexts": [
                {"name": "fake", "context": {"cluster": "fake", "user": "fake", "namespace": namespace}}
            ],
            "current-context": "fake",
        }

    def write_kubeconfig(self, path: str | Path, namespace: str = "default") -> Path:
        path = Path(path)
        path.write_text(yaml.safe_dump(self.kubeconfig(namespace)))
        return path

    # -----------------------------------------------------------------------------------------
    # Test controls: state

    @property
    def resource_version(self) -> int:
        """The latest resourceVersion handed out."""
        return self._rv

    def objects(
        self, kind: str, namespace: str | None = None, *, label_selector: str | None = None
    ) -> list[Obj]:
        """Copies of the stored objects of a kind (``"jobs"``, ``"Job"``, ``"pod"``...), sorted."""
        rt = resolve(kind)
        selector = Selector.parse(rt, label_selector, None)
        return [_clone(obj) for obj in self._select(rt, namespace, selector)]

    def get(self, kind: str, namespace: str, name: str) -> Obj | None:
        obj = self._lookup(resolve(kind), namespace, name)
        return _clone(obj) if obj is not None else None

    def create(self, kind: str, obj: Obj, namespace: str | None = None, *, validate: bool = True) -> Obj:
        """Create an object as an API client would (e.g. a Job left over by a previous run)."""
        rt = resolve(kind)
        ns = namespace or obj.get("metadata", {}).get("namespace") or "default"
        return _clone(self._create(rt, ns, obj, validate=validate))

    def patch(self, kind: str, namespace: str, name: str, patch: Obj) -> Obj:
        """JSON-merge-patch an object, status included (a controller's write)."""
        rt = resolve(kind)
        old = self._require(rt, namespace, name)
        new = apply_patch("application/merge-patch+json", old, patch)
        return _clone(self._commit(rt, namespace, name, new))

    def delete(self, kind: str, namespace: str, name: str) -> Obj | None:
        """Remove an object at once (no finalizers, no garbage collection)."""
        rt = resolve(kind)
        if self._lookup(rt, namespace, name) is None:
            return None
        return _clone(self._remove(rt, namespace, name))

    def job_pod(self, namespace: str, job_name: str) -> Obj | None:
        """The (latest) pod of a Job, or None."""
        job = self._lookup(JOBS, namespace, job_name)
        pod = self._pod_of(job) if job is not None else None
        return _clone(pod) if pod is not None else None

    def set_pod_log(self, namespace: str, pod: str, container: str, text: str) -> None:
        self._logs[(namespace, pod, container)] = text

    def add_event(
        self,
        namespace: str,
        kind: str,
        name: str,
        reason: str,
        message: str,
        type: str = "Normal",
    ) -> Obj:
        """Record a core/v1 Event about an object (``kind`` "Job" or "Pod", ...)."""
        involved = self._require(resolve(kind), namespace, name)
        return _clone(self._emit_event(involved, type, reason, message, "kubelet"))

    # -----------------------------------------------------------------------------------------
    # Test controls: the Job controller

    def set_job_running(self, namespace: str, name: str) -> Obj:
        """The Job's pod runs: pod phase Running, Job status active=1, ready=1, startTime."""
        return _clone(self._run(namespace, name))

    def set_job_succeeded(
        self,
        namespace: str,
        name: str,
        *,
        log: LogText = "",
        init_log: LogText = "",
        events: Sequence[EventSpec] = (),
    ) -> Obj:
        """The Job completes: its pod (created if need be) Succeeded, every container exit 0;
        conditions SuccessCriteriaMet then Complete (two updates, as the Job controller makes
        them), succeeded=1, completionTime; a Normal "Completed" event on the Job.

        ``log``/``init_log``: the text of the (first) main / the (last) init container, or a
        mapping container name -> text. ``events``: more events, strings (Normal, on the pod)
        or mappings (``reason``, ``message``, ``type``, ``involvedObject``: "pod" or "job").
        Returns the Job."""
        return _clone(
            self._finish(
                namespace,
                name,
                failed=False,
                reason="CompletionsReached",
                message="Reached expected number of completions",
                log=log,
                init_log=init_log,
                exit_code=0,
                init_exit_code=0,
                events=events,
            )
        )

    def set_job_failed(
        self,
        namespace: str,
        name: str,
        *,
        reason: str = "BackoffLimitExceeded",
        message: str | None = None,
        log: LogText = "",
        init_log: LogText = "",
        exit_code: int = 1,
        init_exit_code: int = 0,
        events: Sequence[EventSpec] = (),
    ) -> Obj:
        """The Job fails: its pod Failed (main containers exit ``exit_code``; or, when
        ``init_exit_code`` is non-zero, the last init container exits with it and the main
        ones stay waiting in PodInitializing, so reading their log is a 400), conditions
        FailureTarget then Failed with ``reason``/``message`` (the controller's message for
        BackoffLimitExceeded/DeadlineExceeded by default), failed=1, a Warning event
        ``reason`` on the Job. ``log``/``init_log``/``events`` as for ``set_job_succeeded``,
        except that string events are Warnings with ``reason``. Returns the Job."""
        return _clone(
            self._finish(
                namespace,
                name,
                failed=True,
                reason=reason,
                message=message or FAILURE_MESSAGES.get(reason, reason),
                log=log,
                init_log=init_log,
                exit_code=exit_code,
                init_exit_code=init_exit_code,
                events=events,
            )
        )

    # -----------------------------------------------------------------------------------------
    # Test controls: faults, history, watches, requests

    def compact(self) -> int:
        """Drop the watch history: watches and continue tokens from before now get 410."""
        self._history.clear()
        self._history_rvs.clear()
        self._compacted = self._rv
        return self._rv

    def fail_next(
        self,
        n: int = 1,
        status: int = 500,
        method: str | None = None,
        path_contains: str | None = None,
        *,
        watch: bool | None = None,
        reason: str | None = None,
        message: str | None = None,
    ) -> FaultRule:
        """Answer the next ``n`` requests matching method/path (and watch-ness) with an error
        Status of HTTP ``status`` (reason from the code unless given; 429/503 carry Retry-After)."""
        rule = FaultRule(n, status, method, path_contains, watch, reason, message)
        self._faults.append(rule)
        return rule

    def drop_watches(self, *, abort: bool = False) -> int:
        """End every open watch stream: cleanly (the chunked body ends, as on a server-side
        timeout) or, with ``abort``, by resetting the connection. Returns how many."""
        count = 0
        for watches in self._watches.values():
            for w in watches:
                w.queue.put_nowait(_Stop(abort))
                count += 1
        return count

    def send_bookmarks(self) -> int:
        """Send a BOOKMARK now on every watch that allowed bookmarks. Returns how many."""
        count = 0
        for watches in self._watches.values():
            for w in watches:
                if w.bookmarks:
                    w.queue.put_nowait(_Bookmark(self._rv))
                    count += 1
        return count

    @property
    def open_watches(self) -> int:
        return sum(len(w) for w in self._watches.values())

    def requests(
        self,
        method: str | None = None,
        path_contains: str | None = None,
        *,
        watch: bool | None = None,
    ) -> list[RequestRecord]:
        """The logged requests matching method, path substring and watch-ness."""
        return [
            r
            for r in self.request_log
            if (method is None or r.method == method.upper())
            and (path_contains is None or path_contains in r.path)
            and (watch is None or r.watch == watch)
        ]

    def stats(self) -> Obj:
        return {
            "resourceVersion": self._rv,
            "objects": {
                plural: sum(len(names) for names in by_ns.values()) for plural, by_ns in self._objects.items()
            },
            "openWatches": self.open_watches,
            "requests": len(self.request_log),
            "validationErrors": [f.message for f in self.validation_errors],
            "serverErrors": list(self.server_errors),
        }

    # -----------------------------------------------------------------------------------------
    # Store

    def _lookup(self, rt: ResourceType, namespace: str, name: str) -> Obj | None:
        return self._objects.get(rt.plural, {}).get(namespace, {}).get(name)

    def _require(self, rt: ResourceType, namespace: str, name: str) -> Obj:
        obj = self._lookup(rt, namespace, name)
        if obj is None:
            raise rt.not_found(name)
        return obj

    def _commit(self, rt: ResourceType, namespace: str, name: str, new: Obj) -> Obj:
        """Store ``new`` (a fresh dict nobody else holds) as the next resourceVersion."""
        prev = self._lookup(rt, namespace, name)
        self._rv += 1
        new["metadata"]["resourceVersion"] = str(self._rv)
        self._objects.setdefault(rt.plural, {}).setdefault(namespace, {})[name] = new
        self._reindex(rt, namespace, name, prev, new)
        self._record(_Event(self._rv, rt.plural, namespace, "MODIFIED" if prev else "ADDED", new, prev))
        return new

    def _remove(self, rt: ResourceType, namespace: str, name: str) -> Obj:
        prev = self._require(rt, namespace, name)
        self._rv += 1
        final = _with_rv(prev, str(self._rv))
        by_ns = self._objects[rt.plural]
        del by_ns[namespace][name]
        if not by_ns[namespace]:
            del by_ns[namespace]
        self._reindex(rt, namespace, name, prev, None)
        self._record(_Event(self._rv, rt.plural, namespace, "DELETED", final, prev))
        self._forget(rt, final)
        return final

    def _reindex(self, rt: ResourceType, ns: str, name: str, prev: Obj | None, new: Obj | None) -> None:
        index = self._label_index.setdefault(rt.plural, {})
        key = (ns, name)
        old_labels = (prev["metadata"].get("labels") or {}) if prev else {}
        new_labels = (new["metadata"].get("labels") or {}) if new else {}
        if old_labels != new_labels:
            for pair in old_labels.items():
                keys = index.get(pair)
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del index[pair]
            for pair in new_labels.items():
                index.setdefault(pair, set()).add(key)
        ref = (rt.plural, ns, name)
        old_owners = {o["uid"] for o in (prev["metadata"].get("ownerReferences") or [])} if prev else set()
        new_owners = {o["uid"] for o in (new["metadata"].get("ownerReferences") or [])} if new else set()
        for uid in old_owners - new_owners:
            owned = self._owned.get(uid)
            if owned is not None:
                owned.discard(ref)
                if not owned:
                    del self._owned[uid]
        for uid in new_owners - old_owners:
            self._owned.setdefault(uid, set()).add(ref)

    def _record(self, ev: _Event) -> None:
        self._history.append(ev)
        self._history_rvs.append(ev.rv)
        if self.history_limit is not None and len(self._history) > self.history_limit:
            drop = len(self._history) - self.history_limit // 2
            self._compacted = self._history[drop - 1].rv
            del self._history[:drop]
            del self._history_rvs[:drop]
        for w in self._watches.get(ev.plural, ()):
            w.offer(ev)

    def _forget(self, rt: ResourceType, final: Obj) -> None:
        """Side effects of an object's removal: its timers and its logs go too."""
        meta = final["metadata"]
        for handle in self._timers.pop(meta["uid"], []):
            handle.cancel()
        if rt is PODS:
            for c in final["spec"].get("initContainers", []) + final["spec"].get("containers", []):
                self._logs.pop((meta["namespace"], meta["name"], c["name"]), None)

    def _select(self, rt: ResourceType, namespace: str | None, selector: Selector) -> list[Obj]:
        """The current objects matching, sorted by (namespace, name); uses the label index."""
        by_ns = self._objects.get(rt.plural, {})
        candidates: Iterable[Obj]
        equalities = list(selector.labels.equalities())
        if equalities:
            index = self._label_index.get(rt.plural, {})
            keys = min((index.get(pair, set()) for pair in equalities), key=len)
            candidates = [by_ns[ns][name] for ns, name in keys if namespace is None or ns == namespace]
        elif namespace is not None:
            candidates = by_ns.get(namespace, {}).values()
        else:
            candidates = (obj for objs in by_ns.values() for obj in objs.values())
        found = [obj for obj in candidates if not selector or selector.matches(obj)]
        found.sort(key=_key)
        return found

    def _select_at(self, rt: ResourceType, namespace: str | None, selector: Selector, rv: int) -> list[Obj]:
        """The objects as they were at resourceVersion ``rv`` (rolled back through history)."""
        if rv >= self._rv:
            return self._select(rt, namespace, selector)
        state = {_key(obj): obj for obj in self._select(rt, namespace, Selector())}
        start = bisect.bisect_right(self._history_rvs, rv)
        for ev in reversed(self._history[start:]):
            if ev.plural != rt.plural or (namespace is not None and ev.namespace != namespace):
                continue
            key = (ev.namespace, ev.obj["metadata"]["name"])
            if ev.prev is None:
                state.pop(key, None)
            else:
                state[key] = ev.prev
        found = [obj for obj in state.values() if not selector or selector.matches(obj)]
        found.sort(key=_key)
        return found

    def _new_uid(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def _suffix(self) -> str:
        return "".join(self._rng.choice(_POD_SUFFIX) for _ in range(5))

    # -----------------------------------------------------------------------------------------
    # Writes as the API server does them

    def _check_type(self, rt: ResourceType, obj: Obj) -> None:
        kind, api_version = obj.get("kind"), obj.get("apiVersion")
        if (kind or rt.kind) != rt.kind or (api_version or rt.api_version) != rt.api_version:
            raise ApiError(
                400,
                f"the API version in the data ({api_version}) does not match the expected API"
                f" version ({rt.api_version})"
                if kind == rt.kind
                else f"the kind in the data ({kind}) does not match the expected kind ({rt.kind})",
            )
        obj["kind"], obj["apiVersion"] = rt.kind, rt.api_version

    def _validate(self, rt: ResourceType, obj: Obj, old: Obj | None, body: Any) -> None:
        errors: list[FieldError] = []
        schema = schema_error(obj, self.validation)
        if schema is not None:
            errors.append(schema)
        try:
            errors += semantic_errors(rt, obj, old)
        except (AttributeError, TypeError, KeyError):
            if not errors:  # a malformed object the schema check was told not to look at
                errors.append(FieldError("<root>", "Invalid value", None, "malformed object"))
        if errors:
            meta = obj.get("metadata") or {}
            name = meta.get("name") or meta.get("generateName") or ""
            error = invalid(rt, name, errors)
            self.validation_errors.append(
                ValidationFailure(
                    rt.kind, meta.get("namespace"), name, error.message, tuple(map(str, errors)), body
                )
            )
            raise error

    def _create(
        self, rt: ResourceType, namespace: str, body: Any, *, validate: bool = True, dry_run: bool = False
    ) -> Obj:
        arrived = time.time()
        if not isinstance(body, dict) or not isinstance(body.get("metadata", {}), dict):
            raise ApiError(400, "the body of the request is not a valid object")
        obj = _clone(body)
        self._check_type(rt, obj)
        meta = obj.setdefault("metadata", {})
        if meta.get("namespace") not in (None, "", namespace):
            raise ApiError(
                400, "the namespace of the provided object does not match the namespace sent on the request"
            )
        meta["namespace"] = namespace
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = f"{meta['generateName']}{self._suffix()}"
        if validate:
            self._validate(rt, obj, None, body)
        if meta.get("resourceVersion"):
            raise ApiError(500, "resourceVersion should not be set on objects to be created")
        name = meta["name"]
        if rt is JOBS and not dry_run:
            self.job_arrivals.setdefault((namespace, name), arrived)
        if self._lookup(rt, namespace, name) is not None:
            raise rt.already_exists(name)
        for server_field in ("uid", "deletionTimestamp", "deletionGracePeriodSeconds", "managedFields"):
            meta.pop(server_field, None)
        meta["uid"] = self._new_uid()
        meta["creationTimestamp"] = timestamp()
        if rt is JOBS:
            default_job(obj)
        elif rt is PODS:
            default_pod_spec(obj.setdefault("spec", {}))
            obj["status"] = {"phase": "Pending", "qosClass": "BestEffort"}
        elif rt is SECRETS:
            self._default_secret(obj)
        if dry_run:
            return obj
        stored = self._commit(rt, namespace, name, obj)
        if rt is JOBS and self.auto_complete is not None:
            self._schedule_auto_complete(stored)
        return stored

    @staticmethod
    def _default_secret(obj: Obj) -> None:
        obj.setdefault("type", "Opaque")
        string_data = obj.pop("stringData", None) or {}
        if string_data:
            data = obj.setdefault("data", {})
            for key, value in string_data.items():
                data[key] = base64.b64encode(str(value).encode()).decode()

    def _update(
        self, rt: ResourceType, namespace: str, name: str, body: Any, *, dry_run: bool = False
    ) -> Obj:
        """PUT (and PATCH, once the patch is applied): optimistic concurrency, validation,
        generation, status kept from the stored object (a subresource), no-op detection."""
        old = self._require(rt, namespace, name)
        if not isinstance(body, dict) or not isinstance(body.get("metadata", {}), dict):
            raise ApiError(400, "the body of the request is not a valid object")
        new = _clone(body)
        self._check_type(rt, new)
        meta = new.setdefault("metadata", {})
        old_meta = old["metadata"]
        if meta.get("name", name) != name:
            raise ApiError(
                400,
                f"the name of the object ({meta.get('name')}) does not match the name on the URL ({name})",
            )
        if meta.get("namespace") not in (None, "", namespace):
            raise ApiError(
                400, "the namespace of the provided object does not match the namespace sent on the request"
            )
        if meta.get("resourceVersion") not in (None, "", old_meta["resourceVersion"]):
            raise rt.conflict(
                name,
                "the object has been modified; please apply your changes to the latest version and try again",
            )
        if meta.get("uid") not in (None, "", old_meta["uid"]):
            raise rt.conflict(
                name,
                f"Precondition failed: UID in precondition: {meta['uid']}, UID in object meta: {old_meta['uid']}",
            )
        for kept in (
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "generation",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "resourceVersion",
        ):
            if kept in old_meta:
                meta[kept] = old_meta[kept]
        if rt.status_subresource:
            new["status"] = _clone(old.get("status", {}))
        if rt is SECRETS:
            self._default_secret(new)
        self._validate(rt, new, old, body)
        if new.get("spec") != old.get("spec") and "generation" in meta:
            meta["generation"] += 1
        if new == old:
            return old  # a no-op update gets no new resourceVersion
        if dry_run:
            return new
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            return self._remove(rt, namespace, name)
        return self._commit(rt, namespace, name, new)

    def _delete(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        policy: str | None,
        preconditions: Mapping[str, Any],
        dry_run: bool = False,
    ) -> Obj:
        obj = self._require(rt, namespace, name)
        meta = obj["metadata"]
        if preconditions.get("uid") not in (None, meta["uid"]):
            raise rt.conflict(
                name,
                f"Precondition failed: UID in precondition: {preconditions['uid']}, UID in object meta: {meta['uid']}",
            )
        if preconditions.get("resourceVersion") not in (None, meta["resourceVersion"]):
            raise rt.conflict(
                name,
                f"Precondition failed: ResourceVersion in precondition: {preconditions['resourceVersion']},"
                f" ResourceVersion in object meta: {meta['resourceVersion']}",
            )
        # batch/v1 Jobs orphan their pods by default (kubectl asks for Background explicitly).
        policy = policy or ("Orphan" if rt is JOBS else "Background")
        if policy not in ("Orphan", "Foreground", "Background"):
            raise ApiError(
                422,
                f'DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Unsupported value: "{policy}":'
                ' supported values: "Foreground", "Background", "Orphan"',
                reason="Invalid",
            )
        if dry_run:
            return obj
        if meta.get("deletionTimestamp"):
            return obj  # already being deleted
        finalizers = list(meta.get("finalizers") or [])
        gc_finalizer = {"Orphan": "orphan", "Foreground": "foregroundDeletion"}.get(policy)
        if gc_finalizer and gc_finalizer not in finalizers:
            finalizers.append(gc_finalizer)
        if not finalizers:
            final = self._remove(rt, namespace, name)
            self._schedule_gc(self._collect_dependents, meta["uid"])
            if rt is PODS:
                return final  # pods answer with the object, the rest with a Success Status
            details = rt.details(name, uid=meta["uid"])
            return {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": details,
            }
        new = _clone(obj)
        new["metadata"].update(
            deletionTimestamp=timestamp(), deletionGracePeriodSeconds=0, finalizers=finalizers
        )
        stored = self._commit(rt, namespace, name, new)
        if gc_finalizer:
            self._schedule_gc(self._collect_owner, rt, namespace, name, meta["uid"], gc_finalizer)
        return stored

    def _schedule_gc(self, fn: Callable[..., None], *args: Any) -> None:
        loop = self._loop
        if loop is None:
            fn(*args)
            return

        def run() -> None:
            self._gc_handles.discard(handle)
            self._guard(fn, *args)

        handle = loop.call_later(self.gc_delay, run)
        self._gc_handles.add(handle)

    def _collect_dependents(self, owner_uid: str) -> None:
        """Background deletion: the garbage collector deletes what the owner owned."""
        for plural, ns, name in sorted(self._owned.get(owner_uid, set())):
            if self._lookup(resolve(plural), ns, name) is not None:
                self._remove(resolve(plural), ns, name)

    def _collect_owner(self, rt: ResourceType, ns: str, name: str, uid: str, finalizer: str) -> None:
        """Orphan / Foreground deletion: release or delete the dependents, then the owner."""
        for plural, dns, dname in sorted(self._owned.get(uid, set())):
            drt = resolve(plural)
            dependent = self._lookup(drt, dns, dname)
            if dependent is None:
                continue
            if finalizer == "foregroundDeletion":
                self._remove(drt, dns, dname)
            else:
                released = _clone(dependent)
                refs = [r for r in released["metadata"].get("ownerReferences", []) if r["uid"] != uid]
                if refs:
                    released["metadata"]["ownerReferences"] = refs
                else:
                    released["metadata"].pop("ownerReferences", None)
                self._commit(drt, dns, dname, released)
        owner = self._lookup(rt, ns, name)
        if owner is None or owner["metadata"]["uid"] != uid:
            return
        new = _clone(owner)
        finalizers = [f for f in new["metadata"].get("finalizers", []) if f != finalizer]
        if finalizers:
            new["metadata"]["finalizers"] = finalizers
            self._commit(rt, ns, name, new)
        else:
            self._remove(rt, ns, name)

    def _guard(self, fn: Callable[..., Any], *args: Any) -> None:
        try:
            fn(*args)
        except Exception:
            self.server_errors.append(traceback.format_exc())
            log.exception("fake API server: background step failed")

    # -----------------------------------------------------------------------------------------
    # The simulated Job controller

    def _set_status(self, rt: ResourceType, obj: Obj, status: Obj) -> Obj:
        new = copy.copy(obj)
        new["metadata"] = dict(obj["metadata"])  # _commit only sets its resourceVersion
        new["status"] = status
        return self._commit(rt, obj["metadata"]["namespace"], obj["metadata"]["name"], new)

    def _pod_of(self, job: Obj) -> Obj | None:
        pods = []
        for plural, ns, name in self._owned.get(job["metadata"]["uid"], set()):
            if plural == PODS.plural:
                pod = self._lookup(PODS, ns, name)
                if pod is not None:
                    pods.append(pod)
        pods.sort(key=lambda p: int(p["metadata"]["resourceVersion"]))
        return pods[-1] if pods else None

    def _ensure_pod(self, job: Obj, *, running: bool) -> Obj:
        pod = self._pod_of(job)
        ns = job["metadata"]["namespace"]
        if pod is None:
            name = f"{job['metadata']['name']}-{self._suffix()}"
            while self._lookup(PODS, ns, name) is not None:
                name = f"{job['metadata']['name']}-{self._suffix()}"
            pod = new_pod(job, name)
            pod["metadata"].update(uid=self._new_uid(), creationTimestamp=timestamp())
            pod["status"] = {"phase": "Pending", "qosClass": "BestEffort"}
            pod = self._commit(PODS, ns, name, pod)
            self._emit_event(job, "Normal", "SuccessfulCreate", f"Created pod: {name}", "job-controller")
        if running and pod["status"].get("phase") == "Pending":
            pod = self._set_status(PODS, pod, running_pod_status(pod, timestamp()))
        return pod

    def _emit_event(
        self,
        involved: Obj,
        kind: str,
        reason: str,
        message: str,
        component: str,
        extra: Mapping[str, Any] | None = None,
    ) -> Obj:
        self._names += 1
        name = f"{involved['metadata']['name']}.{self._rv:x}{self._names:06x}"
        ns = involved["metadata"]["namespace"]
        event = event_object(name, involved, kind, reason, message, timestamp(), component, extra)
        event["metadata"].update(uid=self._new_uid(), creationTimestamp=timestamp())
        return self._commit(resolve("events"), ns, name, event)

    def _store_logs(self, pod: Obj, key: str, text: LogText) -> None:
        containers = [c["name"] for c in pod["spec"].get(key) or []]
        meta = pod["metadata"]
        texts = (
            dict(text)
            if isinstance(text, Mapping)
            else ({containers[-1 if key == "initContainers" else 0]: text} if containers and text else {})
        )
        for container, value in texts.items():
            if container not in containers:
                raise ValueError(f"pod {meta['name']} has no {key} entry named {container!r}: {containers}")
            self._logs[(meta["namespace"], meta["name"], container)] = value

    def _run(self, namespace: str, name: str) -> Obj:
        job = self._require(JOBS, namespace, name)
        self._ensure_pod(job, running=True)
        job = self._require(JOBS, namespace, name)
        status = _clone(job.get("status") or {})
        status.setdefault("startTime", timestamp())
        status.update(active=1, ready=1, terminating=0, uncountedTerminatedPods={})
        return self._set_status(JOBS, job, status)

    def _finish(
        self,
        namespace: str,
        name: str,
        *,
        failed: bool,
        reason: str,
        message: str,
        log: LogText,
        init_log: LogText,
        exit_code: int,
        init_exit_code: int,
        events: Sequence[EventSpec],
    ) -> Obj:
        job = self._require(JOBS, namespace, name)
        for condition in (job.get("status") or {}).get("conditions") or []:
            if condition["type"] in ("Complete", "Failed") and condition["status"] == "True":
                raise ValueError(f"job {namespace}/{name} already finished ({condition['type']})")
        if not failed:
            exit_code = init_exit_code = 0
        elif exit_code == 0 and init_exit_code == 0:
            exit_code = 1
        now = timestamp()
        pod = self._ensure_pod(job, running=False)
        self._store_logs(pod, "containers", log)
        self._store_logs(pod, "initContainers", init_log)
        pod = self._set_status(PODS, pod, terminated_pod_status(pod, exit_code, init_exit_code, now))
        job = self._require(JOBS, namespace, name)
        status = _clone(job.get("status") or {})
        status.setdefault("startTime", now)
        status.pop("active", None)
        status.update(ready=0, terminating=0, uncountedTerminatedPods={})
        status["failed" if failed else "succeeded"] = status.get("failed" if failed else "succeeded", 0) + 1
        interim = "FailureTarget" if failed else "SuccessCriteriaMet"
        status["conditions"] = [*status.get("conditions", []), job_condition(interim, reason, message, now)]
        job = self._set_status(JOBS, job, status)
        status = _clone(status)
        status["conditions"].append(job_condition("Failed" if failed else "Complete", reason, message, now))
        if not failed:
            status["completionTime"] = now
        job = self._set_status(JOBS, job, status)
        if failed:
            self._emit_event(job, "Warning", reason, message, "job-controller")
        else:
            self._emit_event(job, "Normal", "Completed", "Job completed", "job-controller")
        for spec in events:
            self._custom_event(job, pod, spec, failed, reason)
        return job

    def _custom_event(self, job: Obj, pod: Obj, spec: EventSpec, failed: bool, reason: str) -> None:
        if isinstance(spec, str):
            spec = {"message": spec}
        involved = job if spec.get("involvedObject") == "job" else pod
        self._emit_event(
            involved,
            spec.get("type", "Warning" if failed else "Normal"),
            spec.get("reason", reason if failed else "Started"),
            spec.get("message", ""),
            "kubelet" if involved is pod else "job-controller",
        )

    def _schedule_auto_complete(self, job: Obj) -> None:
        assert self.auto_complete is not None
        if self._loop is None:
            return
        auto = self.auto_complete
        meta = job["metadata"]
        ns, name, uid = meta["namespace"], meta["name"], meta["uid"]

        def current() -> Obj | None:
            found = self._lookup(JOBS, ns, name)
            if found is None or found["metadata"]["uid"] != uid or found["metadata"].get("deletionTimestamp"):
                return None
            return found

        def run() -> None:
            if current() is not None:
                self._run(ns, name)

        def finish() -> None:
            self._timers.pop(uid, None)
            if current() is None:
                return
            if auto.draw_failure(self._rng):
                self.set_job_failed(ns, name, log=auto.log)
            else:
                self.set_job_succeeded(ns, name, log=auto.log)

        handles = [self._loop.call_later(auto.draw_delay(self._rng), self._guard, finish)]
        if auto.running:
            handles.append(self._loop.call_soon(self._guard, run))
        self._timers[uid] = handles

    # -----------------------------------------------------------------------------------------
    # HTTP

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        query = {key: request.query.getone(key) for key in request.query}
        if path.startswith("/_fake/"):
            return await self._control(request, path, query)
        record = RequestRecord(request.method, path, query, watch=_flag(query.get("watch")))
        self.request_log.append(record)
        response: web.StreamResponse
        try:
            if self.token is not None and request.headers.get("Authorization") != f"Bearer {self.token}":
                raise ApiError(401, "Unauthorized")
            for rule in self._faults:
                if rule.matches(record):
                    rule.remaining -= 1
                    raise rule.error()
            response = await self._route(request, record, query)
        except ApiError as e:
            response = _json_response(e.status(), e.code, e.headers)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            self.server_errors.append(traceback.format_exc())
            log.exception("fake API server: %s %s failed", request.method, path)
            response = _json_response(status_object(500, "InternalError", f"fake API server bug: {e!r}"), 500)
        if record.status is None:
            record.status = response.status
        return response

    async def _route(
        self, request: web.Request, record: RequestRecord, q: dict[str, str]
    ) -> web.StreamResponse:
        method, path = request.method, request.path
        if method == "GET":
            path = path.rstrip("/") or "/"  # the client asks for /version/ and /apis/
            if path == "/version":
                return _json_response(VERSION_INFO)
            if path == "/":
                paths = ["/api", "/api/v1", "/apis", "/apis/batch", "/apis/batch/v1", "/version"]
                return _json_response({"paths": paths})
            doc = discovery(path)
            if doc is not None:
                return _json_response(doc)
        rt, ns, name, sub = self._parse_path(path)
        if rt.namespaced and ns is None and (method != "GET" or name is not None):
            raise ApiError(404, "the server could not find the requested resource")
        dry_run = q.get("dryRun") == "All"
        if method == "GET":
            if name is None:
                if record.watch:
                    return await self._watch(request, record, rt, ns, q)
                return _json_response(self._list(rt, ns, q))
            assert ns is not None
            if sub is None or (sub == "status" and rt.status_subresource):
                return _json_response(self._require(rt, ns, name))
            if sub == "log" and rt is PODS:
                return self._log(ns, name, q)
            raise ApiError(404, "the server could not find the requested resource")
        if sub is not None:
            raise ApiError(
                405, f"the server does not allow this method on the requested resource ({method} {sub})"
            )
        assert ns is not None
        if method == "POST" and name is None:
            obj = self._create(rt, ns, await self._body(request), dry_run=dry_run)
            return _json_response(obj, 201)
        if name is None:
            raise ApiError(405, "the server does not allow this method on the requested resource")
        if method == "DELETE":
            options = await self._body(request, optional=True) or {}
            policy = q.get("propagationPolicy") or options.get("propagationPolicy")
            if policy is None and (
                _flag(q.get("orphanDependents")) or options.get("orphanDependents") is True
            ):
                policy = "Orphan"
            if policy is None and (
                q.get("orphanDependents") == "false" or options.get("orphanDependents") is False
            ):
                policy = "Background"
            result = self._delete(rt, ns, name, policy, options.get("preconditions") or {}, dry_run=dry_run)
            return _json_response(result)
        if method == "PATCH":
            old = self._require(rt, ns, name)
            patched = apply_patch(request.content_type, old, await self._body(request))
            return _json_response(self._update(rt, ns, name, patched, dry_run=dry_run))
        if method == "PUT":
            return _json_response(self._update(rt, ns, name, await self._body(request), dry_run=dry_run))
        raise ApiError(405, "the server does not allow this method on the requested resource")

    @staticmethod
    def _parse_path(path: str) -> tuple[ResourceType, str | None, str | None, str | None]:
        parts = [p for p in path.split("/") if p]
        not_found = ApiError(404, "the server could not find the requested resource")
        if len(parts) >= 3 and parts[0] == "api":
            group, version, rest = "", parts[1], parts[2:]
        elif len(parts) >= 4 and parts[0] == "apis":
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise not_found
        namespace = None
        if rest[0] == "namespaces" and len(rest) >= 3:
            namespace, rest = rest[1], rest[2:]
        if len(rest) > 3:
            raise not_found
        rt = BY_PATH.get((group, version, rest[0]))
        if rt is None:
            raise not_found
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        return rt, namespace, name, sub

    @staticmethod
    async def _body(request: web.Request, optional: bool = False) -> Any:
        raw = await request.read()
        if not raw.strip():
            if optional:
                return None
            raise ApiError(400, "the body of the request is empty")
        try:
            return json.loads(raw)
        except ValueError as e:
            raise ApiError(400, f"the body of the request was in an unknown format: {e}") from None

    def _list(self, rt: ResourceType, ns: str | None, q: Mapping[str, str]) -> Obj:
        selector = Selector.parse(rt, q.get("labelSelector"), q.get("fieldSelector"))
        limit = _int_param(q, "limit") or 0
        rv_text = q.get("resourceVersion") or ""
        start: tuple[str, str] | None = None
        if q.get("continue"):
            at, start = _decode_continue(q["continue"])
            if at < self._compacted:
                raise ApiError(410, _CONTINUE_EXPIRED, reason="Expired")
            objs = self._select_at(rt, ns, selector, at)
        elif rv_text not in ("", "0"):
            at = _int_param(q, "resourceVersion") or 0
            if at > self._rv:
                raise ApiError(
                    504,
                    f"Too large resource version: {at}, current: {self._rv}",
                    reason="Timeout",
                    details={
                        "causes": [
                            {"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}
                        ],
                        "retryAfterSeconds": 1,
                    },
                )
            if q.get("resourceVersionMatch") == "Exact":
                if at < self._compacted:
                    raise ApiError(
                        410, f"too old resource version: {at} ({self._compacted})", reason="Expired"
                    )
                objs = self._select_at(rt, ns, selector, at)
            else:  # NotOlderThan: the current state is not older
                at, objs = self._rv, self._select(rt, ns, selector)
        else:
            at, objs = self._rv, self._select(rt, ns, selector)
        if start is not None:
            objs = objs[bisect.bisect_right([_key(o) for o in objs], start) :]
        meta: Obj = {"resourceVersion": str(at)}
        if limit and len(objs) > limit:
            meta["continue"] = _encode_continue(at, objs[limit - 1])
            if not selector:
                meta["remainingItemCount"] = len(objs) - limit
            objs = objs[:limit]
        return {
            "kind": f"{rt.kind}List",
            "apiVersion": rt.api_version,
            "metadata": meta,
            "items": [_strip_type(o) for o in objs],
        }

    def _log(self, ns: str, name: str, q: Mapping[str, str]) -> web.Response:
        pod = self._require(PODS, ns, name)
        containers = [c["name"] for c in pod["spec"].get("containers", [])]
        inits = [c["name"] for c in pod["spec"].get("initContainers", [])]
        container = q.get("container")
        if not container:
            if len(containers) != 1:
                message = f"a container name must be specified for pod {name}, choose one of: [{' '.join(containers)}]"
                if inits:
                    message += f" or one of the init containers: [{' '.join(inits)}]"
                raise ApiError(400, message)
            container = containers[0]
        elif container not in containers + inits:
            raise ApiError(400, f"container {container} is not valid for pod {name}")
        status = pod.get("status") or {}
        statuses = {
            s["name"]: s
            for s in status.get("initContainerStatuses", []) + status.get("containerStatuses", [])
        }
        state = statuses.get(container, {}).get("state", {"waiting": {"reason": "ContainerCreating"}})
        if "waiting" in state:
            reason = state["waiting"].get("reason", "ContainerCreating")
            raise ApiError(400, f'container "{container}" in pod "{name}" is waiting to start: {reason}')
        text = self._logs.get((ns, name, container), "")
        tail = _int_param(q, "tailLines")
        if tail is not None:
            lines = text.splitlines(keepends=True)
            text = "".join(lines[-tail:]) if tail > 0 else ""
        limit = _int_param(q, "limitBytes")
        if limit is not None:
            text = text.encode()[:limit].decode(errors="ignore")
        return web.Response(text=text, content_type="text/plain", charset="utf-8")

    async def _watch(
        self,
        request: web.Request,
        record: RequestRecord,
        rt: ResourceType,
        ns: str | None,
        q: Mapping[str, str],
    ) -> web.StreamResponse:
        selector = Selector.parse(rt, q.get("labelSelector"), q.get("fieldSelector"))
        bookmarks = _flag(q.get("allowWatchBookmarks"))
        timeout = _int_param(q, "timeoutSeconds")
        rv_text = q.get("resourceVersion") or ""
        watch = _Watch(rt, ns, selector, bookmarks)
        backlog: list[bytes] = []
        expired: Obj | None = None
        if rv_text in ("", "0") or _flag(q.get("sendInitialEvents")):
            backlog = [_event_line("ADDED", obj) for obj in self._select(rt, ns, selector)]
            if _flag(q.get("sendInitialEvents")) and bookmarks:
                marker = self._bookmark(rt, self._rv)
                marker["metadata"]["annotations"] = {"k8s.io/initial-events-end": "true"}
                backlog.append(_event_line("BOOKMARK", marker))
        else:
            since = _int_param(q, "resourceVersion") or 0
            if since < self._compacted:
                message = f"too old resource version: {since} ({self._compacted})"
                expired = status_object(410, "Expired", message)
            else:
                for ev in self._history[bisect.bisect_right(self._history_rvs, since) :]:
                    seen = watch.translate(ev) if ev.plural == rt.plural else None
                    if seen is not None:
                        backlog.append(ev.line(*seen))
        if expired is None:  # registered in the same step as the backlog was taken: no gap
            self._watches.setdefault(rt.plural, set()).add(watch)
        record.status = 200
        response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        try:
            await response.prepare(request)
            if expired is not None:
                await response.write(_event_line("ERROR", expired))
                await response.write_eof()
                return response
            for line in backlog:
                await response.write(line)
            if await self._stream(request, response, watch, timeout):
                await response.write_eof()
        except ConnectionError:
            pass  # the client went away
        finally:
            self._watches.get(rt.plural, set()).discard(watch)
        return response

    async def _stream(
        self, request: web.Request, response: web.StreamResponse, watch: _Watch, timeout: int | None
    ) -> bool:
        """Send the watch's events until timeout or a stop; False if the connection was reset."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout if timeout else None
        next_bookmark = loop.time() + self.bookmark_interval if watch.bookmarks else None
        while True:
            waits = [t - loop.time() for t in (deadline, next_bookmark) if t is not None]
            try:
                async with asyncio.timeout(max(0.0, min(waits)) if waits else None):
                    item = await watch.queue.get()
            except TimeoutError:
                if deadline is not None and loop.time() >= deadline:
                    return True
                await response.write(_event_line("BOOKMARK", self._bookmark(watch.rt, self._rv)))
                next_bookmark = loop.time() + self.bookmark_interval
                continue
            items = [item]
            while not watch.queue.empty():  # send what piled up in one write
                items.append(watch.queue.get_nowait())
            chunk = bytearray()
            for item in items:
                if isinstance(item, _Stop):
                    if chunk:
                        await response.write(bytes(chunk))
                    if item.abort and request.transport is not None:
                        request.transport.abort()
                    return not item.abort
                if isinstance(item, _Bookmark):
                    chunk += _event_line("BOOKMARK", self._bookmark(watch.rt, item.rv))
                    continue
                seen = watch.translate(item)
                if seen is not None:
                    chunk += item.line(*seen)
            if chunk:
                await response.write(bytes(chunk))

    @staticmethod
    def _bookmark(rt: ResourceType, rv: int) -> Obj:
        return {"kind": rt.kind, "apiVersion": rt.api_version, "metadata": {"resourceVersion": str(rv)}}

    async def _control(self, request: web.Request, path: str, q: Mapping[str, str]) -> web.Response:
        """``/_fake/...``: the test controls over HTTP, for a server in another process."""
        action = path.removeprefix("/_fake/")
        if request.method == "GET" and action == "stats":
            return _json_response(self.stats())
        if request.method == "GET" and action == "job_arrivals":
            return _json_response({f"{ns}/{name}": at for (ns, name), at in self.job_arrivals.items()})
        if request.method == "POST" and action == "compact":
            return _json_response({"compacted": self.compact()})
        if request.method == "POST" and action == "drop_watches":
            return _json_response({"dropped": self.drop_watches(abort=_flag(q.get("abort")))})
        if request.method == "POST" and action == "fail_next":
            spec = await self._body(request, optional=True) or {}
            rule = self.fail_next(
                int(spec.get("n", 1)),
                int(spec.get("status", 500)),
                spec.get("method"),
                spec.get("path_contains"),
            )
            return _json_response({"remaining": rule.remaining})
        return _json_response(status_object(404, "NotFound", f"no control {action!r}"), 404)


# ---------------------------------------------------------------------------------------------
# Command line


def _delay(text: str) -> float | tuple[float, float]:
    low, _, high = text.partition(",")
    return (float(low), float(high)) if high else float(low)


def _outcome(text: str) -> Literal["succeeded", "failed"] | float:
    if text in ("succeeded", "failed"):
        return text  # type: ignore[return-value]
    return float(text)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tests.kubeapi.server",
        description="A fake Kubernetes API server (jobs, pods, logs, events, secrets) on loopback."
        " Prints its URL on the first line of stdout; SIGINT/SIGTERM stop it.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: a free port (default)")
    parser.add_argument(
        "--validation",
        choices=["full", "cached", "off"],
        default="cached",
        help="schema validation of created objects (default: cached, same schema, fast)",
    )
    parser.add_argument(
        "--auto-complete-delay",
        type=_delay,
        metavar="SECONDS[,MAX]",
        help="created Jobs finish by themselves after this delay (or a uniform random one in a range)",
    )
    parser.add_argument(
        "--auto-complete-outcome",
        type=_outcome,
        default="succeeded",
        metavar="succeeded|failed|P",
        help="how auto-completed Jobs end (P: probability of failure)",
    )
    parser.add_argument("--auto-complete-log", default="", help="the log of auto-completed Jobs")
    parser.add_argument("--token", help="require this bearer token")
    parser.add_argument("--kubeconfig", type=Path, help="write a kubeconfig for the server here")
    parser.add_argument("--history-limit", type=int, default=100_000)
    parser.add_argument("--bookmark-interval", type=float, default=60.0)
    parser.add_argument("--seed", type=int)
    return parser


async def _serve(args: argparse.Namespace) -> None:
    auto = None
    if args.auto_complete_delay is not None:
        auto = AutoComplete(args.auto_complete_delay, args.auto_complete_outcome, args.auto_complete_log)
    api = FakeKubeAPI(
        host=args.host,
        port=args.port,
        validation=args.validation,
        auto_complete=auto,
        token=args.token,
        history_limit=args.history_limit,
        bookmark_interval=args.bookmark_interval,
        seed=args.seed,
    )
    await api.start()
    if args.kubeconfig:
        api.write_kubeconfig(args.kubeconfig)
    # As a process it is the benchmarks' instrument: keep what startup loaded out of the
    # collector's full passes, whose pauses would show up as latency that is not the service's.
    gc.collect()
    gc.freeze()
    print(api.url, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await api.stop()


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
