"""The REST and watch protocol: routing, lists with selectors and pagination, pod logs, watch
streams with history replay, bookmarks and timeouts."""

from __future__ import annotations

import asyncio
import bisect
import json
import traceback
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from tests.kubeapi.access import User, forbidden, unauthorized, verb_of
from tests.kubeapi.controller import JobController
from tests.kubeapi.patches import apply_patch
from tests.kubeapi.protocol import (
    CONTINUE_EXPIRED,
    Bookmark,
    HoldRule,
    RequestRecord,
    Stop,
    Watch,
    decode_continue,
    encode_continue,
    event_line,
    flag,
    int_param,
    json_response,
    obj_key,
    strip_type,
)
from tests.kubeapi.resources import (
    BY_PATH,
    PODS,
    VERSION_INFO,
    ApiError,
    Obj,
    ResourceType,
    discovery,
    status_object,
)
from tests.kubeapi.selectors import Selector
from tests.kubeapi.writes import log

MAX_REQUEST_BYTES = 3 * 1024 * 1024
USER = web.RequestKey("kube_user", User)


# Non-resource URLs anyone may read, signed in or not.
PUBLIC_INFO = frozenset({"/version", "/healthz", "/livez", "/readyz"})
ANONYMOUS = User("system:anonymous")


class RestApi(JobController):
    """The HTTP side of the fake."""

    bookmark_interval: float
    users: dict[str, User]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        query = {key: request.query.getone(key) for key in request.query}
        if path.startswith("/_fake/"):
            return await self._control(request, path, query)
        record = RequestRecord(request.method, path, query, watch=flag(query.get("watch")))
        self.request_log.append(record)
        response: web.StreamResponse
        try:
            request[USER] = self._authenticate(request)
            for rule in self._faults:
                if rule.matches(record):
                    rule.remaining -= 1
                    raise rule.error()
            held = next((rule for rule in self._holds if rule.matches(record)), None)
            if held is not None:
                await request.read()  # the body is the client's to send before it may leave
                after = asyncio.ensure_future(self._route_after(held, request, record, query))
                response = await (asyncio.shield(after) if held.complete else after)
            else:
                response = await self._route(request, record, query)
        except ApiError as e:
            response = json_response(e.status(), e.code, e.headers)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            self.server_errors.append(traceback.format_exc())
            log.exception("fake API server: %s %s failed", request.method, path)
            response = json_response(status_object(500, "InternalError", f"fake API server bug: {e!r}"), 500)
        if record.status is None:
            record.status = response.status
        return response

    def hold_next(
        self, n: int = 1, method: str | None = None, path_contains: str | None = None, complete: bool = True
    ) -> HoldRule:
        """Keep the next ``n`` requests matching method/path waiting until ``release`` (see HoldRule)."""
        rule = HoldRule(n, method, path_contains, complete)
        self._holds.append(rule)
        return rule

    async def _route_after(
        self, held: HoldRule, request: web.Request, record: RequestRecord, q: dict[str, str]
    ) -> web.StreamResponse:
        await held.hold()
        return await self._route(request, record, q)

    def release(self) -> int:
        """Let every held request go on (acted on and answered, whether its client waits or
        not). Returns how many were waiting."""
        waiting = sum(rule.waiting for rule in self._holds)
        for rule in self._holds:
            rule.released.set()
        self._holds.clear()
        return waiting

    async def _route(
        self, request: web.Request, record: RequestRecord, q: dict[str, str]
    ) -> web.StreamResponse:
        method, path = request.method, request.path
        if method == "GET":
            path = path.rstrip("/") or "/"  # the client asks for /version/ and /apis/
            if path == "/version":
                return json_response(VERSION_INFO)
            if path == "/":
                paths = [
                    "/api",
                    "/api/v1",
                    "/apis",
                    "/apis/batch",
                    "/apis/batch/v1",
                    "/apis/coordination.k8s.io",
                    "/apis/coordination.k8s.io/v1",
                    "/version",
                ]
                return json_response({"paths": paths})
            doc = discovery(path)
            if doc is not None:
                return json_response(doc)
        rt, ns, name, sub = self._parse_path(path)
        if rt.namespaced and ns is None and (method != "GET" or name is not None):
            raise ApiError(404, "the server could not find the requested resource")
        if not rt.namespaced:
            if ns is not None:
                raise ApiError(404, "the server could not find the requested resource")
            ns = "" if name is not None or method != "GET" else None
        user: User = request[USER]
        verb = verb_of(method, name, record.watch)
        if not user.can(verb, rt.group, f"{rt.plural}/{sub}" if sub else rt.plural, ns or ""):
            raise forbidden(user.name, verb, rt, sub, ns or "", name)
        dry_run = q.get("dryRun") == "All"
        if method == "GET":
            if name is None:
                if record.watch:
                    return await self._watch(request, record, rt, ns, q)
                return json_response(self._list(rt, ns, q))
            assert ns is not None
            if sub is None or (sub == "status" and rt.status_subresource):
                return json_response(self._require(rt, ns, name))
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
            return json_response(obj, 201)
        if name is None:
            raise ApiError(405, "the server does not allow this method on the requested resource")
        if method == "DELETE":
            options = await self._body(request, optional=True) or {}
            policy = q.get("propagationPolicy") or options.get("propagationPolicy")
            if policy is None and (
                flag(q.get("orphanDependents")) or options.get("orphanDependents") is True
            ):
                policy = "Orphan"
            if policy is None and (
                q.get("orphanDependents") == "false" or options.get("orphanDependents") is False
            ):
                policy = "Background"
            result = self._delete(rt, ns, name, policy, options.get("preconditions") or {}, dry_run=dry_run)
            return json_response(result)
        if method == "PATCH":
            old = self._require(rt, ns, name)
            patched = apply_patch(request.content_type, old, await self._body(request))
            return json_response(self._update(rt, ns, name, patched, dry_run=dry_run))
        if method == "PUT":
            return json_response(self._update(rt, ns, name, await self._body(request), dry_run=dry_run))
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

    def _authenticate(self, request: web.Request) -> User:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if not token and request.path.rstrip("/") in PUBLIC_INFO:
            # Anonymous requests are on by default, and the system:public-info-viewer
            # ClusterRole lets system:unauthenticated read these (kubernetes/kubernetes:
            # plugin/pkg/auth/authorizer/rbac/bootstrappolicy/policy.go); nothing else.
            return ANONYMOUS
        user = self.users.get(token) if scheme == "Bearer" else None
        if user is None:
            raise unauthorized()
        return user

    @staticmethod
    async def _body(request: web.Request, optional: bool = False) -> Any:
        raw = await request.read()
        if len(raw) > MAX_REQUEST_BYTES:
            # staging/src/k8s.io/apiserver/pkg/endpoints/handlers/rest.go limitedReadBody, with
            # MaxRequestBodyBytes = 3 MiB (staging/src/k8s.io/apiserver/pkg/server/config.go).
            message = f"Request entity too large: limit is {MAX_REQUEST_BYTES}"
            raise ApiError(413, message, reason="RequestEntityTooLarge")
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
        limit = int_param(q, "limit") or 0
        rv_text = q.get("resourceVersion") or ""
        start: tuple[str, str] | None = None
        if q.get("continue"):
            at, start = decode_continue(q["continue"])
            if at < self._compacted:
                raise ApiError(410, CONTINUE_EXPIRED, reason="Expired")
            objs = self._select_at(rt, ns, selector, at)
        elif rv_text not in ("", "0"):
            at = int_param(q, "resourceVersion") or 0
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
            objs = objs[bisect.bisect_right([obj_key(o) for o in objs], start) :]
        meta: Obj = {"resourceVersion": str(at)}
        if limit and len(objs) > limit:
            meta["continue"] = encode_continue(at, objs[limit - 1])
            if not selector:
                meta["remainingItemCount"] = len(objs) - limit
            objs = objs[:limit]
        return {
            "kind": f"{rt.kind}List",
            "apiVersion": rt.api_version,
            "metadata": meta,
            "items": [strip_type(o) for o in objs],
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
        tail = int_param(q, "tailLines")
        if tail is not None:
            lines = text.splitlines(keepends=True)
            text = "".join(lines[-tail:]) if tail > 0 else ""
        limit = int_param(q, "limitBytes")
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
        bookmarks = flag(q.get("allowWatchBookmarks"))
        timeout = int_param(q, "timeoutSeconds")
        rv_text = q.get("resourceVersion") or ""
        watch = Watch(rt, ns, selector, bookmarks)
        backlog: list[bytes] = []
        expired: Obj | None = None
        if rv_text in ("", "0") or flag(q.get("sendInitialEvents")):
            backlog = [event_line("ADDED", obj) for obj in self._select(rt, ns, selector)]
            if flag(q.get("sendInitialEvents")) and bookmarks:
                marker = self._bookmark(rt, self._rv)
                marker["metadata"]["annotations"] = {"k8s.io/initial-events-end": "true"}
                backlog.append(event_line("BOOKMARK", marker))
        else:
            since = int_param(q, "resourceVersion") or 0
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
                await response.write(event_line("ERROR", expired))
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
        self, request: web.Request, response: web.StreamResponse, watch: Watch, timeout: int | None
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
                await response.write(event_line("BOOKMARK", self._bookmark(watch.rt, self._rv)))
                next_bookmark = loop.time() + self.bookmark_interval
                continue
            items = [item]
            while not watch.queue.empty():  # send what piled up in one write
                items.append(watch.queue.get_nowait())
            chunk = bytearray()
            for item in items:
                if isinstance(item, Stop):
                    if chunk:
                        await response.write(bytes(chunk))
                    if item.abort and request.transport is not None:
                        request.transport.abort()
                    return not item.abort
                if isinstance(item, Bookmark):
                    chunk += event_line("BOOKMARK", self._bookmark(watch.rt, item.rv))
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
        """``/_fake/...``: test controls over HTTP (``FakeKubeAPI`` serves them)."""
        return json_response(status_object(404, "NotFound", f"no control {path!r}"), 404)
