"""A fake Keptn control plane behind its API gateway, built from Keptn's published API.

It speaks what executor/keptn/api.py documents (the sources are cited there): the same paths
under ``/api``, the ``x-token`` header, the status codes and bodies, including the two shapes a
refused token takes (a JSON error from the api-service, nginx's HTML page where the gateway
checks the token with ``auth_request``). It is stateful: projects with stages and services, a
resource tree per project with one snapshot per git commit, uniform registrations with their
ping times, open triggered events, and the events and log entries it received. Every request
is recorded so tests can count calls and read the query strings.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote

from aiohttp import web

NGINX_401 = (
    "<html>\r\n<head><title>401 Authorization Required</title></head>\r\n<body>\r\n"
    "<center><h1>401 Authorization Required</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)
RESOURCE_PREFIXES = ("configuration-service", "resource-service")
_Key = tuple[str, str, str]  # (stage, service, uri); "" stage = project level


@dataclass
class Recorded:
    method: str
    path: str  # raw (still percent-encoded) path
    query: dict[str, str]
    authorised: bool


@dataclass
class Project:
    stages: dict[str, set[str]]
    commits: list[tuple[str, dict[_Key, bytes]]] = field(default_factory=list)

    def snapshot(self, commit: str) -> dict[_Key, bytes] | None:
        if not commit:
            return self.commits[-1][1] if self.commits else {}
        for commit_id, files in self.commits:
            if commit_id == commit:
                return files
        return None

    def head(self) -> str:
        return self.commits[-1][0] if self.commits else ""


class FakeKeptn:
    def __init__(self, token: str = "keptn-test-token") -> None:
        self.token = token
        self.projects: dict[str, Project] = {}
        self.registrations: dict[str, dict[str, Any]] = {}
        self.pings: Counter[str] = Counter()
        self.open_triggered: list[dict[str, Any]] = []
        self.received: list[dict[str, Any]] = []
        self.logs: list[dict[str, Any]] = []
        self.requests: list[Recorded] = []
        self.fail_next = 0  # answer this many requests with 503 first
        self.url = ""  # the API endpoint, e.g. http://127.0.0.1:1234/api
        self._runner: web.AppRunner | None = None
        self._commits = 0
        self._changed = asyncio.Event()

    # ---- server ----

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}/api"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # ---- state set up by tests ----

    def add_project(self, name: str, stages: dict[str, list[str]]) -> None:
        self.projects[name] = Project({stage: set(services) for stage, services in stages.items()})

    def put(self, project: str, uri: str, content: bytes | str, *, stage: str = "", service: str = "") -> str:
        """Commit one file (a new git commit); returns the commit id."""
        data = content.encode() if isinstance(content, str) else content
        return self._commit(project, {(stage, service, uri.lstrip("/")): data})

    def remove(self, project: str, uri: str, *, stage: str = "", service: str = "") -> str:
        return self._commit(project, {(stage, service, uri.lstrip("/")): None})

    def _commit(self, project: str, changes: dict[_Key, bytes | None]) -> str:
        repo = self.projects[project]
        files = dict(repo.commits[-1][1]) if repo.commits else {}
        for (stage, service, uri), data in changes.items():
            assert not stage or stage in repo.stages, f"unknown stage {stage}"
            assert not service or service in repo.stages[stage], f"unknown service {service}"
            if data is None:
                files.pop((stage, service, uri), None)
            else:
                files[(stage, service, uri)] = data
        self._commits += 1
        commit_id = hashlib.sha1(f"{project}-{self._commits}".encode()).hexdigest()
        repo.commits.append((commit_id, files))
        return commit_id

    def trigger(
        self, event_type: str, project: str, stage: str, service: str, **extra: Any
    ) -> dict[str, Any]:
        """An open .triggered event, stored the way the shipyard controller returns it."""
        event: dict[str, Any] = {
            "data": {"project": project, "stage": stage, "service": service},
            "id": str(uuid.uuid4()),
            "shkeptncontext": str(uuid.uuid4()),
            "shkeptnspecversion": "0.2.4",
            "source": "shipyard-controller",
            "specversion": "1.0",
            "time": "2024-05-01T10:00:00.000Z",
            "type": event_type,
        }
        event.update(extra)
        self.open_triggered.append(event)
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

    # ---- routing ----

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        raw_path = request.raw_path.split("?", 1)[0]
        query = {k: v[-1] for k, v in parse_qs(request.query_string, keep_blank_values=True).items()}
        parts = [unquote(p) for p in raw_path.split("/")[1:]]
        token = request.headers.get("x-token")
        authorised = token == self.token
        self.requests.append(Recorded(request.method, raw_path, query, authorised))
        self._changed.set()
        if not parts or parts[0] != "api":
            return _error(404, "not found")
        rest = parts[1:]
        if self.fail_next > 0:
            self.fail_next -= 1
            return _error(503, "service unavailable")
        if rest[:2] == ["v1", "auth"]:
            return self._api_auth(token, authorised) or web.json_response({})
        if rest[:1] == ["v1"]:  # the api-service checks the token itself
            refused = self._api_auth(token, authorised)
            if refused is not None:
                return refused
            if rest == ["v1", "event"] and request.method == "POST":
                return await self._post_event(request)
            return _error(404, "path not found")
        # Routes the gateway guards with auth_request: nginx answers the 401 itself.
        if not authorised:
            return web.Response(status=401, text=NGINX_401, content_type="text/html")
        if rest[:1] == ["controlPlane"]:
            return await self._control_plane(request, rest[1:], query)
        if rest[:1] and rest[0] in RESOURCE_PREFIXES:
            return self._resources(request, rest[1:], query)
        return _error(404, "not found")

    def _api_auth(self, token: str | None, authorised: bool) -> web.Response | None:
        if authorised:
            return None
        message = "unauthenticated for invalid credentials" if token is None else "incorrect api key auth"
        return _error(401, message)

    # ---- api-service ----

    async def _post_event(self, request: web.Request) -> web.Response:
        try:
            event = json.loads(await request.read())
        except ValueError:
            return _error(400, 'parsing body body from "" failed, because invalid character')
        if (
            not isinstance(event, dict)
            or not event.get("type")
            or not event.get("source")
            or "data" not in event
        ):
            return _error(400, "type, source and data are required")
        self.received.append(event)
        triggered = event.get("triggeredid")
        if str(event["type"]).endswith(".finished") and triggered:
            self.open_triggered = [e for e in self.open_triggered if e["id"] != triggered]
        self._changed.set()
        return web.json_response({"keptnContext": event.get("shkeptncontext") or str(uuid.uuid4())})

    # ---- shipyard controller ----

    async def _control_plane(
        self, request: web.Request, rest: list[str], query: dict[str, str]
    ) -> web.Response:
        method = request.method
        if rest[:3] == ["v1", "uniform", "registration"]:
            tail = rest[3:]
            if not tail and method == "POST":
                return await self._register(request)
            if not tail and method == "GET":
                name = query.get("name", "")
                return web.json_response(
                    [r for r in self.registrations.values() if not name or r["name"] == name]
                )
            if len(tail) == 2 and tail[1] == "ping" and method == "PUT":
                return self._ping(tail[0])
        if rest[:3] == ["v1", "event", "triggered"] and len(rest) == 4 and method == "GET":
            return self._triggered(rest[3], query)
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
        return _error(404, "path not found")

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
        hostname = meta.get("hostname") or ""
        if not (name and namespace and hostname):
            return _error(
                400, "incomplete integration ID. At least 'name','namespace' and 'nodename' must be set"
            )
        subscriptions = integration.get("subscriptions") or []
        for sub in subscriptions:
            if not sub.get("event"):
                return _error(400, "the event must be specified when setting up a subscription")
            flt = sub.get("filter") or {}
            if flt.get("services") is not None and flt.get("stages") is None:
                return _error(
                    400,
                    "at least one stage must be specified when setting up a subscription filter for a service",
                )
        integration_id = hashlib.sha1(f"{name}-{namespace}-{hostname}".encode()).hexdigest()
        now = _now()
        existing = self.registrations.get(integration_id)
        if existing is not None:
            existing["metadata"].update({k: v for k, v in meta.items() if k != "lastseen"})
            existing["metadata"]["lastseen"] = now
            return web.json_response({"id": integration_id}, status=200)
        for sub in subscriptions:
            sub["id"] = str(uuid.uuid4())
        integration["id"] = integration_id
        integration["metadata"] = {**meta, "lastseen": now}
        integration["subscriptions"] = subscriptions
        self.registrations[integration_id] = integration
        self._changed.set()
        return web.json_response({"id": integration_id}, status=201)

    def _ping(self, integration_id: str) -> web.Response:
        integration = self.registrations.get(integration_id)
        if integration is None:
            return _error(404, "Could not find uniform integration")
        integration["metadata"]["lastseen"] = _now()
        self.pings[integration_id] += 1
        self._changed.set()
        return web.json_response(integration)

    def _triggered(self, event_type: str, query: dict[str, str]) -> web.Response:
        project = query.get("project", "")
        if project and project not in self.projects:
            return _error(404, f"project {project} not found")
        events = [
            e
            for e in self.open_triggered
            if e["type"] == event_type
            and all(
                not query.get(k) or (e.get("data") or {}).get(k) == query[k]
                for k in ("project", "stage", "service")
            )
        ]
        page, next_key = _page(events, query)
        return web.json_response({"events": page, "nextPageKey": next_key, "totalCount": len(events)})

    # ---- resource service ----

    def _resources(self, request: web.Request, rest: list[str], query: dict[str, str]) -> web.Response:
        if request.method != "GET":
            return _error(405, "method not allowed in this fake")
        if rest[:2] != ["v1", "project"] or len(rest) < 4:
            return _error(404, "path not found")
        project_name, rest = rest[2], rest[3:]
        stage = service = ""
        if rest[:1] == ["stage"] and len(rest) >= 3:
            stage, rest = rest[1], rest[2:]
            if rest[:1] == ["service"] and len(rest) >= 3:
                service, rest = rest[1], rest[2:]
        if rest[:1] != ["resource"] or len(rest) > 2:
            return _error(404, "path not found")
        project = self.projects.get(project_name)
        if project is None:
            return _error(404, "Project not found")
        if stage and stage not in project.stages:
            return _error(404, "Stage not found")
        if service and service not in project.stages[stage]:
            return _error(404, "Service not found")
        commit = query.get("gitCommitID", "")
        files = project.snapshot(commit)
        if files is None:
            return _error(404, "Stage not found")  # ErrReferenceNotFound is reported as the stage
        version = commit or project.head()
        metadata = {"branch": stage or "main", "upstreamURL": "", "version": version}
        if len(rest) == 2:
            uri = rest[1]
            if "~" in uri or ".." in uri:
                return _error(400, "Invalid resource URI")
            data = files.get((stage, service, uri.lstrip("/")))
            if data is None:
                return _error(404, "Resource not found")
            return web.json_response(
                {
                    "resourceURI": uri,
                    "resourceContent": base64.b64encode(data).decode(),
                    "metadata": metadata,
                }
            )
        uris = sorted(u for (s, svc, u) in files if s == stage and svc == service)
        page, next_key = _page(uris, query, default_size=20)
        return web.json_response(
            {
                "resources": [{"resourceURI": u, "metadata": metadata} for u in page],
                "nextPageKey": next_key,
                "pageSize": len(page),
                "totalCount": len(uris),
            }
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
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + f".{int(time.time() * 1000) % 1000:03d}Z"
