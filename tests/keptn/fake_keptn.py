"""A Keptn control plane double as strict as Keptn, behind real nginx with Keptn's gateway rules.

Four small HTTP services stand in for Keptn's api-service, shipyard-controller, resource-service
and mongodb-datastore; nginx (``double/nginx.conf.template``, from keptn/keptn
``installer/manifests/keptn/templates/api-gateway-nginx.yaml``) routes ``/api/...`` to them, does
the ``auth_request`` token check and answers refused tokens from ``@error401``/``@error429``.
So path decoding, prefixes that no longer exist (``/api/configuration-service`` falls into
``location /api`` and the api-service 404s) and the token answers are the real ones. The rules
each service applies are in ``tests/keptn/double/`` with the Keptn source file behind each.

State for tests: projects with a git branch per stage plus the project branch, uniform
registrations (expiring 60 s after the last renewal by ``now()``, which tests move with
``advance``), open triggered events and their tasks (the shipyard rule), every event Keptn
accepted (rewritten as the api-service publishes it), refused posts, log entries, and every
request as the client sent it (path still percent-encoded, query, whether the token was good).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, unquote_plus

from aiohttp import web

from tests.keptn.double import apiservice, datastore
from tests.keptn.double.gateway import Gateway
from tests.keptn.double.resources import PROJECT_BRANCH, Project
from tests.keptn.double.shipyard import (
    REGISTRATION_TTL,
    Task,
    integration_id,
    merge_subscriptions,
    validate_subscriptions,
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Recorded:
    method: str
    path: str  # as the client sent it (still percent-encoded), without the query
    query: dict[str, str]
    authorised: bool


class FakeKeptn:
    def __init__(self, token: str = "keptn-test-token") -> None:
        self.token = token
        self.projects: dict[str, Project] = {}
        self._registrations: dict[str, dict[str, Any]] = {}
        self._last_seen: dict[str, float] = {}
        self.pings: Counter[str] = Counter()
        self.open_triggered: list[dict[str, Any]] = []
        self.tasks: dict[str, Task] = {}  # by the .triggered event's id
        self.received: list[dict[str, Any]] = []  # accepted events, as published by the api-service
        self.refused: list[tuple[int, str, Any]] = []  # (status, message, body) of refused posts
        self.datastore: list[dict[str, Any]] = []  # what mongodb-datastore holds
        self.logs: list[dict[str, Any]] = []
        self.requests: list[Recorded] = []
        self.fail_next = 0  # answer this many requests (not auth checks) with 503 first
        self.offset = 0.0  # added to the monotonic clock by advance()
        self.rate_limiter = apiservice.AuthRateLimiter(self.now)
        self.url = ""  # the API endpoint through nginx, e.g. http://127.0.0.1:1234/api
        self.gateway: Gateway | None = None
        self._runners: list[web.AppRunner] = []
        self._changed = asyncio.Event()
        # Awaited after an event was accepted and before the answer goes out: a test holds the
        # answer here to kill the client between its POST and its reading of the answer.
        self.after_accept: Callable[[dict[str, Any]], Awaitable[None]] | None = None

    # ---- lifecycle ----

    async def start(self, directory: Path | None = None) -> None:
        ports: dict[str, int] = {}
        for name, handler in (
            ("API_SERVICE", self._api_service),
            ("SHIPYARD", self._shipyard),
            ("RESOURCE_SERVICE", self._resource_service),
            ("DATASTORE", self._datastore),
        ):
            ports[name] = await self._serve(handler)
        self.gateway = Gateway(directory or Path(tempfile.mkdtemp(prefix="keptn-gw-")), ports)
        await self.gateway.start()
        self.url = f"http://127.0.0.1:{self.gateway.port}/api"

    async def _serve(self, handler: Handler) -> int:
        app = web.Application(client_max_size=4 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        self._runners.append(runner)
        return int(runner.addresses[0][1])

    async def stop(self) -> None:
        if self.gateway is not None:
            await self.gateway.stop()
        for runner in self._runners:
            await runner.cleanup()

    # ---- time ----

    def now(self) -> float:
        return time.monotonic() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds

    @property
    def registrations(self) -> dict[str, dict[str, Any]]:
        """Live registrations; those not renewed for 60 s are gone (the TTL index)."""
        for rid in [r for r, seen in self._last_seen.items() if self.now() - seen > REGISTRATION_TTL]:
            self._registrations.pop(rid, None)
            self._last_seen.pop(rid, None)
        return self._registrations

    # ---- state set up by tests ----

    def add_project(self, name: str, stages: dict[str, list[str]]) -> None:
        self.projects[name] = Project(name, {stage: set(services) for stage, services in stages.items()})

    def put(self, project: str, uri: str, content: bytes | str, *, stage: str = "", service: str = "") -> str:
        """Commit one file on the level's branch (the stage's, or the project's); returns the commit id."""
        data = content.encode() if isinstance(content, str) else content
        return self._commit(project, stage, service, uri, data)

    def remove(self, project: str, uri: str, *, stage: str = "", service: str = "") -> str:
        return self._commit(project, stage, service, uri, None)

    def _commit(self, project: str, stage: str, service: str, uri: str, data: bytes | None) -> str:
        repo = self.projects[project]
        assert not stage or stage in repo.stages, f"unknown stage {stage}"
        assert not service or (stage and service in repo.stages[stage]), f"unknown service {service}"
        return repo.commit(stage or PROJECT_BRANCH, {(service, uri.lstrip("/")): data})

    def trigger(
        self, event_type: str, project: str, stage: str, service: str, **extra: Any
    ) -> dict[str, Any]:
        """An open task .triggered event as the shipyard controller creates it (no triggeredid)."""
        event: dict[str, Any] = {
            "data": {"project": project, "stage": stage, "service": service},
            "id": str(uuid.uuid4()),
            "shkeptncontext": str(uuid.uuid4()),
            "shkeptnspecversion": "0.2.4",
            "source": "shipyard-controller",
            "specversion": "1.0",
            "time": _now(),
            "type": event_type,
            "gitcommitid": self.projects[project].head(stage) if project in self.projects else "",
        }
        event.update(extra)
        self.open_triggered.append(event)
        self.tasks[event["id"]] = Task(event)
        self.datastore.append(event)
        return event

    def requests_to(self, fragment: str, method: str | None = None) -> list[Recorded]:
        return [r for r in self.requests if fragment in r.path and (method is None or r.method == method)]

    async def wait_for(self, predicate: Any, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError("the fake Keptn did not see what the test waited for")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout=0.05)

    # ---- recording ----

    def _record(self, request: web.Request, authorised: bool) -> tuple[list[str], dict[str, str]]:
        original = request.headers.get("X-Double-Uri", request.raw_path)
        path, _, query_string = original.partition("?")
        query = {k: v[-1] for k, v in parse_qs(query_string, keep_blank_values=True).items()}
        method = request.headers.get("X-Double-Method", request.method)
        self.requests.append(Recorded(method, path, query, authorised))
        self._changed.set()
        return request.raw_path.split("?", 1)[0].split("/")[1:], query

    def _failing(self) -> bool:
        if self.fail_next > 0:
            self.fail_next -= 1
            return True
        return False

    # ---- api-service ----

    async def _api_service(self, request: web.Request) -> web.StreamResponse:
        token = request.headers.get("x-token")
        good = token == self.token
        parts = request.raw_path.split("?", 1)[0].split("/")[1:]
        if parts == ["v1", "auth"]:
            # The gateway's auth_request: only refusals are recorded (an accepted check is
            # followed by the real request, which its service records).
            if good:
                return web.Response(status=200)
            self._record(request, False)
            if not self.rate_limiter.allow(request.remote or ""):
                return web.Response(status=429, text="Too Many Requests\n")
            return _api_unauthorised(token)
        self._record(request, good)
        if self._failing():
            return _error(503, "service unavailable")
        if not good:
            return _api_unauthorised(token)
        if parts == ["v1", "event"] and request.method == "POST":
            return await self._post_event(request)
        # go-openapi's answer for a route it does not have
        return _error(404, f"path {request.raw_path.split('?', 1)[0]} was not found")

    async def _post_event(self, request: web.Request) -> web.Response:
        body = b""
        while len(body) <= apiservice.MAX_EVENT_SIZE:
            chunk = await request.content.read(apiservice.MAX_EVENT_SIZE + 1 - len(body))
            if not chunk:
                break
            body += chunk
        try:
            if len(body) > apiservice.MAX_EVENT_SIZE:  # http.MaxBytesReader, then the binder fails
                raise apiservice.Refused(
                    400, 'parsing body body from "" failed, because http: request body too large'
                )
            try:
                event = json.loads(body)
            except ValueError:
                raise apiservice.Refused(
                    400, 'parsing body body from "" failed, because invalid JSON'
                ) from None
            apiservice.check_body(event)
            apiservice.validate(event)
        except apiservice.Refused as refused:
            self.refused.append((refused.status, refused.message, body[:2000].decode(errors="replace")))
            self._changed.set()
            return web.json_response(
                {"code": refused.code, "message": refused.message}, status=refused.status
            )
        published = apiservice.rewrite(event, _now())
        self.received.append(published)
        self.datastore.append(published)
        self._shipyard_sees(published)
        self._changed.set()
        if self.after_accept is not None:
            await self.after_accept(published)
        return web.json_response({"keptnContext": published["shkeptncontext"]})

    def _shipyard_sees(self, event: dict[str, Any]) -> None:
        kind = str(event["type"]).rsplit(".", 1)[-1]
        task = self.tasks.get(str(event.get("triggeredid") or ""))
        if kind not in ("started", "finished") or task is None:
            return
        data, tdata = event.get("data") or {}, task.triggered.get("data") or {}
        if (
            data.get("project") != tdata.get("project")
            or event.get("shkeptncontext") != task.triggered.get("shkeptncontext")
            or not data.get("stage")
            or not data.get("service")
        ):
            return  # no open sequence execution matches: dropped
        if task.take(event):
            self.open_triggered = [e for e in self.open_triggered if e["id"] != task.triggered["id"]]

    # ---- shipyard controller ----

    async def _shipyard(self, request: web.Request) -> web.StreamResponse:
        rest, query = self._record(request, True)
        if self._failing():
            return _error(503, "service unavailable")
        method = request.method
        if rest[:3] == ["v1", "uniform", "registration"]:
            tail = rest[3:]
            if not tail and method == "POST":
                return await self._register(request)
            if not tail and method == "GET":
                name = query.get("name", "")
                found = [r for r in self.registrations.values() if not name or r["name"] == name]
                return web.json_response([r for r in found if not query.get("id") or r["id"] == query["id"]])
            if len(tail) == 2 and tail[1] == "ping" and method == "PUT":
                return self._ping(tail[0])
            if len(tail) == 1 and method == "DELETE":
                self.registrations.pop(tail[0], None)
                return web.json_response({})
        if rest[:3] == ["v1", "event", "triggered"] and len(rest) == 4 and method == "GET":
            return self._triggered(unquote(rest[3]), query)
        if rest == ["v1", "log"] and method == "POST":
            try:
                body = json.loads(await request.read())
            except ValueError:
                return _error(400, "invalid character in log request")
            if not isinstance(body, dict) or not isinstance(body.get("logs"), list):
                return _error(400, "logs are required")
            self.logs.extend(body["logs"])
            self._changed.set()
            return web.json_response({})
        return web.Response(status=404, text="404 page not found")  # gin's NoRoute answer

    async def _register(self, request: web.Request) -> web.Response:
        try:
            integration = json.loads(await request.read())
        except ValueError:
            return _error(400, "invalid character in integration")
        if not isinstance(integration, dict):
            return _error(400, "integration must be an object")
        meta = integration.get("metadata") or {}
        name = integration.get("name") or ""
        namespace = (meta.get("kubernetesmetadata") or {}).get("namespace") or ""
        subscriptions = integration.get("subscriptions") or []
        existing = [
            r
            for r in self.registrations.values()
            if r["name"] == name
            and (r["metadata"].get("kubernetesmetadata") or {}).get("namespace") == namespace
        ]
        if existing:  # updateIntegration: merged, lastseen renewed, the known id (no validation)
            known = max(existing, key=lambda r: self._last_seen[r["id"]])
            merge_subscriptions(known["subscriptions"], subscriptions)
            known["metadata"].update({k: v for k, v in meta.items() if k != "lastseen"})
            self._renew(known["id"])
            return web.json_response({"id": known["id"]}, status=200)
        hostname = meta.get("hostname") or ""
        if not (name and namespace and hostname):
            return _error(
                400, "incomplete integration ID. At least 'name','namespace' and 'nodename' must be set"
            )
        problem = validate_subscriptions(subscriptions)
        if problem:
            return _error(400, problem)
        rid = integration_id(name, namespace, hostname)
        integration.update(
            id=rid,
            metadata={**meta},
            subscriptions=[{**s, "id": str(uuid.uuid4())} for s in subscriptions],
        )
        self._registrations[rid] = integration
        self._renew(rid)
        return web.json_response({"id": rid}, status=201)

    def _renew(self, rid: str) -> None:
        self._last_seen[rid] = self.now()
        self._registrations[rid]["metadata"]["lastseen"] = _now()
        self._changed.set()

    def _ping(self, rid: str) -> web.Response:
        if rid not in self.registrations:
            return _error(404, "Could not find uniform integration")
        self._renew(rid)
        self.pings[rid] += 1
        return web.json_response(self._registrations[rid])

    def _triggered(self, event_type: str, query: dict[str, str]) -> web.Response:
        project = query.get("project", "")
        if project and project not in self.projects:
            return _error(404, f"project {project} not found")
        events = [
            e
            for e in self.open_triggered
            if e["type"] == event_type
            and (not query.get("eventID") or e["id"] == query["eventID"])
            and all(
                not query.get(k) or (e.get("data") or {}).get(k) == query[k]
                for k in ("project", "stage", "service")
            )
        ]
        page, next_key = _page(events, query)
        return web.json_response({"events": page, "nextPageKey": next_key, "totalCount": len(events)})

    # ---- resource service (gin: UseRawPath, UnescapePathValues false) ----

    async def _resource_service(self, request: web.Request) -> web.StreamResponse:
        _, query = self._record(request, True)
        rest = _gin_segments(request.raw_path.split("?", 1)[0])
        if self._failing():
            return _error(503, "service unavailable")
        if request.method != "GET":
            return _error(405, "method not allowed in this double")
        if rest[:2] != ["v1", "project"] or len(rest) < 4:
            return web.Response(status=404, text="404 page not found")
        project_name, rest = rest[2], rest[3:]
        stage = service = ""
        if rest[:1] == ["stage"] and len(rest) >= 3:
            stage, rest = rest[1], rest[2:]
            if rest[:1] == ["service"] and len(rest) >= 3:
                service, rest = rest[1], rest[2:]
        if rest[:1] != ["resource"] or len(rest) > 2:
            return web.Response(status=404, text="404 page not found")  # e.g. job/config.yaml as two segments
        project = self.projects.get(project_name)
        if project is None:
            return _error(404, "Project not found")
        if stage and stage not in project.stages:
            return _error(404, "Stage not found")
        if service and service not in project.stages[stage]:
            return _error(404, "Service not found")
        commit = query.get("gitCommitID", "")
        files = project.branches[stage or PROJECT_BRANCH].at(commit)
        if files is None:
            return _error(404, "Stage not found")  # the reference is not on this level's branch
        metadata = {
            "branch": stage or PROJECT_BRANCH,
            "upstreamURL": "",
            "version": commit or project.head(stage),
        }
        if len(rest) == 2:
            uri = unquote_plus(rest[1])  # resource_manager.go: url.QueryUnescape, once
            if "~" in uri or ".." in uri:
                return _error(400, "Invalid resource URI")
            data = files.get((service, uri.lstrip("/")))
            if data is None:
                return _error(404, "Resource not found")
            content = base64.b64encode(data).decode()
            return web.json_response(
                {"resourceURI": rest[1], "resourceContent": content, "metadata": metadata}
            )
        uris = sorted(u for (svc, u) in files if svc == service)
        page, next_key = _page(uris, query)
        return web.json_response(
            {
                "resources": [{"resourceURI": u, "metadata": metadata} for u in page],
                "nextPageKey": next_key,
                "pageSize": len(page),
                "totalCount": len(uris),
            }
        )

    # ---- mongodb-datastore ----

    async def _datastore(self, request: web.Request) -> web.StreamResponse:
        rest, query = self._record(request, True)
        if self._failing():
            return _error(503, "service unavailable")
        try:
            if rest == ["event"] and request.method == "GET":
                return web.json_response(datastore.get_events(self.datastore, query))
            if rest[:2] == ["event", "type"] and len(rest) == 3 and request.method == "GET":
                return web.json_response(
                    datastore.get_events_by_type(self.datastore, unquote(rest[2]), query)
                )
        except datastore.QueryError as failed:
            return _error(failed.status, str(failed))
        return _error(404, f"path /{'/'.join(rest)} was not found")


def _gin_segments(raw: str) -> list[str]:
    """The path segments gin routes on. Go's URL parser decodes the path once and keeps the raw
    form only when re-escaping the decoded path does not give it back; with ``UseRawPath`` gin then
    routes on the raw form, else on the decoded one (keptn/keptn ``resource-service/main.go``)."""
    decoded = unquote(raw)
    same = quote(decoded, safe="/:@!$&'()*+,;=-._~") == raw
    return (decoded if same else raw).split("/")[1:]


def _api_unauthorised(token: str | None) -> web.Response:
    # go-openapi without the header; tokenauth.go with a wrong one
    return _error(
        401, "unauthenticated for invalid credentials" if token is None else "incorrect api key auth"
    )


def _page(items: list[Any], query: dict[str, str], default_size: int = 20) -> tuple[list[Any], str]:
    """Keptn's Paginate: the key is the next offset as a string, "0" after the last page."""
    size = int(query.get("pageSize") or default_size)
    start = int(query.get("nextPageKey") or 0)
    end = start + size
    return items[start:end], str(end) if end < len(items) else "0"


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"code": status, "message": message}, status=status)


def _now() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1_000_000) % 1_000_000:06d}Z"
