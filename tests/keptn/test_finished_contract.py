"""Every finished event we build is one Keptn's api-service accepts (issue 11 items 5 and 9):
checked by posting it to the strict double, whose validation and 64 KiB limit are Keptn's."""

from __future__ import annotations

import json
from typing import Any

import pytest

from executor.keptn.api import KeptnAPI
from executor.model.events import Event, event_from_mapping
from executor.model.tasks import TaskOutcome
from executor.reporter import MAX_EVENT_BYTES, TaskReport, error_finished, finished, started
from executor.sinks.keptn import KeptnSink
from tests.keptn.conftest import PROJECT, SERVICE, STAGE
from tests.keptn.fake_keptn import FakeKeptn

TIMES = {"started_at": "2024-01-01T00:00:00Z", "finished_at": "2024-01-01T00:01:00Z"}


def ok(result: Any = None, logs: str = "fine") -> TaskOutcome:
    raw = None if result is None else (result if isinstance(result, bytes) else json.dumps(result).encode())
    return TaskOutcome(status="succeeded", logs=logs, result=raw, **TIMES)


async def deliver(keptn: FakeKeptn, api: KeptnAPI, trigger: Event, out: Any) -> dict[str, Any]:
    sink = KeptnSink(api, integration_id=lambda: "integration-1")
    await sink.send(started(trigger, "action-0"))
    await sink.send(out)
    assert keptn.refused == [], keptn.refused
    return keptn.received[-1]


def trigger_of(keptn: FakeKeptn, task: str = "test") -> Event:
    return event_from_mapping(keptn.trigger(f"sh.keptn.event.{task}.triggered", PROJECT, STAGE, SERVICE))


@pytest.mark.parametrize(
    ("result", "why"),
    [
        ({"result": None}, "removes 'result'"),
        ({"labels": {"n": 1}}, "non-string values"),
        ([{"op": "remove", "path": "/result"}], "removes 'result'"),
    ],
)
async def test_a_result_file_keptn_would_refuse_gives_an_errored_finished_event(
    keptn: FakeKeptn, api: KeptnAPI, result: Any, why: str
) -> None:
    trigger = trigger_of(keptn, "deployment")
    out = finished(trigger, "action-0", [TaskReport("Score", ok(result))])
    published = await deliver(keptn, api, trigger, out)
    assert published["data"]["status"] == "errored" and published["data"]["result"] == "fail"
    assert (
        why in published["data"]["message"] and "result file of task 'Score'" in published["data"]["message"]
    )
    assert keptn.tasks[trigger.id].closed


async def test_a_big_result_and_long_logs_are_cut_to_fit_64_kib(keptn: FakeKeptn, api: KeptnAPI) -> None:
    trigger = trigger_of(keptn)
    result = {"evaluation": {"blob": "r" * (60 * 1024)}}
    logs = "".join(f'line {i} ünïcode "quoted"\n' for i in range(4000))  # ~100 KB escaped
    out = finished(trigger, "action-0", [TaskReport("Load", ok(result, logs))])
    assert len(json.dumps(out, separators=(",", ":")).encode()) <= MAX_EVENT_BYTES - 256
    published = await deliver(keptn, api, trigger, out)
    data = published["data"]
    assert data["status"] == "succeeded" and data["evaluation"] == result["evaluation"]
    assert "of log cut to fit Keptn's 64 KiB event limit" in data["message"]
    assert data["message"].startswith("Task 'Load' finished successfully!")
    assert data["message"].rstrip().endswith('line 3999 ünïcode "quoted"')
    assert data["test"] == {"start": TIMES["started_at"], "end": TIMES["finished_at"]}


async def test_results_too_big_together_are_refused_with_the_reason(keptn: FakeKeptn, api: KeptnAPI) -> None:
    trigger = trigger_of(keptn)
    reports = [
        TaskReport("One", ok({"one": "a" * (40 * 1024)})),
        TaskReport("Two", ok({"two": "b" * (40 * 1024)})),
    ]
    published = await deliver(keptn, api, trigger, finished(trigger, "action-0", reports))
    data = published["data"]
    assert data["status"] == "errored" and "one" not in data and "two" not in data
    assert "The result files were refused" in data["message"] and "over the 65536 bytes" in data["message"]


async def test_a_test_finished_before_any_task_ran_carries_data_test(keptn: FakeKeptn, api: KeptnAPI) -> None:
    trigger = trigger_of(keptn)
    published = await deliver(keptn, api, trigger, error_finished(trigger, "config", "Invalid job config"))
    test = published["data"]["test"]
    assert set(test) == {"start", "end"} and test["start"] and test["end"]
