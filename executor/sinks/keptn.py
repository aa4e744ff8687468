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
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from executor.keptn.api import KeptnAPI, KeptnError
from executor.keptn.format import ERROR_LOG_TYPE, now, task_of
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
        try:
            await self.api.send_event(event)
        except KeptnError as exc:
            raise (Permanent if isinstance(exc, Permanent) else Temporary)(f"Keptn API: {exc}") from None
        if self.forward_logs:
            await self._forward(event)

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
