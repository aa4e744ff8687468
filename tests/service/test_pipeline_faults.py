"""Faults the pipeline must turn into reports: a run never ends silently."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from executor.model.events import event_from_mapping
from executor.model.tasks import Adopted, TaskHandle, TaskOutcome, TaskSpec
from executor.pipeline import Pipeline
from executor.resolvers.local import LocalTreeResolver
from executor.settings import Settings
from executor.state import StateStore
from tests.service.conftest import make_event, write_config

CONFIG = """\
apiVersion: v2
actions:
  - name: "Loud"
    events: [{name: "sh.keptn.event.*"}]
    tasks: [{name: "t", image: "alpine", cmd: ["true"]}]
"""


class Recorder:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def put(self, event: dict[str, Any]) -> None:
        self.events.append(event)


class BrokenBackend:
    """Fault injection: a backend whose submit fails in a way nobody planned for."""

    name = "broken"

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def submit(self, spec: TaskSpec, files: Mapping[str, bytes]) -> TaskHandle:
        raise KeyError("a bug")

    async def wait(self, handle: TaskHandle, spec: TaskSpec) -> TaskOutcome:
        raise AssertionError("not reached")

    async def cancel(self, handle: TaskHandle) -> None: ...

    async def adopt(self) -> list[Adopted]:
        return []


def pipeline(tmp_path: Path, reports: Recorder) -> Pipeline:
    write_config(tmp_path, CONFIG)
    return Pipeline(
        Settings(),
        LocalTreeResolver(tmp_path / "resources"),
        BrokenBackend(),
        StateStore(":memory:"),
        reports,
    )


async def test_unexpected_failure_still_ends_with_an_errored_finished_event(tmp_path: Path) -> None:
    reports = Recorder()
    ok = await pipeline(tmp_path, reports).handle(event_from_mapping(make_event(event_id="boom")))
    assert ok is False
    # the outbox keeps one event per id, so a started event queued twice is sent once
    sent = {e["id"]: e for e in reports.events}
    assert sorted(e["type"] for e in sent.values()) == [
        "sh.keptn.event.test.finished",
        "sh.keptn.event.test.started",
    ]
    data = next(e for e in sent.values() if e["type"].endswith(".finished"))["data"]
    assert data["status"] == "errored" and "internal error: KeyError('a bug')" in data["message"]


async def test_only_triggered_events_are_answered(tmp_path: Path) -> None:
    reports = Recorder()
    await pipeline(tmp_path, reports).handle(
        event_from_mapping(make_event("sh.keptn.event.test.finished", event_id="f"))
    )
    assert reports.events == []  # the action ran (and failed), but a .finished event gets no answer
