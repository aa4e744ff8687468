"""Wire-level pieces of the fake API server: request records, watch streams, list tokens.

Plain data and small helpers shared by the store, the REST handlers and the test controls
(see ``server.py`` for the whole picture).
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web

from tests.kubeapi.resources import ApiError, Obj, ResourceType
from tests.kubeapi.selectors import Selector

INITIAL_RESOURCE_VERSION = 1000
POD_SUFFIX = "bcdfghjklmnpqrstvwxz2456789"  # what the API server's generateName uses
CONTINUE_EXPIRED = (
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


@dataclass
class HoldRule:
    """``hold_next``: keep the next ``remaining`` matching requests waiting, neither acted on nor
    answered, until ``release``: a request in flight while its client stops. A client that goes
    away meanwhile either leaves the write to be done at ``release`` (``complete``: the API server
    had it under way, as kube-apiserver completes an etcd write whose client left) or drops it
    (the request's context was cancelled before the write). kube-apiserver runs a write's storage
    call apart from the handler that waits for it (k8s.io/apiserver pkg/endpoints/handlers/
    finisher/finisher.go FinishRequest), so a write whose client left can still be committed."""

    remaining: int
    method: str | None = None
    path_contains: str | None = None
    complete: bool = True
    waiting: int = 0
    released: asyncio.Event = field(default_factory=asyncio.Event)

    def matches(self, record: RequestRecord) -> bool:
        return (
            self.remaining > 0
            and (self.method is None or self.method.upper() == record.method)
            and (self.path_contains is None or self.path_contains in record.path)
        )

    async def hold(self) -> None:
        self.remaining -= 1
        self.waiting += 1
        try:
            await self.released.wait()
        finally:
            self.waiting -= 1


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
class HistoryEvent:
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
            return event_line(kind, obj)
        if kind not in self._lines:
            self._lines[kind] = event_line(kind, obj)
        return self._lines[kind]


@dataclass(frozen=True)
class Stop:
    abort: bool


@dataclass(frozen=True)
class Bookmark:
    rv: int


def clone(obj: Any) -> Any:
    """A deep copy of JSON data (several times faster than copy.deepcopy)."""
    return json.loads(json.dumps(obj))


def event_line(kind: str, obj: Obj) -> bytes:
    return json.dumps({"type": kind, "object": obj}, separators=(",", ":")).encode() + b"\n"


def with_rv(obj: Obj, rv: str) -> Obj:
    return {**obj, "metadata": {**obj["metadata"], "resourceVersion": rv}}


class Watch:
    """One open watch stream: its filter and its queue of changes to send."""

    def __init__(self, rt: ResourceType, namespace: str | None, selector: Selector, bookmarks: bool):
        self.rt = rt
        self.namespace = namespace
        self.selector = selector
        self.bookmarks = bookmarks
        self.queue: asyncio.Queue[HistoryEvent | Stop | Bookmark] = asyncio.Queue()

    def offer(self, ev: HistoryEvent) -> None:
        if self.namespace is None or ev.namespace == self.namespace:
            self.queue.put_nowait(ev)

    def translate(self, ev: HistoryEvent) -> tuple[str, Obj] | None:
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
            return "DELETED", with_rv(ev.prev, ev.obj["metadata"]["resourceVersion"])
        return None


def flag(value: str | None) -> bool:
    return value is not None and value.lower() in ("1", "true")


def int_param(q: Mapping[str, str], name: str) -> int | None:
    text = q.get(name)
    if text in (None, ""):
        return None
    try:
        return int(text)
    except ValueError:
        raise ApiError(400, f'{name}: Invalid value: "{text}": must be an integer') from None


def obj_key(obj: Obj) -> tuple[str, str]:
    meta = obj["metadata"]
    return meta.get("namespace") or "", meta["name"]


def strip_type(obj: Obj) -> Obj:
    return {k: v for k, v in obj.items() if k not in ("kind", "apiVersion")}


def json_response(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps(body, separators=(",", ":")).encode(),
        content_type="application/json",
        headers=headers,
    )


def encode_continue(rv: int, last: Obj) -> str:
    ns, name = obj_key(last)
    token = {"v": "meta.k8s.io/v1", "rv": rv, "start": f"{ns}/{name}\u0000"}
    return base64.urlsafe_b64encode(json.dumps(token).encode()).decode().rstrip("=")


def decode_continue(token: str) -> tuple[int, tuple[str, str]]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        ns, _, name = data["start"].rstrip("\u0000").partition("/")
        return int(data["rv"]), (ns, name)
    except (ValueError, KeyError, TypeError, AttributeError):
        raise ApiError(400, "continue key is not valid: incorrect encoded start resourceVersion") from None
