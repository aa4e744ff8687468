"""Generic (non-Keptn) events: a scripted backend, a recorder of reports, the result schema."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema
import pytest

import executor
from executor.model.tasks import Adopted, TaskHandle, TaskOutcome, TaskSpec
from tests.service.conftest import serve_factory, sink  # noqa: F401  (fixtures for the e2e tests)

SCHEMA = json.loads((Path(executor.__file__).parent / "model" / "result-event.schema.json").read_text())


def check_result_event(event: Mapping[str, Any]) -> None:
    """Every generic result event's data against the shipped schema, and its envelope's rules."""
    jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.FormatChecker()).validate(event["data"])
    assert event["specversion"] == "1.0" and event["triggeredid"] and event["triggeredsource"]
    assert "shkeptnspecversion" not in event and "shkeptncontext" not in event


class Recorder:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def put(self, event: Any) -> None:
        self.events.append(dict(event))


class ScriptedBackend:
    """Tasks end as `outcomes[task name]` says (succeeded by default); what they were given is kept."""

    name = "scripted"

    def __init__(self, outcomes: Mapping[str, TaskOutcome] | None = None) -> None:
        self.outcomes = dict(outcomes or {})
        self.specs: list[TaskSpec] = []

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def submit(self, spec: TaskSpec, files: Mapping[str, bytes]) -> TaskHandle:
        self.specs.append(spec)
        return TaskHandle(spec.task_name)

    async def wait(self, handle: TaskHandle, spec: TaskSpec) -> TaskOutcome:
        return self.outcomes.get(
            spec.task_name,
            TaskOutcome(
                status="succeeded",
                logs="ok",
                exit_code=0,
                started_at="2026-01-01T00:00:00Z",
                finished_at="2026-01-01T00:00:01Z",
            ),
        )

    async def cancel(self, handle: TaskHandle) -> None: ...

    async def adopt(self) -> list[Adopted]:
        return []


def write_root(tmp_path: Path, text: str, *level: str) -> Path:
    folder = tmp_path / "resources" / Path(*level) / "job"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(text)
    return tmp_path / "resources"


def generic_event(**attributes: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "specversion": "1.0",
        "id": "push-1",
        "source": "https://github.com/example/shop",
        "type": "com.github.push",
        "subject": "main",
        "time": "2026-11-24T07:02:15Z",
        "data": {"ref": "refs/heads/main"},
    }
    event.update(attributes)
    return event


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()
