"""Issue 15 item 7: `continueOnError: true` on a task. Its failure is told in the finished
event's message, the action's next tasks still run, and the action ends succeeded with result
warning; a failing task without it still stops the action and fails it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from executor.model.events import event_from_mapping
from executor.model.tasks import TaskOutcome
from executor.pipeline import Pipeline
from executor.resolvers.local import LocalTreeResolver
from executor.settings import Settings
from executor.state import StateStore
from tests.generic.conftest import Recorder, ScriptedBackend, check_result_event, generic_event, write_root
from tests.service.conftest import make_event

CONFIG = """\
apiVersion: v2
actions:
  - name: "Check"
    events: [{name: "com.github.*"}, {name: "sh.keptn.event.*"}]
    tasks:
      - {name: "lint", image: "alpine", cmd: ["false"], continueOnError: true}
      - {name: "test", image: "alpine", cmd: ["true"]}
      - {name: "publish", image: "alpine", cmd: ["true"]}
"""
LINT_FAILED = TaskOutcome(
    status="failed",
    reason="exit code 1",
    logs="3 style problems",
    exit_code=1,
    result=b'{"result": "fail"}',
)


async def run(tmp_path: Path, raw: dict[str, Any], outcomes: dict[str, TaskOutcome]) -> tuple[bool, Any]:
    recorder = Recorder()
    backend = ScriptedBackend(outcomes)
    pipeline = Pipeline(
        Settings(), LocalTreeResolver(write_root(tmp_path, CONFIG)), backend, StateStore(":memory:"), recorder
    )
    ok = await pipeline.handle(event_from_mapping(raw))
    (done,) = [e for e in recorder.events if e["type"].endswith("finished")]
    return ok, (done, [s.task_name for s in backend.specs])


async def test_an_optional_task_that_fails_makes_a_warning_and_the_next_tasks_run(tmp_path: Path) -> None:
    ok, (done, ran) = await run(tmp_path, make_event(), {"lint": LINT_FAILED})
    assert ok
    assert ran == ["lint", "test", "publish"]
    data = done["data"]
    assert (data["status"], data["result"]) == ("succeeded", "warning")
    lines = data["message"].splitlines()
    assert "Task 'lint' failed (continueOnError: the action went on): exit code 1" in lines
    assert "3 style problems" in lines
    assert "Task 'publish' finished successfully!" in lines


async def test_a_required_task_after_an_optional_one_still_fails_the_action(tmp_path: Path) -> None:
    failed = TaskOutcome(status="failed", reason="exit code 2", exit_code=2)
    ok, (done, ran) = await run(tmp_path, make_event(), {"lint": LINT_FAILED, "test": failed})
    assert not ok
    assert ran == ["lint", "test"]
    assert (done["data"]["status"], done["data"]["result"]) == ("errored", "fail")
    assert "Task 'publish' was not run because task 'test' failed." in done["data"]["message"]


async def test_when_every_task_succeeds_the_result_is_pass(tmp_path: Path) -> None:
    ok, (done, _ran) = await run(tmp_path, make_event(), {})
    assert ok and (done["data"]["status"], done["data"]["result"]) == ("succeeded", "pass")


@pytest.mark.parametrize("fails", [True, False])
async def test_a_result_event_says_warning_and_marks_the_optional_task(tmp_path: Path, fails: bool) -> None:
    outcomes = {"lint": LINT_FAILED} if fails else {}
    ok, (done, ran) = await run(tmp_path, generic_event(), outcomes)
    check_result_event(done)
    assert ok and ran == ["lint", "test", "publish"]
    data = done["data"]
    assert (data["status"], data["result"]) == ("succeeded", "warning" if fails else "pass")
    lint = data["tasks"][0]
    assert (lint["name"], lint["continueOnError"]) == ("lint", True)
    assert lint["status"] == ("failed" if fails else "succeeded")
    assert "continueOnError" not in data["tasks"][1]
