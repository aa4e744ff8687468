"""Named crash points for the fault-injection tests (tests/faults).

`crash_point("local.spawned")` ends the process at once, as kill -9 would (no cleanup, no flush,
exit status 137), when JOB_EXECUTOR_CRASH_AT names that point. The variable is read when the
point is reached, so a test sets it for one run of `serve` and restarts without it; unset (always,
outside tests) a crash point costs one dictionary lookup (the outbox's two also cut the report's
type, next to an HTTP request).
"""

from __future__ import annotations

import os

CRASH_ENV = "JOB_EXECUTOR_CRASH_AT"

# The points after a task's outcome, shared by both backends, in the order of an event's life.
# `<phase>.sending` and `<phase>.delivered` name the report by the last part of its type
# (started, finished): the outbox reaches them once per report and sink.
REPORT_POINTS = (
    "started.delivered",  # the sink accepted the started report; the outbox has not marked it sent
    "outcome.recorded",  # the task's outcome is in the state; no finished report queued yet
    "finished.queued",  # the finished report is in the outbox; the action not yet marked done
    "action.done",  # the action is marked done; the event not yet
    "event.done",  # the event is marked done; its finished report may still be undelivered
    "finished.sending",  # the outbox marked the attempt uncertain; nothing sent yet
    "finished.delivered",  # the sink accepted the finished report; the outbox has not marked it sent
)
# All the points wired, per backend (tests/faults walks them all).
LOCAL_POINTS = (
    "accepted",  # its row is committed (the HTTP answer not yet sent); nothing else done
    "local.claimed",  # the task's work dir is claimed and names its event; nothing started
    "local.spawned",  # the task's process is started and recorded
    *REPORT_POINTS,
)
KUBERNETES_POINTS = (
    "accepted",
    "kube.job_created",  # the API server has the Job (created, or found and adopted); not yet tracked
    "kube.ended",  # the watch saw the Job end; its pod, log and result not yet read
    *REPORT_POINTS,
)
POINTS = tuple(dict.fromkeys((*LOCAL_POINTS, *KUBERNETES_POINTS)))


def crash_point(name: str) -> None:
    if os.environ.get(CRASH_ENV) == name:
        os._exit(137)


def report_phase(event_type: object) -> str:
    """The last part of a report's type (`started`, `finished`), which names its delivery points."""
    return str(event_type).rpartition(".")[2]
