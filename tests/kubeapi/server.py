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
batch/v1 jobs, v1 pods (+ ``pods/log``), v1 events, v1 secrets, v1 configmaps, v1 namespaces:
namespaced create/get/list/watch/patch/update/delete, plus all-namespace
list/watch (``/apis/batch/v1/jobs``). ``/version`` and the discovery documents
(``/api``, ``/apis``, ``/api/v1``, ``/apis/batch/v1``) are served too, although
the generated API classes of kubernetes_asyncio never ask for them (only its
dynamic client does). Namespaces are objects that must exist, tokens map to RBAC Roles per
namespace (401/403/404 as kube-apiserver words them: ``access.py``).

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
lists; no quotas, no admission plugins but NamespaceLifecycle, no server-side apply (415);
pods carry no ``batch.kubernetes.io/job-tracking`` finalizer; deleting a Namespace does not
empty it. Decoding, size and pod rules beyond the schema: ``limits.py``.

The Job controller is simulated by test controls (``controller.py``): ``set_job_running``,
``set_job_succeeded``, ``set_job_failed`` (a container that ran and exited non-zero),
``set_job_deadline_exceeded`` (FailureTarget, the pod deleted, then Failed),
``set_pod_waiting`` / ``set_pod_unschedulable`` (a pod that cannot start: its Job stays
active), or ``auto_complete`` for benchmarks.

Modules: ``protocol`` (records, watch streams), ``store``, ``writes`` (create/update/delete,
GC), ``controller``, ``rest`` (HTTP and watch), ``access``, ``validation``, ``limits``,
``workloads``, ``cli`` (the process); this module holds ``FakeKubeAPI`` and its test controls.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import yaml
from aiohttp import web

from tests.kubeapi.access import (
    ADMIN,
    CLUSTER,
    CLUSTER_NAMESPACES,
    DEFAULT_TOKEN,
    DEFAULT_USER,
    Role,
    User,
    namespace_object,
)
from tests.kubeapi.patches import apply_patch
from tests.kubeapi.protocol import (
    AutoComplete,
    Bookmark,
    EventSpec,
    FaultRule,
    LogText,
    RequestRecord,
    Stop,
    ValidationFailure,
    clone,
    flag,
    json_response,
)
from tests.kubeapi.resources import JOBS, NAMESPACES, ApiError, Obj, resolve, status_object
from tests.kubeapi.rest import MAX_REQUEST_BYTES, RestApi
from tests.kubeapi.selectors import Selector
from tests.kubeapi.validation import ValidationMode

__all__ = [
    "CLUSTER",
    "ApiError",
    "AutoComplete",
    "EventSpec",
    "FakeKubeAPI",
    "FaultRule",
    "LogText",
    "RequestRecord",
    "Role",
    "User",
    "ValidationFailure",
    "main",
]


class FakeKubeAPI(RestApi):
    """The fake API server and the handle tests drive it with.

    Use ``async with FakeKubeAPI() as api:`` (or ``await api.start()`` / ``await api.stop()``);
    ``api.url`` is where it listens. All test controls are plain synchronous methods; each
    change they make is a committed change with its own resourceVersion and watch event.

    Options: ``validation`` "full" (``kubernetes_validate.validate`` per object, 12 ms),
    "cached" (the same schema and validator, built once: 0.25 ms) or "off";
    ``auto_complete`` an ``AutoComplete`` or ``(delay, outcome)``; ``token`` the bearer token
    of the all-allowed user the kubeconfig carries (default ``fake-token``); ``users`` more
    tokens, each a ``User`` with a Role per namespace (see ``access.py``; an unknown token is
    401, a request no Role allows 403); ``namespaces`` the Namespaces that exist (default:
    those of a fresh cluster; more with ``add_namespace``); ``history_limit`` changes kept for watches
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
        users: Mapping[str, User] | None = None,
        namespaces: Iterable[str] | None = None,
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
        self.token = token or DEFAULT_TOKEN
        self.users: dict[str, User] = {self.token: User(DEFAULT_USER, {CLUSTER: ADMIN}), **(users or {})}
        self.bookmark_interval = bookmark_interval
        self.gc_delay = gc_delay
        self._init_store(seed, history_limit)
        for namespace in CLUSTER_NAMESPACES if namespaces is None else namespaces:
            self.add_namespace(namespace)
        self._runner: web.AppRunner | None = None
        self._outages: set[asyncio.Future[None]] = set()  # /_fake/outage under way

    # -----------------------------------------------------------------------------------------
    # Lifecycle

    async def start(self) -> FakeKubeAPI:
        self._loop = asyncio.get_running_loop()
        app = web.Application(client_max_size=4 * MAX_REQUEST_BYTES)  # the 413 is ours
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

    async def outage(self, seconds: float) -> None:
        """The API server stops answering (connections refused, watches cut) for `seconds`,
        then listens on the same port again, as a control plane that restarts does. What it
        stores, and the Job controller (auto_complete timers), live on meanwhile: a cluster's
        workloads do not stop with its API server."""
        self.drop_watches()
        await asyncio.sleep(0)
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        await asyncio.sleep(seconds)
        await self.start()

    def _begin_outage(self, seconds: float) -> None:
        outage = asyncio.ensure_future(self.outage(seconds))
        self._outages.add(outage)
        outage.add_done_callback(self._outages.discard)

    async def __aenter__(self) -> FakeKubeAPI:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def kubeconfig(self, namespace: str = "default", token: str | None = None) -> Obj:
        """A kubeconfig (as a dict) whose current context points at this server, as the user
        of ``token`` (default: the all-allowed one)."""
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake", "user": {"token": token or self.token}}],
            "contexts": [
                {"name": "fake", "context": {"cluster": "fake", "user": "fake", "namespace": namespace}}
            ],
            "current-context": "fake",
        }

    def write_kubeconfig(
        self, path: str | Path, namespace: str = "default", token: str | None = None
    ) -> Path:
        path = Path(path)
        path.write_text(yaml.safe_dump(self.kubeconfig(namespace, token)))
        return path

    # -----------------------------------------------------------------------------------------
    # Test controls: namespaces and RBAC

    def add_namespace(self, name: str) -> Obj:
        """Create a Namespace (validated: a DNS-1123 label); an existing one is returned as is."""
        found = self._lookup(NAMESPACES, "", name)
        if found is not None:
            return clone(found)
        return clone(self._create(NAMESPACES, "", namespace_object(name)))

    def add_user(self, token: str, name: str, roles: Mapping[str, Role] | None = None) -> User:
        """A user for ``token`` with a Role per namespace (key ``CLUSTER``: everywhere), e.g.
        ``api.add_user("t", "system:serviceaccount:keptn:job-executor", {"jobs": Role.of(...)})``."""
        user = User(name, dict(roles or {}))
        self.users[token] = user
        return user

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
        return [clone(obj) for obj in self._select(rt, namespace, selector)]

    def get(self, kind: str, namespace: str, name: str) -> Obj | None:
        obj = self._lookup(resolve(kind), namespace, name)
        return clone(obj) if obj is not None else None

    def create(self, kind: str, obj: Obj, namespace: str | None = None, *, validate: bool = True) -> Obj:
        """Create an object as an API client would (e.g. a Job left over by a previous run)."""
        rt = resolve(kind)
        ns = namespace or obj.get("metadata", {}).get("namespace") or "default"
        return clone(self._create(rt, ns, obj, validate=validate))

    def patch(self, kind: str, namespace: str, name: str, patch: Obj) -> Obj:
        """JSON-merge-patch an object, status included (a controller's write)."""
        rt = resolve(kind)
        old = self._require(rt, namespace, name)
        new = apply_patch("application/merge-patch+json", old, patch)
        return clone(self._commit(rt, namespace, name, new))

    def delete(self, kind: str, namespace: str, name: str) -> Obj | None:
        """Remove an object at once (no finalizers, no garbage collection)."""
        rt = resolve(kind)
        if self._lookup(rt, namespace, name) is None:
            return None
        return clone(self._remove(rt, namespace, name))

    def job_pod(self, namespace: str, job_name: str) -> Obj | None:
        """The (latest) pod of a Job, or None."""
        job = self._lookup(JOBS, namespace, job_name)
        pod = self._pod_of(job) if job is not None else None
        return clone(pod) if pod is not None else None

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
        return clone(self._emit_event(involved, type, reason, message, "kubelet"))

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
                w.queue.put_nowait(Stop(abort))
                count += 1
        return count

    def send_bookmarks(self) -> int:
        """Send a BOOKMARK now on every watch that allowed bookmarks. Returns how many."""
        count = 0
        for watches in self._watches.values():
            for w in watches:
                if w.bookmarks:
                    w.queue.put_nowait(Bookmark(self._rv))
                    count += 1
        return count

    @property
    def open_watches(self) -> int:
        return sum(len(w) for w in self._watches.values())

    def watching(self, plural: str) -> int:
        """Open watches on one resource ("jobs", "pods")."""
        return len(self._watches.get(plural, ()))

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
            "activeJobs": self.active_jobs(),
            "peakActiveJobs": self.peak_active_jobs,
            "held": sum(rule.waiting for rule in self._holds),
        }

    async def _control(self, request: web.Request, path: str, q: Mapping[str, str]) -> web.Response:
        """``/_fake/...``: the test controls over HTTP, for a server in another process."""
        action = path.removeprefix("/_fake/")
        if request.method == "GET" and action == "stats":
            return json_response(self.stats())
        if request.method == "GET" and action == "job_arrivals":
            return json_response({f"{ns}/{name}": at for (ns, name), at in self.job_arrivals.items()})
        if request.method == "POST" and action == "outage":
            spec = await self._body(request, optional=True) or {}
            # Answered first: the outage then cuts this connection with the others.
            asyncio.get_running_loop().call_later(0.05, self._begin_outage, float(spec.get("seconds", 5)))
            return json_response({"outage": spec.get("seconds", 5)})
        if request.method == "POST" and action == "compact":
            return json_response({"compacted": self.compact()})
        if request.method == "POST" and action == "drop_watches":
            return json_response({"dropped": self.drop_watches(abort=flag(q.get("abort")))})
        if request.method == "POST" and action == "hold_next":
            spec = await self._body(request, optional=True) or {}
            rule = self.hold_next(
                int(spec.get("n", 1)),
                spec.get("method"),
                spec.get("path_contains"),
                spec.get("complete", True),
            )
            return json_response({"remaining": rule.remaining})
        if request.method == "POST" and action == "release":
            return json_response({"released": self.release()})
        if request.method == "POST" and action == "fail_next":
            spec = await self._body(request, optional=True) or {}
            rule = self.fail_next(
                int(spec.get("n", 1)),
                int(spec.get("status", 500)),
                spec.get("method"),
                spec.get("path_contains"),
            )
            return json_response({"remaining": rule.remaining})
        return json_response(status_object(404, "NotFound", f"no control {action!r}"), 404)


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m tests.kubeapi.server``: see ``tests/kubeapi/cli.py``."""
    from tests.kubeapi.cli import main as run

    run(argv)


if __name__ == "__main__":
    main()
