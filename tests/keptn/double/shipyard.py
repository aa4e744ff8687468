"""The shipyard controller's view of a task and of uniform registrations.

- Task completion (keptn/keptn ``shipyard-controller/models/sequence_execution.go`` ``IsFinished``/
  ``IsFailed``; matching in ``internal/controller/shipyardcontroller.go`` ``handleTaskEvent`` by
  ``data.project`` + ``shkeptncontext`` + ``triggeredid``, ``models/eventscope.go``: stage and
  service must be set): a task is complete when #finished == #started > 0 among the events
  received for its ``.triggered`` id, with no dedup by id and no pairing by source. Then the
  ``.triggered`` event leaves the open list; later events for it find no open task and are
  dropped (kept here in ``late`` so tests can see them).
- Registrations (``shipyard-controller/internal/handler/uniformintegrationhandler.go``
  ``Register``/``KeepAlive``; ``main.go`` ``UNIFORM_INTEGRATION_TTL`` 1m, a Mongo TTL index on
  ``metadata.lastseen``): looked up by name + namespace; a new one gets id sha1 of
  name-namespace-hostname and 201; a known one 200 with its id and merged subscriptions.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from typing import Any

REGISTRATION_TTL = 60.0


@dataclass
class Task:
    triggered: dict[str, Any]
    started: list[dict[str, Any]] = field(default_factory=list)
    finished: list[dict[str, Any]] = field(default_factory=list)
    closed: bool = False
    late: list[dict[str, Any]] = field(default_factory=list)

    def take(self, event: dict[str, Any]) -> bool:
        """Count one accepted .started/.finished; True when this event closed the task."""
        if self.closed:
            self.late.append(event)
            return False
        (self.started if str(event["type"]).endswith(".started") else self.finished).append(event)
        self.closed = len(self.started) > 0 and len(self.finished) == len(self.started)
        return self.closed

    @property
    def failed(self) -> bool:
        return any((e.get("data") or {}).get("result") not in ("pass", "warning") for e in self.finished)


def integration_id(name: str, namespace: str, hostname: str) -> str:
    return hashlib.sha1(f"{name}-{namespace}-{hostname}".encode()).hexdigest()


def validate_subscriptions(subscriptions: list[Any]) -> str | None:
    for sub in subscriptions:
        if not isinstance(sub, dict) or not sub.get("event"):
            return "the event must be specified when setting up a subscription"
        flt = sub.get("filter") or {}
        if flt.get("services") is not None and flt.get("stages") is None:
            return "at least one stage must be specified when setting up a subscription filter for a service"
    return None


def merge_subscriptions(existing: list[dict[str, Any]], new: list[Any]) -> None:
    known = {(s.get("event"), repr(s.get("filter"))) for s in existing}
    for sub in new:
        if isinstance(sub, dict) and (sub.get("event"), repr(sub.get("filter"))) not in known:
            existing.append({**sub, "id": str(uuid.uuid4())})
