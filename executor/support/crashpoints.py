"""Named crash points for the fault-injection tests (tests/faults).

`crash_point("local.spawned")` ends the process at once, as kill -9 would (no cleanup, no flush,
exit status 137), when JOB_EXECUTOR_CRASH_AT names that point. The variable is read when the
point is reached, so a test sets it for one run of `serve` and restarts without it; unset (always,
outside tests) a crash point costs one dictionary lookup.
"""

from __future__ import annotations

import os

CRASH_ENV = "JOB_EXECUTOR_CRASH_AT"

# The points wired so far, in the order of an event's life, per backend (tests/faults walks them all).
LOCAL_POINTS = (
    "accepted",  # its row is committed (the HTTP answer not yet sent); nothing else done
    "local.claimed",  # the task's work dir is claimed and names its event; nothing started
    "local.spawned",  # the task's process is started and recorded
)
KUBERNETES_POINTS = (
    "accepted",
    "kube.job_created",  # the API server has the Job (created, or found and adopted); not yet tracked
    "kube.ended",  # the watch saw the Job end; its pod, log and result not yet read
)
POINTS = tuple(dict.fromkeys((*LOCAL_POINTS, *KUBERNETES_POINTS)))


def crash_point(name: str) -> None:
    if os.environ.get(CRASH_ENV) == name:
        os._exit(137)
