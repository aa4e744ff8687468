"""Phase times read in order. Started and ended come from the backend's clock, which can run
behind ours (a file's mtime is the kernel's coarse clock, Kubernetes gives whole seconds): a
task that ended within that much of its submission read as ended before it was submitted, in
the run history and in the finished event."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

from executor.model.events import event_from_mapping
from executor.model.tasks import TaskOutcome
from executor.pipeline import Pipeline
from executor.reporter import OURS
from executor.resolvers.local import LocalTreeResolver
from executor.settings import Settings
from executor.state import StateStore
from tests.generic.conftest import Recorder, ScriptedBackend, write_root
from tests.service.conftest import make_event

CONFIG = """\
apiVersion: v2
actions:
  - name: "Check"
    events: [{name: "sh.keptn.event.test.triggered"}]
    tasks:
      - {name: "quick", image: "alpine", cmd: ["true"]}
"""
ORDER = ("queued", "submitted", "staged", "started", "ended")


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


async def test_a_task_that_ends_within_the_backends_clock_step_reads_in_order(tmp_path: Path) -> None:
    # As Kubernetes reports a container that ran 0.3 s: its start and end in whole seconds, both
    # before the moment we submitted it when that moment is late in its second.
    second = datetime.fromtimestamp(int(time.time()), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    quick = TaskOutcome(status="succeeded", exit_code=0, started_at=second, finished_at=second)
    store = StateStore(":memory:")
    recorder = Recorder()
    pipeline = Pipeline(
        Settings(),
        LocalTreeResolver(write_root(tmp_path, CONFIG)),
        ScriptedBackend({"quick": quick}),
        store,
        recorder,
    )
    time.sleep(max(0.0, 0.01 - (time.time() % 1)))  # never at a second's very start
    event = event_from_mapping(make_event())
    assert await pipeline.handle(event)

    [(raw,)] = store.db.execute("SELECT phases FROM tasks").fetchall()
    phases = json.loads(raw)
    times = [_epoch(phases[name]) for name in ORDER]
    assert times == sorted(times), phases
    assert _epoch(phases["ended"]) >= _epoch(phases["submitted"])
    (finished,) = [e for e in recorder.events if e["type"].endswith(".finished")]
    [task] = finished["data"][OURS]["tasks"]
    reported = [_epoch(task["phases"][name]) for name in ORDER]
    assert reported == sorted(reported), task["phases"]
