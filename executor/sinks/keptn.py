"""Sink to the Keptn API: events POSTed to the api-service, error logs to the log ingestion API.

Events go to ``POST /v1/event`` (keptn/keptn ``api/swagger.yaml``). Error logs follow the Keptn
Go SDK's log forwarder (go-utils ``pkg/sdk/connector/logforwarder/logforwarder.go``): a
``.finished`` event with status ``errored`` and every ``sh.keptn.log.error`` event also become a
log entry ``{"integrationid", "message", "shkeptncontext", "task", "triggeredid"}`` POSTed to
``/controlPlane/v1/log``, attributed to the integration's registration id. Problems found before
any task ran (no config, invalid config, refused image) are reported like JES did
(keptn-contrib/job-executor-service ``pkg/keptn/errorlog.go``): an ``sh.keptn.log.error`` event
with ``{"message", "integrationid", "task"}``, built by the reporter's `error_log_event` and sent through the
outbox like any other event, so this sink forwards it as a log entry too. When the integration id
is not known (no poller in this process), it is looked up by name, as JES did.

Keptn does not deduplicate: the api-service gives every accepted event a new id. So each task
event carries our id in ``data.jobexecutor.eventid``, and before an event whose earlier attempt
may have arrived is sent again, the outbox asks (``already_has``) Keptn's event store
(mongodb-datastore ``GET /event/type/{type}?filter=...``) whether it holds it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from executor.keptn.api import KeptnAPI, KeptnError
from executor.keptn.format import ERROR_LOG_TYPE, KEPTN_PREFIX, is_task_event, now, task_of
from executor.model.errors import Permanent, Temporary
from executor.model.events import OutEvent

log = logging.getLogger(__name__)

_LOOKUP_TTL = 300.0


class KeptnSink:
    name = "keptn"

    def __init__(
        self,
        api: KeptnAPI,
        *,
        integration_id: Callable[[], str | None] | None = None,
        integration_name: str = "job-executor",
        forward_logs: bool = True,
        owns_api: bool = False,
    ) -> None:
        self.api = api
        self.owns_api = owns_api  # the client is usually shared with the poller and resolver
        self._integration_id = integration_id
        self.integration_name = integration_name
        self.forward_logs = forward_logs
        self._looked_up: tuple[float, str] | None = None

    async def send(self, event: OutEvent) -> None:
        if not str(event["type"]).startswith(KEPTN_PREFIX):
            # A result event for a non-Keptn trigger: the api-service refuses types outside
            # Keptn's (400 "unknown event type", keptn/keptn api/handlers/eventvalidation.go).
            log.debug("not sending %s %s to Keptn: not a Keptn event type", event["type"], event["id"])
            return
        try:
            await self.api.send_event(with_mark(event))
        except KeptnError as exc:
            raise (Permanent if isinstance(exc, Permanent) else Temporary)(f"Keptn API: {exc}") from None
        if self.forward_logs:
            await self._forward(event)

    async def already_has(self, event: OutEvent) -> bool:
        """Whether Keptn stored this event already (an attempt before a crash reached it). The
        api-service gives events new ids, so our id is looked for in the mark `send` put into
        the data; asked only for task events, the ones a duplicate breaks (a second `.started`
        keeps its task open for ever)."""
        data = event.get("data") or {}
        project, triggered = str(data.get("project") or ""), str(event.get("triggeredid") or "")
        if not project or not triggered or not is_task_event(str(event.get("type") or "")):
            return False
        match = {
            "data.project": project,
            "triggeredid": triggered,
            f"data.{MARK}.{MARK_ID}": str(event["id"]),
        }
        try:
            return bool(await self.api.find_events(str(event["type"]), match))
        except KeptnError as exc:
            raise (Permanent if isinstance(exc, Permanent) else Temporary)(f"Keptn API: {exc}") from None

    async def close(self) -> None:
        if self.owns_api:
            await self.api.close()

    async def _forward(self, event: Mapping[str, Any]) -> None:
        """Best effort: the event itself was delivered, so a lost log entry must not resend it."""
        try:
            entries = log_entries(event, await self.integration_id())
            if entries:
                await self.api.send_logs(entries)
        except KeptnError as exc:
            log.warning("could not forward the error log of event %s to Keptn: %s", event.get("id"), exc)

    async def integration_id(self) -> str:
        if self._integration_id is not None:
            known = self._integration_id()
            if known:
                return known
        now = time.monotonic()
        if self._looked_up is not None and now - self._looked_up[0] < _LOOKUP_TTL:
            return self._looked_up[1]
        found = ""
        for registration in await self.api.get_registrations(self.integration_name):
            if registration.get("name") == self.integration_name and registration.get("id"):
                found = str(registration["id"])
                break
        self._looked_up = (now, found)
        return found


# Our own id of an event, kept in its data: the only part of it the api-service publishes as we
# sent it (it replaces id and time), so the event can be found again in Keptn's event store.
MARK = "jobexecutor"
MARK_ID = "eventid"


def with_mark(event: OutEvent) -> dict[str, Any]:
    body: dict[str, Any] = dict(event)
    data = body.get("data")
    if isinstance(data, dict) and is_task_event(str(body.get("type") or "")):
        ours = data.get(MARK)  # the reporter's phase times share the object
        body["data"] = {**data, MARK: {**(ours if isinstance(ours, dict) else {}), MARK_ID: str(body["id"])}}
    return body


def log_entries(event: Mapping[str, Any], integration_id: str) -> list[dict[str, Any]]:
    """The log entries Keptn's log forwarder makes of an outgoing event (none for most events)."""
    event_type = str(event.get("type") or "")
    raw_data = event.get("data")
    data: Mapping[str, Any] = raw_data if isinstance(raw_data, dict) else {}
    if event_type.endswith(".finished") and data.get("status") == "errored":
        task, message = task_of(event_type), str(data.get("message") or "")
    elif event_type == ERROR_LOG_TYPE:
        task, message = str(data.get("task") or ""), str(data.get("message") or "")
        integration_id = str(data.get("integrationid") or integration_id)
    else:
        return []
    if not integration_id:
        return []  # the SDK forwards nothing without an integration id either
    return [
        {
            "integrationid": integration_id,
            "message": message,
            "shkeptncontext": str(event.get("shkeptncontext") or ""),
            "task": task,
            "triggeredid": str(event.get("triggeredid") or ""),
            "time": str(event.get("time") or now()),
        }
    ]
