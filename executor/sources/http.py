"""HTTP source: CloudEvents in binary, structured and batch content modes (aiohttp).

Answers 202 once every event of the request is durably accepted (or was already), 400 with the
reason for a malformed event, 401 (with a Bearer challenge) without the configured token, 408
for a body that does not arrive in time, 413 for an oversized body or a batch larger than the
queue, 415 for an event format other than JSON, 429 when the queue is full or the clusters'
admission holds tasks back (Retry-After from the backlog), 503 while shutting
down; every refusal is counted by reason. Also /healthz, /readyz, /metrics and, when origins
are configured, the CloudEvents webhook handshake (OPTIONS).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hmac
import json
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web

from executor.model.events import Event, EventError, Offer, event_from_mapping, parse_json
from executor.settings.serving import ReceiverSettings
from executor.sources.api import RunApi
from executor.sources.base import Intake
from executor.sources.binding import (
    Mode,
    batch_members,
    binary_event,
    content_mode,
    structured_format_is_json,
)
from executor.support import tracing
from executor.support.metrics import Metrics
from executor.ui import RunPage

STRUCTURED = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"
MAX_BATCH = 1000
# The event loop's share of one request: a body this large is parsed in a step of its own, and
# a batch is committed this many events per step, so /healthz and other requests are answered
# in between.
OFFERS_PER_STEP = 50  # events of one batch encoded and stored in one loop step
YIELD_AFTER_BYTES = 64 * 1024
REALM = 'Bearer realm="job-executor"'


class Refusal(Exception):
    """A request we answer with an error: its status, the reason for the sender, the metric label."""

    def __init__(self, status: int, reason: str, kind: str, retry_after: int = 1) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.kind = kind
        self.retry_after = retry_after  # seconds, for a 429


def parse_request(
    headers: Mapping[str, str], body: bytes, max_attribute_bytes: int | None = None
) -> list[Event]:
    """The events of one request (header names lower-case); EventError names the first problem.

    The content mode is chosen by Content-Type alone (binding section 3): `ce-` headers that come
    with a structured or batched request are copies at most (3.2.3) and are ignored."""
    content_type = headers.get("content-type")
    mode = content_mode(content_type)
    if mode is Mode.BINARY:
        if "ce-datacontenttype" in headers:
            raise EventError(
                "header ce-datacontenttype is not allowed in binary mode: Content-Type is the "
                "datacontenttype (binding 3.1.1)"
            )
        return [binary_event(headers, body, content_type, max_attribute_bytes)]
    if not structured_format_is_json(content_type):
        raise Refusal(
            415, f"event format {content_type!r} is not supported; send {STRUCTURED}", "unsupported"
        )
    if mode is Mode.STRUCTURED:
        return [event_from_mapping(parse_json(body), max_attribute_bytes)]
    events = []
    for i, item in enumerate(batch_members(body, MAX_BATCH)):
        try:
            events.append(event_from_mapping(item, max_attribute_bytes))
        except EventError as exc:
            raise EventError(f"event {i} of the batch: {exc}") from None
    return events


class HttpSource:
    def __init__(
        self,
        intake: Intake,
        metrics: Metrics,
        settings: ReceiverSettings,
        *,
        not_ready: Callable[[], str | None],
        detail: Callable[[], dict[str, Any]] | None = None,
        saturated: Callable[[], int | None] | None = None,
    ) -> None:
        self.intake = intake
        # While the clusters' admission holds tasks back: seconds to wait before sending again.
        self.saturated = saturated
        self.metrics = metrics
        self.settings = settings
        self.token = settings.auth_token
        # What keeps the service from taking work, or None: /readyz answers 503 with it.
        self.not_ready = not_ready
        # More for /readyz to show either way (the state of each cluster of CLUSTERS_FILE).
        self.detail = detail
        # The read API and the run page, mounted on this port when the service sets them.
        self.api: RunApi | None = None
        self.ui: RunPage | None = None

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.settings.max_body_bytes)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/readyz", self.readyz)
        app.router.add_get("/metrics", self.metrics_page)
        if self.api is not None:  # before the events path, which may be "/"
            self.api.add_routes(app.router)
        if self.ui is not None:
            self.ui.add_routes(app.router)
        app.router.add_post(self.settings.path, self.receive)
        if self.settings.webhook_allowed_origins:
            app.router.add_route("OPTIONS", self.settings.path, self.handshake)
        return app

    def runner(self) -> web.AppRunner:
        """The app's runner with the slow-client defences aiohttp lacks: a header timeout (its
        keep-alive timer, which closes a connection that has not produced a complete request,
        counted from the connection or the previous answer) and a cap on connections served."""
        return _CappedRunner(
            self.app(),
            self.settings.max_connections,
            access_log=None,
            handle_signals=False,
            keepalive_timeout=self.settings.header_timeout_seconds,
        )

    async def healthz(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(self, _request: web.Request) -> web.Response:
        reason = self.not_ready()
        more = {"detail": self.detail()} if self.detail is not None else {}
        if reason is None:
            return web.json_response({"status": "ready", **more})
        return web.json_response({"status": "not ready", "reason": reason, **more}, status=503)

    async def metrics_page(self, _request: web.Request) -> web.Response:
        return web.Response(text=self.metrics.render(), content_type="text/plain", charset="utf-8")

    def _reject(self, refusal: Refusal, headers: Mapping[str, str] | None = None) -> web.Response:
        self.metrics.inc("job_executor_events_rejected_total", reason=refusal.kind)
        return web.json_response({"error": refusal.reason}, status=refusal.status, headers=headers)

    def allowed(self, request: web.Request) -> bool:
        """Whether a request may read the API: with a token set, only with it."""
        return not self.token or self._authorized(request)

    def _authorized(self, request: web.Request) -> bool:
        # RFC 7235 2.1: the scheme is case-insensitive; the token is compared in constant time.
        scheme, _, given = request.headers.get("Authorization", "").strip().partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), self.token.encode())

    async def receive(self, request: web.Request) -> web.Response:
        try:
            return await self._receive(request)
        except Refusal as refusal:
            headers: dict[str, str] = {}
            if refusal.status == 401:
                headers["WWW-Authenticate"] = REALM  # RFC 7235 3.1: every 401 carries a challenge
            elif refusal.status == 429:
                headers["Retry-After"] = str(refusal.retry_after)
            response = self._reject(refusal, headers)
            if refusal.status == 408:
                response.force_close()  # the rest of the body may still arrive: not a new request
            return response

    async def _receive(self, request: web.Request) -> web.Response:
        if self.token and not self._authorized(request):
            raise Refusal(401, "missing or wrong bearer token", "unauthorized")
        limit = self.settings.max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            raise Refusal(413, f"body is larger than {limit} bytes (MAX_BODY_BYTES)", "too_large")
        try:
            if request.content.is_eof():
                # The whole body came with the headers (as a small event's does): nothing to wait
                # for, so no timer and no task of wait_for's.
                body = await request.read()
            else:
                body = await asyncio.wait_for(request.read(), timeout=self.settings.body_timeout_seconds)
        except web.HTTPRequestEntityTooLarge:
            raise Refusal(413, f"body is larger than {limit} bytes (MAX_BODY_BYTES)", "too_large") from None
        except TimeoutError:
            raise Refusal(
                408,
                f"the body did not arrive within {self.settings.body_timeout_seconds:g} s "
                "(RCV_BODY_TIMEOUT_SECONDS)",
                "timeout",
            ) from None
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            events = parse_request(headers, body, self.settings.max_attribute_bytes)
        except EventError as exc:
            raise Refusal(400, str(exc), "malformed") from None
        if len(body) > YIELD_AFTER_BYTES:
            # Parsing took a loop step; encoding a large event for the state takes one of its own,
            # and storing it a third (CPython's JSON codec holds the GIL: a thread would not help).
            await asyncio.sleep(0)
            if len(events) == 1:
                events[0].to_json()
                await asyncio.sleep(0)
        if not self.intake.accepting:  # stopping, or a replica standing by (LEADER_ELECTION)
            raise Refusal(503, f"{self.not_ready() or 'shutting down'}; send again later", "closed")
        if len(events) > self.intake.queue_size:
            raise Refusal(
                413,
                f"a batch of {len(events)} events can never fit the queue of {self.intake.queue_size} "
                "(QUEUE_SIZE): send smaller batches",
                "batch_too_large",
            )
        wait = self.saturated() if self.saturated is not None else None
        if wait is not None:
            raise Refusal(
                429,
                "the clusters admit no more Jobs for now (MAX_PENDING_JOBS or KUBE_WRITE_QPS: tasks "
                f"wait for admission); retry in {wait} s",
                "saturated",
                retry_after=wait,
            )
        if len(events) > self.intake.room():
            raise Refusal(429, "queue is full; retry later", "queue_full")
        counts = {"accepted": 0, "duplicate": 0}
        for first in range(0, len(events), OFFERS_PER_STEP):
            # A chunk's events share one commit with whatever else arrived in this loop turn
            # (group commit); a batch of hundreds goes in chunks, so that encoding and storing it
            # never holds the loop for long. Sent again after a 429 or 503, the events of the
            # batch already accepted count as duplicates.
            chunk = events[first : first + OFFERS_PER_STEP]
            if not tracing.enabled():
                answers = await self.intake.offer_all(chunk)
            else:
                with contextlib.ExitStack() as spans:
                    for event in chunk:
                        spans.enter_context(tracing.receive(event.attributes, "http"))
                    answers = await self.intake.offer_all(chunk)
            for number, answer in enumerate(answers, first + 1):
                if answer is Offer.ACCEPTED:
                    counts["accepted"] += 1
                elif answer is Offer.DUPLICATE:
                    counts["duplicate"] += 1
                elif answer is Offer.FULL:  # other requests' events took the room meanwhile
                    raise Refusal(
                        429,
                        f"queue is full after {number - 1} events of the batch; send it again later",
                        "queue_full",
                    )
                else:  # only a stop lands here
                    raise Refusal(503, "shutting down; send again later", "closed")
        return web.Response(
            body=_counts_json(counts["accepted"], counts["duplicate"]),
            status=202,
            content_type="application/json",
            charset="utf-8",
        )

    async def handshake(self, request: web.Request) -> web.Response:
        """The CloudEvents webhook abuse-protection handshake (cloudevents/spec:
        cloudevents/http-webhook.md 4.1, validation request and response), answered at once
        (the asynchronous WebHook-Request-Callback is not followed)."""
        origin = request.headers.get("WebHook-Request-Origin", "").strip()
        allowed = self.settings.webhook_allowed_origins
        if not origin:
            return web.json_response(
                {"error": "OPTIONS here is the webhook handshake: send WebHook-Request-Origin"},
                status=400,
                headers={"Allow": "POST, OPTIONS"},
            )
        if "*" not in allowed and origin.lower() not in {o.lower() for o in allowed}:
            return web.json_response(
                {"error": f"origin {origin[:200]!r} is not in WEBHOOK_ALLOWED_ORIGINS"}, status=403
            )
        rate = self.settings.webhook_allowed_rate
        asked = request.headers.get("WebHook-Request-Rate", "").strip()
        if asked.isdigit():
            rate = min(rate, int(asked))  # 4.2: never more than the sender asked for
        headers = {
            "WebHook-Allowed-Origin": origin,
            "WebHook-Allowed-Rate": str(rate),
            "Allow": "POST",
        }
        return web.Response(status=200, headers=headers)


@functools.lru_cache(maxsize=64)
def _counts_json(accepted: int, duplicate: int) -> bytes:
    """The 202's body; made once for the few answers a single event can have."""
    return json.dumps({"accepted": accepted, "duplicate": duplicate}).encode()


class _CappedRunner(web.AppRunner):
    """An AppRunner whose server serves at most `limit` connections: one beyond that is accepted
    by the kernel but left unread (transport paused) until a slot frees, so a flood of slow
    clients cannot take every file descriptor's worth of parsing; the keep-alive timer closes a
    waiting connection that outlives the header timeout."""

    def __init__(self, app: web.Application, limit: int, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.limit = limit

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        _cap_connections(server, self.limit)
        return server


def _cap_connections(server: web.Server, limit: int) -> None:
    made, lost = server.connection_made, server.connection_lost
    served: set[Any] = set()
    waiting: deque[tuple[Any, Any]] = deque()

    def connection_made(handler: Any, transport: Any) -> None:
        made(handler, transport)
        if len(served) < limit:
            served.add(handler)
        else:
            transport.pause_reading()
            waiting.append((handler, transport))

    def connection_lost(handler: Any, exc: BaseException | None) -> None:
        lost(handler, exc)
        served.discard(handler)
        for i, (queued, _) in enumerate(waiting):
            if queued is handler:
                del waiting[i]
                break
        while waiting and len(served) < limit:
            queued, transport = waiting.popleft()
            if not transport.is_closing():
                served.add(queued)
                transport.resume_reading()

    # Server's own hooks (RequestHandler calls them for each connection), wrapped per instance.
    setattr(server, "connection_made", connection_made)  # noqa: B010
    setattr(server, "connection_lost", connection_lost)  # noqa: B010
