"""Reporter: the Keptn started/finished events for an action, with deterministic ids.

Ids are derived from the triggering event and the action, so a report rebuilt after a crash
has the id of the one that may already have been sent, and receivers (and our outbox) dedup.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from executor.keptn.format import ERROR_LOG_TYPE, SPEC_VERSION, event_base, is_test_event, now, task_of
from executor.model.events import Event, OutEvent
from executor.model.tasks import TaskOutcome
from executor.results import ResultError, apply_result

SOURCE = "job-executor"
_ID_NAMESPACE = uuid.UUID("8c1bd64b-8a48-4bbd-9f0a-4e1fb6f8e1a2")
_LOG_ID_NAMESPACE = uuid.UUID("5f0b7c5e-3f7e-4d8e-9a55-0c1b2a7d4e11")


@dataclass(frozen=True)
class TaskReport:
    name: str
    outcome: TaskOutcome | None  # None: not run, because an earlier task failed


def report_id(event: Event, scope: str, phase: str) -> str:
    return str(uuid.uuid5(_ID_NAMESPACE, f"{event.source}\x00{event.id}\x00{scope}\x00{phase}"))


def _common_data(event: Event) -> dict[str, Any]:
    data: dict[str, Any] = {
        "project": event.project,
        "stage": event.stage,
        "service": event.service,
    }
    labels = event.data.get("labels") if isinstance(event.data, dict) else None
    if isinstance(labels, dict):
        data["labels"] = labels
    return data


def _envelope(event: Event, event_type: str, event_id: str, data: dict[str, Any]) -> OutEvent:
    out: dict[str, Any] = {
        "specversion": "1.0",
        "id": event_id,
        "source": SOURCE,
        "type": event_type,
        "time": now(),
        "datacontenttype": "application/json",
        "shkeptnspecversion": SPEC_VERSION,
        "triggeredid": event.id,
    }
    if event.keptn_context:
        out["shkeptncontext"] = event.keptn_context
    if event.git_commit_id:
        out["gitcommitid"] = event.git_commit_id
    out["data"] = data  # last, for people reading the JSON
    return cast(OutEvent, out)


def started(event: Event, scope: str) -> OutEvent:
    data = _common_data(event)
    data["status"] = "succeeded"
    return _envelope(event, event_base(event.type) + ".started", report_id(event, scope, "started"), data)


def finished(event: Event, scope: str, reports: Sequence[TaskReport]) -> OutEvent:
    """The finished event of an action; a task's result file may patch its data."""
    failed = next((r for r in reports if r.outcome is not None and not r.outcome.ok), None)
    lines = []
    for report in reports:
        if report.outcome is None:
            lines.append(
                f"Task '{report.name}' was not run because task '{failed.name if failed else '?'}' failed."
            )
        elif report.outcome.ok:
            lines.append(f"Task '{report.name}' finished successfully!\n{report.outcome.logs}".rstrip())
        else:
            lines.append(
                f"Task '{report.name}' failed: {report.outcome.reason}\n{report.outcome.logs}".rstrip()
            )
    data = _common_data(event)
    data["status"] = "errored" if failed else "succeeded"
    data["result"] = "fail" if failed else "pass"
    message = "\n".join(lines)
    if not failed:
        try:
            for report in reports:
                if report.outcome is not None and report.outcome.result is not None:
                    data = apply_result(data, report.outcome.result, report.name)
        except ResultError as exc:
            data = _common_data(event) | {"status": "errored", "result": "fail"}
            message = f"{message}\n{exc}"
    data["message"] = message
    outcomes = [r.outcome for r in reports if r.outcome is not None]
    if is_test_event(event.type) and outcomes:
        test = data.get("test")
        data["test"] = {
            **(test if isinstance(test, dict) else {}),
            "start": outcomes[0].started_at,
            "end": outcomes[-1].finished_at,
        }
    return _envelope(event, event_base(event.type) + ".finished", report_id(event, scope, "finished"), data)


def error_finished(event: Event, scope: str, message: str) -> OutEvent:
    """An errored finished event for a problem found before any task ran."""
    data = _common_data(event) | {"status": "errored", "result": "fail", "message": message}
    return _envelope(event, event_base(event.type) + ".finished", report_id(event, scope, "finished"), data)


def error_log_event(trigger: Event, message: str, integration_id: str = "") -> OutEvent:
    """An `sh.keptn.log.error` event for a problem with `trigger` (no config, invalid config,
    refused image). Its id is derived from the trigger and the message, so a rebuilt one dedups."""
    event_id = uuid.uuid5(_LOG_ID_NAMESPACE, f"{trigger.source}\x00{trigger.id}\x00{message}")
    data: dict[str, Any] = {
        "message": message,
        "integrationid": integration_id,
        "task": task_of(trigger.type),
    }
    out = _envelope(trigger, ERROR_LOG_TYPE, str(event_id), data)
    out.pop("gitcommitid", None)  # a log entry is about the event, not about a commit
    return out
