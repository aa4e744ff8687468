"""MAX_CONCURRENT_TASKS: a bound on tasks across all events and actions, waiting in order."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from executor.dispatcher import TaskSlots
from executor.model.events import event_from_mapping
from executor.model.tasks import Adopted, TaskHandle, TaskOutcome, TaskSpec
from executor.pipeline import Pipeline
from executor.resolvers.local import LocalTreeResolver
from executor.settings import Settings
from executor.state import StateStore
from executor.support.metrics import Metrics
from tests.clusters.conftest import eventually
from tests.service.conftest import make_event, write_config

# Two actions of three tasks each: one event alone would run two tasks at once.
CONFIG = """\
apiVersion: v2
actions:
""" + "".join(
    f"""  - name: "A{a}"
    events: [{{name: "sh.keptn.event.*"}}]
    tasks: [{", ".join(f'{{name: "t{t}", image: "alpine", cmd: ["true"]}}' for t in range(3))}]
"""
    for a in range(2)
)


class GatedBackend:
    """Tasks end when the test says; counts how many run at once."""

    name = "gated"

    def __init__(self) -> None:
        self.running: list[str] = []
        self.order: list[str] = []
        self.peak = 0
        self.gates: dict[str, asyncio.Event] = {}

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def submit(self, spec: TaskSpec, files: Mapping[str, bytes]) -> TaskHandle:
        name = f"{spec.trigger.event_id}/{spec.action_index}/{spec.task_index}"
        self.running.append(name)
        self.order.append(name)
        self.peak = max(self.peak, len(self.running))
        self.gates[name] = asyncio.Event()
        return TaskHandle(name)

    async def wait(self, handle: TaskHandle, spec: TaskSpec) -> TaskOutcome:
        await self.gates[handle.name].wait()
        self.running.remove(handle.name)
        return TaskOutcome(status="succeeded")

    async def cancel(self, handle: TaskHandle) -> None: ...

    async def adopt(self) -> list[Adopted]:
        return []

    async def discard(self, names: Any) -> None: ...


class Recorder:
    def put(self, event: Any) -> None: ...


async def test_tasks_of_several_events_and_actions_stay_under_the_bound(tmp_path: Path) -> None:
    write_config(tmp_path, CONFIG)
    backend = GatedBackend()
    metrics = Metrics()
    pipeline = Pipeline(
        Settings(), LocalTreeResolver(tmp_path / "resources"), backend, StateStore(":memory:"), Recorder()
    )
    pipeline.task_slots = TaskSlots(3, metrics)
    events = [event_from_mapping(make_event(event_id=f"e{i}")) for i in range(3)]
    runs = [asyncio.create_task(pipeline.handle(e)) for e in events]
    # 3 events x 2 actions want 6 tasks at once; 3 run, 3 wait
    await eventually(lambda: metrics.read_gauge("job_executor_tasks_waiting") == 3, what="three waiting")
    assert len(backend.running) == 3
    while not all(r.done() for r in runs):
        if backend.running:
            backend.gates[backend.running[0]].set()
        await asyncio.sleep(0.001)
    assert all(r.result() for r in runs)
    assert backend.peak == 3 and len(backend.order) == 18


async def test_waiters_are_served_in_order_and_a_cancelled_one_gives_its_place_back() -> None:
    slots = TaskSlots(1)
    served: list[int] = []
    release = asyncio.Event()

    async def task(n: int) -> None:
        async with slots.slot():
            served.append(n)
            await release.wait()

    first = asyncio.create_task(task(0))
    await eventually(lambda: served == [0])
    waiting = [asyncio.create_task(task(n)) for n in (1, 2, 3)]
    await eventually(lambda: slots.waiting == 3)
    waiting[1].cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting[1]
    release.set()
    await asyncio.gather(first, waiting[0], waiting[2])
    assert served == [0, 1, 3] and slots.busy == 0 and slots.waiting == 0


async def test_no_bound_by_default() -> None:
    slots = TaskSlots(0)
    async with slots.slot(), slots.slot(), slots.slot():
        assert slots.busy == 3 and slots.waiting == 0
