"""Named crash points for the fault-injection tests (tests/faults).

`crash_point("local.spawned")` ends the process at once, as kill -9 would (no cleanup, no flush,
exit status 137), when JOB_EXECUTOR_CRASH_AT names that point. The variable is read when the
point is reached, so a test sets it for one run of `serve` and restarts without it; unset (always,
outside tests) a crash point costs one dictionary lookup.
"""

from __future__ import annotations

import os

CRASH_ENV = "JOB_EXECUTOR_CRASH_AT"

# Every point, in the order of an event's life (tests/faults walks them all).
POINTS = (
    "accepted",  # its row is committed; nothing else done
    "config.pinned",  # the config digest it runs under is recorded
    "local.claimed",  # the task's work dir is claimed; nothing started
    "local.spawned",  # the task's process is started
    "kubernetes.created",  # the task's Job is created
    "task.ended",  # the backend returned the task's outcome; not yet recorded
    "outcome.recorded",  # the outcome is in the state; the finished event not yet queued
    "finished.queued",  # the finished event is in the outbox; not yet delivered
    "finished.delivered",  # the sink took it; not yet marked delivered
)


def crash_point(name: str) -> None:
    if os.environ.get(CRASH_ENV) == name:
        os._exit(137)
