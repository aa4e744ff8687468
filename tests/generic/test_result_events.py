"""Issue 19 items 3 and 4: result events for every non-Keptn event, CE_* env; Keptn unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest

from executor.model.events import event_from_mapping
from executor.model.tasks import TaskOutcome
from executor.pipeline import Pipeline
from executor.resolvers.local import LocalTreeResolver
from executor.settings import Settings
from executor.settings.serving import ReportSettings
from executor.state import StateStore
from tests.generic.conftest import Recorder, ScriptedBackend, check_result_event, generic_event, write_root
from tests.service.conftest import make_event

CONFIG = """\
apiVersion: v2
actions:
  - name: "Build"
    events: [{name: "com.github.*"}, {name: "sh.keptn.event.*"}, {name: "dev.job-executor.*"}]
    tasks:
      - {name: "compile", image: "alpine", cmd: ["true"]}
      - {name: "package", image: "alpine", cmd: ["true"]}
  - name: "Audit"
    silent: true
    events: [{name: "*"}]
    tasks: [{name: "note", image: "alpine", cmd: ["true"]}]
"""


def make_pipeline(
    tmp_path: Path, recorder: Recorder, backend: ScriptedBackend, settings: Settings | None = None
) -> Pipeline:
    root = write_root(tmp_path, CONFIG)
    return Pipeline(
        settings or Settings(), LocalTreeResolver(root), backend, StateStore(":memory:"), recorder
    )


async def test_a_generic_event_gets_started_and_finished_per_loud_action(
    tmp_path: Path, recorder: Recorder
) -> None:
    backend = ScriptedBackend(
        {"package": TaskOutcome(status="succeeded", exit_code=0, result=b'{"artifact": "shop-1.tgz"}')}
    )
    ok = await make_pipeline(tmp_path, recorder, backend).handle(
        event_from_mapping(
            generic_event(traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
        )
    )
    assert ok
    assert [e["type"] for e in recorder.events] == [
        "dev.job-executor.action.started",
        "dev.job-executor.action.finished",
    ]  # the silent action ran (three tasks in all) and said nothing
    assert sorted(s.task_name for s in backend.specs) == ["compile", "note", "package"]
    for event in recorder.events:
        check_result_event(event)
        assert event["source"] == "job-executor" and event["subject"] == "Build"
        assert (
            event["triggeredid"] == "push-1" and event["triggeredsource"] == "https://github.com/example/shop"
        )
        assert event["traceparent"].startswith("00-0af7651916cd43dd")
    started, done = recorder.events
    assert started["data"]["tasks"] == [
        {"name": "compile", "status": "pending"},
        {"name": "package", "status": "pending"},
    ]
    data = done["data"]
    assert (data["status"], data["result"], data["action"]) == (
        "succeeded",
        "pass",
        {"name": "Build", "index": 0},
    )
    assert [t["status"] for t in data["tasks"]] == ["succeeded", "succeeded"]
    assert data["tasks"][1]["result"] == {"artifact": "shop-1.tgz"}
    assert data["startedAt"] == "2026-01-01T00:00:00Z"


async def test_a_failed_task_and_a_broken_result_file(tmp_path: Path, recorder: Recorder) -> None:
    backend = ScriptedBackend(
        {"compile": TaskOutcome(status="failed", reason="exit code 2", exit_code=2, logs="boom")}
    )
    assert not await make_pipeline(tmp_path, recorder, backend).handle(event_from_mapping(generic_event()))
    data = recorder.events[-1]["data"]
    check_result_event(recorder.events[-1])
    assert (data["status"], data["result"]) == ("errored", "fail")
    assert data["tasks"][0] == {"name": "compile", "status": "failed", "reason": "exit code 2", "exitCode": 2}
    assert data["tasks"][1]["status"] == "skipped"
    assert "Task 'compile' failed: exit code 2\nboom" in data["message"]

    recorder.events.clear()
    backend = ScriptedBackend({"compile": TaskOutcome(status="succeeded", result=b"{not json")})
    assert await make_pipeline(tmp_path / "b", recorder, backend).handle(event_from_mapping(generic_event()))
    data = recorder.events[-1]["data"]
    check_result_event(recorder.events[-1])
    assert (data["status"], data["result"]) == ("errored", "fail")
    assert "result file of task 'compile' is not valid JSON" in data["message"]


async def test_settings_name_type_and_source(tmp_path: Path, recorder: Recorder) -> None:
    settings = Settings(
        reporting=ReportSettings(result_type_prefix="com.example.job", result_source="ci/job-executor")
    )
    await make_pipeline(tmp_path, recorder, ScriptedBackend(), settings).handle(
        event_from_mapping(generic_event())
    )
    assert [(e["type"], e["source"]) for e in recorder.events] == [
        ("com.example.job.started", "ci/job-executor"),
        ("com.example.job.finished", "ci/job-executor"),
    ]


@pytest.mark.parametrize(
    "event_type",
    [
        "dev.job-executor.action.finished",  # our own answers: answering them would never end
        "sh.keptn.event.test.finished",  # Keptn's events keep Keptn's contract: nothing
    ],
)
async def test_events_that_get_no_result_events(tmp_path: Path, recorder: Recorder, event_type: str) -> None:
    backend = ScriptedBackend()
    await make_pipeline(tmp_path, recorder, backend).handle(
        event_from_mapping(
            generic_event(
                type=event_type,
                shkeptncontext="c",
                data={"project": "shop", "stage": "dev", "service": "cart"},
            )
        )
    )
    assert backend.specs  # the actions ran
    assert recorder.events == []


async def test_keptn_triggered_events_keep_the_keptn_contract(tmp_path: Path, recorder: Recorder) -> None:
    await make_pipeline(tmp_path, recorder, ScriptedBackend()).handle(
        event_from_mapping(make_event(event_id="k"))
    )
    assert [e["type"] for e in recorder.events] == [
        "sh.keptn.event.test.started",
        "sh.keptn.event.test.finished",
    ]
    finished = recorder.events[-1]
    assert finished["shkeptnspecversion"] == "0.2.4" and finished["shkeptncontext"] == "ctx-1"
    assert "subject" not in finished and "triggeredsource" not in finished and "tasks" not in finished["data"]
    assert finished["data"]["project"] == "shop"


async def test_a_broken_config_is_reported_for_the_event(tmp_path: Path, recorder: Recorder) -> None:
    root = write_root(tmp_path, "apiVersion: v2\nactions:\n  - nam: typo\n")
    pipe = Pipeline(Settings(), LocalTreeResolver(root), ScriptedBackend(), StateStore(":memory:"), recorder)
    assert not await pipe.handle(event_from_mapping(generic_event()))
    assert [e["type"] for e in recorder.events] == [
        "dev.job-executor.action.started",
        "dev.job-executor.action.finished",
    ]
    for event in recorder.events:
        check_result_event(event)
        assert "subject" not in event and event["data"]["action"] is None
    assert "unknown field 'nam'" in recorder.events[-1]["data"]["message"]


async def test_task_env_has_the_event_attributes_and_no_empty_keptn_values(
    tmp_path: Path, recorder: Recorder
) -> None:
    backend = ScriptedBackend()
    await make_pipeline(tmp_path, recorder, backend).handle(event_from_mapping(generic_event()))
    env = {e.name: e.value for e in backend.specs[0].env}
    assert env == {
        "CE_ID": "push-1",
        "CE_SOURCE": "https://github.com/example/shop",
        "CE_TYPE": "com.github.push",
        "CE_SUBJECT": "main",
        "CE_TIME": "2026-11-24T07:02:15Z",
        # What every task is given (issue 15); this event has no commit id, so no GIT_COMMIT_ID.
        "JOB_EVENT_FILE": "/keptn/event.json",
        "JOB_ACTION": "Build",
        "JOB_TASK": "compile",
        "JOB_TASK_INDEX": "1",
        "JOB_CONFIG_LEVEL": "root",
    }
