"""HTTP source: CloudEvents in binary, structured and batch content modes (aiohttp).

Answers 202 once every event of the request is durably accepted (or was already), 400 with the
reason for a malformed event, 401 without the configured bearer token, 413 for an oversized
body, 429 when the queue is full, 503 while shutting down. Also /healthz, /readyz, /metrics.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from datetime import datetime

from aiohttp import web
from cloudevents.core.bindings.http import HTTPMessage, from_binary
from cloudevents.core.exceptions import BaseCloudEventException
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from executor.model.events import (
    REQUIRED_ATTRIBUTES,
    Event,
    EventError,
    Offer,
    event_from_mapping,
    parse_json,
)
from executor.sources.base import Intake
from executor.support.metrics import Metrics

STRUCTURED = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"
MAX_BATCH = 1000
_FORMAT = JSONFormat()


def parse_request(headers: dict[str, str], body: bytes) -> list[Event]:
    """The events of one request; EventError names the first problem."""
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    if any(k.startswith("ce-") for k in headers):
        return [_binary(headers, body)]
    if content_type == BATCH:
        raw = parse_json(body)
        if not isinstance(raw, list):
            raise EventError("a batch must be a JSON array of CloudEvents")
        if len(raw) > MAX_BATCH:
            raise EventError(f"a batch holds at most {MAX_BATCH} events, not {len(raw)}")
        events = []
        for i, item in enumerate(raw):
            try:
                events.append(event_from_mapping(item))
            except EventError as exc:
                raise EventError(f"event {i} of the batch: {exc}") from None
        return events
    if content_type in (STRUCTURED, "application/json", ""):
        return [event_from_mapping(parse_json(body))]
    raise EventError(
        f"content type {content_type!r} is not a CloudEvent: send ce-* headers (binary mode), "
        f"{STRUCTURED} or {BATCH}"
    )


def _binary(headers: dict[str, str], body: bytes) -> Event:
    # The cloudevents package fills a missing id with a random one; a missing id must be an
    # error here, since (source, id) is what makes redelivery safe.
    for name in REQUIRED_ATTRIBUTES:
        if not headers.get(f"ce-{name}", "").strip():
            raise EventError(f"header ce-{name} is missing or empty")
    if body and "json" not in headers.get("content-type", "application/json"):
        raise EventError("binary-mode data must be JSON (Content-Type: application/json)")
    try:
        ce = from_binary(HTTPMessage(headers=headers, body=body), _FORMAT, CloudEvent)
    except (BaseCloudEventException, ValueError) as exc:
        raise EventError(f"invalid binary-mode CloudEvent: {exc}") from None
    attributes = {
        k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in ce.get_attributes().items()
    }
    attributes.pop("datacontenttype", None)
    attributes["datacontenttype"] = "application/json"
    data = ce.get_data()
    if isinstance(data, (bytes, str)):
        data = parse_json(data.encode() if isinstance(data, str) else data) if data else None
    raw = dict(attributes)
    raw["data"] = data
    return event_from_mapping(raw)


class HttpSource:
    def __init__(
        self,
        intake: Intake,
        metrics: Metrics,
        *,
        path: str = "/",
        max_body: int = 1 << 20,
        token: str = "",
        not_ready: Callable[[], str | None],
    ) -> None:
        self.intake = intake
        self.metrics = metrics
        self.path = path
        self.max_body = max_body
        self.token = token
        # What keeps the service from taking work, or None: /readyz answers 503 with it.
        self.not_ready = not_ready

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.max_body)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/readyz", self.readyz)
        app.router.add_get("/metrics", self.metrics_page)
        app.router.add_post(self.path, self.receive)
        return app

    async def healthz(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(self, _request: web.Request) -> web.Response:
        reason = self.not_ready()
        if reason is None:
            return web.json_response({"status": "ready"})
        return web.json_response({"status": "not ready", "reason": reason}, status=503)

    async def metrics_page(self, _request: web.Request) -> web.Response:
        return web.Response(text=self.metrics.render(), content_type="text/plain", charset="utf-8")

    def _reject(self, status: int, reason: str, kind: str) -> web.Response:
        self.metrics.inc("job_executor_events_rejected_total", reason=kind)
        return web.json_response({"error": reason}, status=status)

    async def receive(self, request: web.Request) -> web.Response:
        if self.token:
            given = request.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {self.token}".encode()):
                return self._reject(401, "missing or wrong bearer token", "unauthorized")
        if request.content_length is not None and request.content_length > self.max_body:
            return self._reject(413, f"body is larger than {self.max_body} bytes", "too_large")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return self._reject(413, f"body is larger than {self.max_body} bytes", "too_large")
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            events = parse_request(headers, body)
        except EventError as exc:
            return self._reject(400, str(exc), "malformed")
        if not self.intake.accepting:
            return self._reject(503, "shutting down; send again later", "closed")
        if len(events) > self.intake.room():
            return web.json_response(
                {"error": "queue is full; retry later"}, status=429, headers={"Retry-After": "1"}
            )
        counts = {"accepted": 0, "duplicate": 0}
        for event in events:
            answer = self.intake.offer(event)
            if answer is Offer.ACCEPTED:
                counts["accepted"] += 1
            elif answer is Offer.DUPLICATE:
                counts["duplicate"] += 1
            else:  # room was checked above and nothing awaits in between; only a stop lands here
                return self._reject(503, "shutting down; send again later", "closed")
        return web.json_response(counts, status=202)
