"""Reporter: the Keptn started/finished events for an action, with deterministic ids.

Ids are derived from the triggering event and the action, so a report rebuilt after a crash
has the id of the one that may already have been sent, and receivers (and our outbox) dedup.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from executor.keptn.format import ERROR_LOG_TYPE, SPEC_VERSION, event_base, is_test_event, now, task_of
from executor.model.events import Event, OutEvent
from executor.model.tasks import TaskOutcome
from executor.results import MAX_RESULT_BYTES, ResultError, apply_result
from executor.support import tracing

SOURCE = "job-executor"
# Keptn's api-service reads at most MAX_EVENT_SIZE_KB (64) KiB of a posted event and refuses the
# rest (keptn/keptn api/restapi/configure_keptn.go, api/middleware/sizelimiter.go). Our events
# must fit with room for what a sink adds (the Keptn sink's id mark in the data).
MAX_EVENT_BYTES = 64 * 1024
_SINK_ROOM = 512
_CUT = "\n[... {} bytes of log cut to fit Keptn's 64 KiB event limit ...]\n"
_ID_NAMESPACE = uuid.UUID("8c1bd64b-8a48-4bbd-9f0a-4e1fb6f8e1a2")
_LOG_ID_NAMESPACE = uuid.UUID("5f0b7c5e-3f7e-4d8e-9a55-0c1b2a7d4e11")


# Our own object in the data of the events we send: Keptn passes unknown data keys through and
# reads none of them. The Keptn sink puts its dedup mark (`eventid`) into the same object.
OURS = "jobexecutor"


@dataclass(frozen=True)
class TaskReport:
    name: str
    outcome: TaskOutcome | None  # None: not run, because an earlier task failed
    phases: Mapping[str, str] = field(default_factory=dict)  # queued, submitted, staged, started, ended
    optional: bool = False  # continueOnError: its failure makes the action's result a warning

    @property
    def failed(self) -> bool:
        return self.outcome is not None and not self.outcome.ok

    def failure_line(self) -> str:
        assert self.outcome is not None
        went_on = " (continueOnError: the action went on)" if self.optional else ""
        return f"Task '{self.name}' failed{went_on}: {self.outcome.reason}\n{self.outcome.logs}".rstrip()


def _failures(reports: Sequence[TaskReport]) -> tuple[TaskReport | None, bool]:
    """The task that failed the action (None: none did), and whether an optional one failed."""
    failed = next((r for r in reports if r.failed and not r.optional), None)
    return failed, any(r.failed and r.optional for r in reports)


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


def _traceparent(event: Event) -> str:
    """The distributed tracing extension: the answer belongs to the trigger's trace. With
    tracing on, it names our span it was made under (the task's, for a finished report)."""
    return tracing.current_traceparent() or event.attribute("traceparent")


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
    if traceparent := _traceparent(event):
        out["traceparent"] = traceparent  # an extension Keptn's API drops; NATS passes it on
    out["data"] = data  # last, for people reading the JSON
    return cast(OutEvent, out)


def started(event: Event, scope: str) -> OutEvent:
    data = _common_data(event)
    data["status"] = "succeeded"
    return _envelope(event, event_base(event.type) + ".started", report_id(event, scope, "started"), data)


def finished(event: Event, scope: str, reports: Sequence[TaskReport]) -> OutEvent:
    """The finished event of an action; a task's result file may patch its data."""
    failed, warned = _failures(reports)
    lines = []
    for report in reports:
        if report.outcome is None:
            lines.append(
                f"Task '{report.name}' was not run because task '{failed.name if failed else '?'}' failed."
            )
        elif report.outcome.ok:
            lines.append(f"Task '{report.name}' finished successfully!\n{report.outcome.logs}".rstrip())
        else:
            lines.append(report.failure_line())
    data = _common_data(event)
    data["status"] = "errored" if failed else "succeeded"
    data["result"] = "fail" if failed else "warning" if warned else "pass"
    message = "\n".join(lines)
    refused = _common_data(event) | {"status": "errored", "result": "fail"}
    patched = False
    if not failed:
        try:
            for report in reports:  # not from a failed optional task: it did not do its part
                if report.outcome is not None and report.outcome.ok and report.outcome.result is not None:
                    data = apply_result(data, report.outcome.result, report.name)
                    patched = True
        except ResultError as exc:
            data, patched = dict(refused), False
            message = f"{message}\n{exc}"
    outcomes = [r.outcome for r in reports if r.outcome is not None]
    span = (outcomes[0].started_at, outcomes[-1].finished_at) if outcomes else None

    tasks = [{"name": r.name, "phases": dict(r.phases)} for r in reports if r.phases]

    def build(data: dict[str, Any], message: str) -> OutEvent:
        data = dict(data)
        data["message"] = message
        _test_times(event, data, span)
        if tasks:  # when each task was queued, staged, started and ended (UTC)
            data[OURS] = {"tasks": tasks}
        return _envelope(
            event, event_base(event.type) + ".finished", report_id(event, scope, "finished"), data
        )

    out = _fit(build, data, message)
    if out is None and patched:
        # The result files' data alone is too big for Keptn: refuse them rather than send an
        # event Keptn cannot take (the task would then never finish).
        size = _size(build(data, ""))
        message = (
            f"{message}\nThe result files were refused: with them the finished event would be "
            f"{size} bytes, over the {MAX_EVENT_BYTES} bytes Keptn accepts; write less into result.json."
        )
        out = _fit(build, refused, message)
    if out is None:  # the triggering event's own data (labels) leaves no room for the log
        out = build({**refused, **{k: v for k, v in data.items() if k in refused}}, "")
    return out


def _test_times(event: Event, data: dict[str, Any], span: tuple[str, str] | None) -> None:
    """`data.test` of a test.finished (keptn/spec cloudevents.md, go-utils TestFinishedDetails
    start/end): the tasks' times, or now when no task ran (an error found before them)."""
    if not is_test_event(event.type):
        return
    start, end = span or (now(), now())
    test = data.get("test")
    data["test"] = {**(test if isinstance(test, dict) else {}), "start": start, "end": end}


def _size(out: OutEvent) -> int:
    # As the Keptn client sends it: compact, non-ASCII escaped (the most bytes).
    return len(json.dumps(out, separators=(",", ":")).encode())


def _fit(
    build: Callable[[dict[str, Any], str], OutEvent], data: dict[str, Any], message: str
) -> OutEvent | None:
    """The event with its message (the log excerpt) cut in the middle until it fits the limit;
    None when even an empty message does not fit."""
    limit = MAX_EVENT_BYTES - _SINK_ROOM
    out: OutEvent = build(data, message)
    over = _size(out) - limit
    if over <= 0:
        return out
    if _size(build(data, "")) > limit:
        return None
    keep = len(message)
    current = message
    for _ in range(20):
        # Escaping makes a character cost 1 to 6 bytes: shrink in proportion to what it costs.
        cost = len(json.dumps(current)) or 1
        keep = max(0, int(keep * (cost - over) / cost) - len(_CUT) - 16)
        current = _cut(message, keep)
        out = build(data, current)
        over = _size(out) - limit
        if over <= 0:
            return out
    return build(data, "")


def _cut(text: str, keep: int) -> str:
    """The first and last `keep` characters together (a log's start and its end say most)."""
    if len(text) <= keep:
        return text
    head = keep // 3
    tail = keep - head
    removed = len(text.encode()) - len(text[:head].encode()) - len(text[len(text) - tail :].encode())
    return text[:head] + _CUT.format(removed) + (text[len(text) - tail :] if tail else "")


def error_finished(event: Event, scope: str, message: str) -> OutEvent:
    """An errored finished event for a problem found before any task ran."""
    data = _common_data(event) | {"status": "errored", "result": "fail"}

    def build(data: dict[str, Any], message: str) -> OutEvent:
        data = dict(data)
        data["message"] = message
        _test_times(event, data, None)
        return _envelope(
            event, event_base(event.type) + ".finished", report_id(event, scope, "finished"), data
        )

    return _fit(build, data, message) or build(data, "")


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


# ---- result events for every other event type ----
# Keptn answers only its own `.triggered` task events. Any other event that runs a non-silent
# action is answered with `<prefix>.started` and `<prefix>.finished` per action (subject: the
# action's name), whose data the JSON Schema executor/result-event.schema.json describes.


@dataclass(frozen=True)
class ResultFormat:
    """RESULT_EVENT_TYPE_PREFIX and RESULT_EVENT_SOURCE."""

    type_prefix: str = "dev.job-executor.action"
    source: str = SOURCE

    def is_ours(self, event_type: str) -> bool:
        """One of our result events: answering it would answer our answers, for ever over NATS."""
        return event_type.startswith(self.type_prefix + ".")


def _result_envelope(
    event: Event, fmt: ResultFormat, phase: str, scope: str, subject: str, data: dict[str, Any]
) -> OutEvent:
    out: dict[str, Any] = {
        "specversion": "1.0",
        "id": report_id(event, scope, phase),
        "source": fmt.source,
        "type": f"{fmt.type_prefix}.{phase}",
        "time": now(),
        "datacontenttype": "application/json",
        "triggeredid": event.id,
        "triggeredsource": event.source,
    }
    if subject:
        out["subject"] = subject
    if traceparent := _traceparent(event):
        out["traceparent"] = traceparent
    out["data"] = data
    return cast(OutEvent, out)


def _action_data(name: str, index: int | None) -> dict[str, Any] | None:
    return None if index is None else {"name": name, "index": index}


def result_started(
    event: Event, fmt: ResultFormat, scope: str, name: str, index: int, tasks: Sequence[str]
) -> OutEvent:
    data: dict[str, Any] = {
        "status": "started",
        "action": _action_data(name, index),
        "tasks": [{"name": task, "status": "pending"} for task in tasks],
    }
    return _result_envelope(event, fmt, "started", scope, name, data)


def result_finished(
    event: Event, fmt: ResultFormat, scope: str, name: str, index: int, reports: Sequence[TaskReport]
) -> OutEvent:
    """The finished result event of an action: each task's outcome, result file and times."""
    failed, warned = _failures(reports)
    lines: list[str] = []
    tasks: list[dict[str, Any]] = []
    broken = False
    for report in reports:
        outcome = report.outcome
        if outcome is None:
            tasks.append(
                {
                    "name": report.name,
                    "status": "skipped",
                    "reason": f"task '{failed.name if failed else '?'}' failed",
                }
            )
            lines.append(
                f"Task '{report.name}' was not run because task '{failed.name if failed else '?'}' failed."
            )
            continue
        entry: dict[str, Any] = {"name": report.name, "status": outcome.status, "reason": outcome.reason}
        if outcome.exit_code is not None:
            entry["exitCode"] = outcome.exit_code
        if outcome.started_at:
            entry["startedAt"] = outcome.started_at
        if outcome.finished_at:
            entry["finishedAt"] = outcome.finished_at
        if outcome.result is not None:
            try:
                entry["result"] = _read_result(outcome.result, report.name)
            except ResultError as exc:
                broken = True
                lines.append(str(exc))
        tasks.append(entry)
        if report.optional:
            entry["continueOnError"] = True
        if outcome.ok:
            lines.append(f"Task '{report.name}' finished successfully!\n{outcome.logs}".rstrip())
        else:
            lines.append(report.failure_line())
    bad = failed is not None or broken
    data: dict[str, Any] = {
        "status": "errored" if bad else "succeeded",
        "result": "fail" if bad else "warning" if warned else "pass",
        "action": _action_data(name, index),
        "tasks": tasks,
    }
    outcomes = [r.outcome for r in reports if r.outcome is not None]
    if outcomes and outcomes[0].started_at:
        data["startedAt"] = outcomes[0].started_at
    if outcomes and outcomes[-1].finished_at:
        data["finishedAt"] = outcomes[-1].finished_at

    def build(data: dict[str, Any], message: str) -> OutEvent:
        return _result_envelope(event, fmt, "finished", scope, name, {**data, "message": message})

    message = "\n".join(lines)
    out = _fit(build, data, message)
    if out is None:  # the result files alone are too big: drop them, say so
        for entry in tasks:
            entry.pop("result", None)
        data["status"], data["result"] = "errored", "fail"
        out = _fit(
            build,
            data,
            f"{message}\nThe result files were dropped: with them the event is over {MAX_EVENT_BYTES} bytes.",
        )
    return out or build(data, "")


def result_error(
    event: Event,
    fmt: ResultFormat,
    scope: str,
    phase: str,
    message: str,
    name: str = "",
    index: int | None = None,
) -> OutEvent:
    """A result event for a problem found before any task ran: `started`, or an errored
    `finished` with the reason; `name`/`index` when it concerns one action, else for the event."""
    data: dict[str, Any] = {
        "status": "started" if phase == "started" else "errored",
        "action": _action_data(name, index),
        "tasks": [],
    }
    if phase == "started":
        return _result_envelope(event, fmt, phase, scope, name, data)
    data["result"] = "fail"

    def build(data: dict[str, Any], message: str) -> OutEvent:
        return _result_envelope(event, fmt, phase, scope, name, {**data, "message": message})

    return _fit(build, data, message) or build(data, "")


def _read_result(raw: bytes, task_name: str) -> Any:
    """A task's result file as JSON, whatever it holds: for a result event it is the task's
    output (nothing of the event can be changed by it, unlike a Keptn finished event's data)."""
    where = f"result file of task '{task_name}'"
    if len(raw) > MAX_RESULT_BYTES:
        raise ResultError(f"{where} is larger than {MAX_RESULT_BYTES} bytes")
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ResultError(f"{where} is not valid JSON: {exc}") from None
