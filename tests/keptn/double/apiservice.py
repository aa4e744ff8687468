"""What Keptn's api-service does with ``POST /v1/event`` and the gateway's ``/v1/auth`` check.

Sources (keptn/keptn unless named):
- ``api/handlers/eventvalidation.go``: which event types are accepted and what each must carry;
- ``api/handlers/event.go``: ``PostEvent`` rewrites id, time, contenttype, source and
  shkeptncontext (``createOrApplyKeptnContext``) before publishing; validation failures are 400;
- ``api/restapi/configure_keptn.go``: ``MAX_EVENT_SIZE_KB`` 64, event validation on by default,
  the auth rate limiter (``MAX_AUTH_REQUESTS_PER_SECOND`` 1, ``MAX_AUTH_REQUESTS_BURST`` 2);
- ``api/middleware/sizelimiter.go`` (``http.MaxBytesReader``), ``api/middleware/ratelimiter.go``
  (a token bucket per client IP, used only when the token is invalid), ``api/middleware/tokenauth.go``
  (401 ``incorrect api key auth``);
- go-utils ``pkg/lib/v0_2_0/events.go`` (``EventData``: labels are map[string]string,
  ``IsTaskEventType``/``IsSequenceEventType`` by the number of dot-separated parts).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

MAX_EVENT_SIZE = 64 * 1024
TASK_KINDS = ("started", "finished", "invalidated")
DEFAULT_SOURCE = "https://github.com/keptn/keptn/api"
_STRING_FIELDS = ("project", "stage", "service", "status", "result", "message")


class Refused(Exception):
    def __init__(self, status: int, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = status if code is None else code


def check_body(event: Any) -> dict[str, Any]:
    """The swagger binding: an object with ``data``, ``source`` and ``type`` (go-openapi answers
    a missing required property with HTTP 422 and its own code 602), ``time`` a date-time."""
    if not isinstance(event, dict):
        raise Refused(
            400,
            'parsing body body from "" failed, because json: cannot unmarshal into models.KeptnContextExtendedCE',
        )
    for name in ("data", "source", "type"):
        if event.get(name) is None:
            raise Refused(422, f"{name} in body is required", code=602)
    for name in ("type", "source", "id", "shkeptncontext", "triggeredid", "gitcommitid", "specversion"):
        if name in event and event[name] is not None and not isinstance(event[name], str):
            raise Refused(400, f'parsing body body from "" failed, because json: cannot unmarshal {name}')
    if event.get("time") is not None:
        try:
            datetime.fromisoformat(str(event["time"]).replace("Z", "+00:00"))
        except ValueError:
            raise Refused(422, "time in body must be of type date-time", code=602) from None
    return event


def _event_data(event: dict[str, Any]) -> dict[str, Any]:
    """go-utils ``v0_2_0.Decode`` into ``EventData``: a wrong JSON type anywhere fails the decode."""
    data = event.get("data")
    if not isinstance(data, dict):
        raise Refused(400, "could not parse common event data")
    for name in _STRING_FIELDS:
        if name in data and data[name] is not None and not isinstance(data[name], str):
            raise Refused(400, "could not parse common event data")
    labels = data.get("labels")
    if labels is not None and (
        not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values())
    ):
        raise Refused(400, "could not parse common event data")
    return data


def validate(event: dict[str, Any]) -> None:
    """keptn/keptn ``api/handlers/eventvalidation.go`` ``Validate``."""
    event_type = str(event["type"])
    if event_type in ("sh.keptn.log.error", "sh.keptn.events.problem"):
        return
    if event_type == "sh.keptn.event.monitoring.configure":
        data = _event_data(event)
        if not data.get("project") or not data.get("type"):
            raise Refused(400, "mandatory fields(s) 'project', 'service' or 'type' missing")
        return
    parts = event_type.split(".")
    prefixed = event_type.startswith("sh.keptn.event.")
    if prefixed and len(parts) == 6:  # sh.keptn.event.<stage>.<sequence>.<kind>
        if parts[-1] != "triggered":
            raise Refused(400, "unknown event type action: " + parts[-1])
        data = _event_data(event)
        if not (data.get("project") and data.get("stage") and data.get("service")):
            raise Refused(400, "mandatory field(s) 'project', 'stage' or 'service' missing")
        if data["stage"] != parts[3]:
            raise Refused(400, "stage name in event data and in event type does not match")
        return
    if prefixed and len(parts) == 5:  # sh.keptn.event.<task>.<kind>
        kind = parts[-1]
        if kind not in TASK_KINDS:
            raise Refused(400, "unknown event type action: " + kind)
        if kind == "invalidated":
            return
        data = _event_data(event)
        if not (data.get("project") and data.get("stage") and data.get("service")):
            raise Refused(400, "mandatory field(s) 'project', 'stage' or 'service' missing")
        if kind == "finished":
            # Only non-empty: values outside pass/warning/fail and succeeded/errored/unknown pass
            # the api-service (the shipyard controller counts any result but pass/warning as failed).
            if not data.get("result"):
                raise Refused(400, "result field is not set")
            if not data.get("status"):
                raise Refused(400, "status field is not set")
        if not event.get("triggeredid"):
            raise Refused(400, "mandatory field 'triggeredid' missing")
        return
    raise Refused(400, "unknown event type")


def keptn_context(given: str) -> str:
    """``createOrApplyKeptnContext``: keep a UUID; derive one from any other non-empty string
    (its first 16 bytes, space-padded, read as the random source of a version-4 UUID); else new."""
    if not given:
        return str(uuid.uuid4())
    try:
        return str(uuid.UUID(given)) if len(given) == 36 else _derived(given)
    except ValueError:
        return _derived(given)


def _derived(given: str) -> str:
    raw = given.encode()
    raw = raw.ljust(16, b" ") if len(raw) < 16 else raw
    return str(uuid.UUID(bytes=raw[:16], version=4))


def rewrite(event: dict[str, Any], now: str) -> dict[str, Any]:
    """The event as the api-service publishes it (``event.go`` ``PostEvent``). Unknown keys are
    dropped by the Go decoder; ``data`` and the known fields are kept."""
    known = (
        "contenttype",
        "data",
        "extensions",
        "gitcommitid",
        "shkeptncontext",
        "shkeptnspecversion",
        "source",
        "specversion",
        "triggeredid",
        "type",
    )
    out = {k: event[k] for k in known if event.get(k) not in (None, "")}
    out["id"] = str(uuid.uuid4())
    out["time"] = now
    out["contenttype"] = "application/json"
    out["source"] = event.get("source") or DEFAULT_SOURCE
    out["shkeptncontext"] = keptn_context(str(event.get("shkeptncontext") or ""))
    return out


class AuthRateLimiter:
    """``ratelimiter.go``: golang.org/x/time/rate token bucket per client IP (1/s, burst 2),
    consulted only for an invalid token; a refused bucket answers 429."""

    def __init__(self, clock: Callable[[], float], rate: float = 1.0, burst: int = 2) -> None:
        self.clock = clock
        self.rate = rate
        self.burst = burst
        self._buckets: dict[str, tuple[float, float]] = {}  # ip -> (tokens, at)

    def allow(self, ip: str) -> bool:
        now = self.clock()
        tokens, at = self._buckets.get(ip, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - at) * self.rate)
        if tokens < 1.0:
            self._buckets[ip] = (tokens, now)
            return False
        self._buckets[ip] = (tokens - 1.0, now)
        return True
