"""kill -9 at each crash point of an event's life on the local backend, then a restart on the
same state (FEATURES.md, "Nothing lost, nothing run twice").

For every point: the task of the event the service died handling ran exactly once (it appends a
line to a file), and so did that of an event sent after the restart; exactly one started and one
finished report per event reached the sink, each quoting its own event's output and no other's.
A report arrives twice, with the same CloudEvent id, only when the crash cut its delivery (the
sink had it, the outbox had not yet marked it sent): at least once, deduplicated by id. The crash
is the service's own os._exit at the point JOB_EXECUTOR_CRASH_AT names
(executor/support/crashpoints.py), so no timing decides where it lands.
"""

from __future__ import annotations

import pytest

from executor.support.crashpoints import LOCAL_POINTS
from tests.faults.conftest import OneTask, check_reports, crash_and_restart


@pytest.mark.parametrize("point", LOCAL_POINTS)
async def test_sigkill_at_each_point_runs_once_and_reports_once(one_task: OneTask, point: str) -> None:
    run = await crash_and_restart(one_task, point)
    ids = [run.first["id"], run.second["id"]]
    assert [one_task.runs_of(i) for i in ids] == [1, 1], one_task.runs.read_text()
    check_reports(one_task.sink, {i: one_task.output(i) for i in ids}, run.cut)
    if point.endswith(".delivered"):  # the sink had the report when the service died: sent again
        phase = point.split(".")[0]
        (report,) = [e for e in one_task.sink.of_type(f".{phase}") if e["triggeredid"] == ids[0]][:1]
        assert report["id"] in run.cut
        assert [e["id"] for e in one_task.sink.events].count(report["id"]) == 2
