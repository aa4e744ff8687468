"""The Keptn event format: task event types (`sh.keptn.event.<task>.<phase>`), the spec
version we speak and the time format, shared by the reporter and the Keptn sink
(keptn/spec cloudevents.md; go-utils pkg/lib/v0_2_0/events.go).
"""

from __future__ import annotations

from datetime import UTC, datetime

SPEC_VERSION = "0.2.4"  # what go-utils sends as shkeptnspecversion
ERROR_LOG_TYPE = "sh.keptn.log.error"
TASK_PREFIX = "sh.keptn.event."
KEPTN_PREFIX = "sh.keptn."  # every Keptn event type: task and sequence events, logs, problems
_PHASES = ("triggered", "started", "status.changed", "finished", "invalidated")


def event_base(event_type: str) -> str:
    """`sh.keptn.event.test.triggered` -> `sh.keptn.event.test`."""
    for phase in _PHASES:
        if event_type.endswith("." + phase):
            return event_type[: -len(phase) - 1]
    return event_type


def is_test_event(event_type: str) -> bool:
    return event_base(event_type).endswith(".test")


def is_task_event(event_type: str) -> bool:
    """`sh.keptn.event.<task>.<phase>`: exactly five dot-separated parts (go-utils
    pkg/lib/v0_2_0/events.go IsTaskEventType). Sequence events have six, others other counts."""
    return event_type.startswith(TASK_PREFIX) and event_type.count(".") == 4


def is_keptn_non_task_event(event_type: str) -> bool:
    """A type under `sh.keptn.event.` that is not a task event: Keptn's sequence events
    (`sh.keptn.event.<stage>.<sequence>.triggered`), `sh.keptn.event.test` and the like. JES, through
    Keptn's Go SDK, never runs anything for them, and Keptn refuses answers to them (400)."""
    return event_type.startswith(TASK_PREFIX) and not is_task_event(event_type)


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def task_of(event_type: str) -> str:
    """`sh.keptn.event.test.triggered` -> `test`; other types are returned whole (as JES did)."""
    base = event_base(event_type)
    if base != event_type and base.startswith(TASK_PREFIX) and base.count(".") == 3:
        return base[len(TASK_PREFIX) :]
    return event_type
