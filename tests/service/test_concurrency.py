"""The action field `concurrency` with the real `serve` and the local backend: runs of one key
queue in arrival order, are skipped, or replace the running one; other keys run meanwhile; and a
queued run still waits behind the running one after kill -9 and a restart."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.service.conftest import EventSink, make_event, write_config

pytestmark = pytest.mark.slow

# Each run writes "start <event id>" when its task begins and "end <event id>" when the test
# opens its gate file (named after the event id), so the test decides when each run ends.
CONFIG = """\
apiVersion: v2
actions:
  - name: "Deploy"
    events: [{{name: "sh.keptn.event.deployment.triggered"}}]
    concurrency: {{limit: 1, key: "$.data.labels.target", onConflict: {mode}}}
    tasks:
      - name: "deploy"
        image: "alpine"
        env: [{{name: RUN_ID, valueFrom: event, value: "$.id"}}]
        cmd: ["sh", "-c", "echo \\"start $RUN_ID\\" >> {runs}; while [ ! -e {gates}/$RUN_ID ]; do sleep 0.05; done; echo \\"end $RUN_ID\\" >> {runs}"]
"""
DEPLOY = "sh.keptn.event.deployment.triggered"


class Runs:
    def __init__(self, tmp: Path, mode: str) -> None:
        self.file = tmp / "runs"
        self.gates = tmp / "gates"
        self.gates.mkdir()
        write_config(tmp, CONFIG.format(mode=mode, runs=self.file, gates=self.gates))

    def lines(self) -> list[str]:
        return self.file.read_text().splitlines() if self.file.exists() else []

    async def wait_for(self, line: str, timeout: float = 20) -> None:
        for _ in range(int(timeout / 0.05)):
            if line in self.lines():
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"{line!r} never written; runs: {self.lines()}")

    def open(self, event_id: str) -> None:
        (self.gates / event_id).touch()


def deploy(event_id: str, target: str) -> dict[str, Any]:
    return make_event(DEPLOY, event_id=event_id, labels={"target": target})


async def holding(
    tmp_path: Path, serve_factory: Any, mode: str, env: dict[str, str] | None = None
) -> tuple[Runs, Any]:
    """`serve` with the config of `mode`, and a1 (key prod) accepted and its task started."""
    runs = Runs(tmp_path, mode)
    serve = serve_factory(env)
    await serve.start()
    assert (await serve.post(deploy("a1", "prod")))[0] == 202
    await runs.wait_for("start a1")
    return runs, serve


async def waiting(serve: Any, count: int, timeout: float = 20) -> None:
    """Positive signal that `count` runs wait at the gate: the service's own gauge."""
    want = f"job_executor_runs_waiting_for_concurrency {float(count)}"
    async with aiohttp.ClientSession() as session:
        for _ in range(int(timeout / 0.1)):
            async with session.get(serve.url + "metrics") as response:
                if want in await response.text():
                    return
            await asyncio.sleep(0.1)
    raise AssertionError(f"never {count} waiting")


def finished_of(sink: EventSink, event_id: str) -> dict[str, Any]:
    found = [e for e in sink.of_type(".finished") if e["triggeredid"] == event_id]
    assert len(found) == 1, found
    data: dict[str, Any] = found[0]["data"]
    return data


async def finished_for(sink: EventSink, event_id: str) -> dict[str, Any]:
    for _ in range(40):
        if any(e["triggeredid"] == event_id for e in sink.of_type(".finished")):
            return finished_of(sink, event_id)
        await sink.wait_for(".finished", count=len(sink.of_type(".finished")) + 1)
    raise AssertionError(f"no finished event for {event_id}")


async def test_queue_runs_one_key_at_a_time_in_arrival_order(
    tmp_path: Path, sink: EventSink, serve_factory: Any
) -> None:
    runs, serve = await holding(tmp_path, serve_factory, "queue")
    for event_id in ("a2", "a3"):
        assert (await serve.post(deploy(event_id, "prod")))[0] == 202
        await waiting(serve, int(event_id[1]) - 1)  # posted one by one: arrival order is known
    assert (await serve.post(deploy("b1", "staging")))[0] == 202
    await runs.wait_for("start b1")  # another key runs while prod's queue waits
    runs.open("b1")
    assert (await finished_for(sink, "b1"))["status"] == "succeeded"
    assert "start a2" not in runs.lines() and "start a3" not in runs.lines()

    runs.open("a1")
    await runs.wait_for("start a2")
    runs.open("a2")
    await runs.wait_for("start a3")
    runs.open("a3")
    for event_id in ("a1", "a2", "a3"):
        data = await finished_for(sink, event_id)
        assert data["status"] == "succeeded", data["message"]
    prod = [line for line in runs.lines() if line.endswith(("a1", "a2", "a3"))]
    assert prod == ["start a1", "end a1", "start a2", "end a2", "start a3", "end a3"]
    await serve.stop()


async def test_skip_answers_the_colliding_event_at_once(
    tmp_path: Path, sink: EventSink, serve_factory: Any
) -> None:
    runs, serve = await holding(tmp_path, serve_factory, "skip")
    await serve.post(deploy("a2", "prod"))
    skipped = await finished_for(sink, "a2")  # while a1 still runs
    assert (skipped["status"], skipped["result"]) == ("errored", "fail")
    assert "skipped" in skipped["message"] and "a1" in skipped["message"], skipped["message"]
    assert "'prod'" in skipped["message"] and "onConflict: skip" in skipped["message"]
    assert [e["triggeredid"] for e in sink.of_type(".started")].count("a2") == 1  # started, then finished

    await serve.post(deploy("b1", "staging"))  # another key is not skipped
    await runs.wait_for("start b1")
    runs.open("a1")
    runs.open("b1")
    assert (await finished_for(sink, "a1"))["status"] == "succeeded"
    assert (await finished_for(sink, "b1"))["status"] == "succeeded"
    assert "start a2" not in runs.lines()
    await serve.stop()


async def test_cancel_previous_stops_the_running_task_and_runs_the_new_event(
    tmp_path: Path, sink: EventSink, serve_factory: Any
) -> None:
    runs = Runs(tmp_path, "cancel-previous")
    serve = serve_factory()
    await serve.start()
    await serve.post(deploy("a1", "prod"))
    await serve.post(deploy("b1", "staging"))
    await runs.wait_for("start a1")
    await runs.wait_for("start b1")
    await serve.post(deploy("a2", "prod"))
    cancelled = await finished_for(sink, "a1")
    assert (cancelled["status"], cancelled["result"]) == ("errored", "fail")
    assert "cancelled" in cancelled["message"] and "a2" in cancelled["message"], cancelled["message"]
    await runs.wait_for("start a2")
    runs.open("a2")
    assert (await finished_for(sink, "a2"))["status"] == "succeeded"
    runs.open("b1")  # the other key's run was left alone
    assert (await finished_for(sink, "b1"))["status"] == "succeeded"
    runs.open("a1")  # had its task survived the cancel, it would now write "end a1"
    assert "end a1" not in runs.lines()
    assert runs.lines().index("start a2") > runs.lines().index("start a1")
    await serve.stop()


async def test_a_queued_event_still_waits_after_kill_and_restart(
    tmp_path: Path, sink: EventSink, serve_factory: Any
) -> None:
    runs, serve = await holding(tmp_path, serve_factory, "queue")
    await serve.post(deploy("a2", "prod"))
    await waiting(serve, 1)
    serve.signal(signal.SIGKILL)
    await serve.wait_exit()

    restarted = serve_factory()
    await restarted.start()
    await waiting(restarted, 1)  # a2 lines up again, behind a1 (adopted, still running)
    await restarted.post(deploy("b1", "staging"))
    await runs.wait_for("start b1")
    runs.open("b1")
    await finished_for(sink, "b1")
    assert "start a2" not in runs.lines()

    runs.open("a1")
    await runs.wait_for("start a2")
    runs.open("a2")
    for event_id in ("a1", "a2"):
        data = await finished_for(sink, event_id)
        assert data["status"] == "succeeded", data["message"]
    prod = [line for line in runs.lines() if line.endswith(("a1", "a2"))]
    assert prod == ["start a1", "end a1", "start a2", "end a2"]  # nothing ran twice
    await restarted.stop()


async def test_runs_queued_behind_their_key_leave_the_workers_to_other_keys(
    tmp_path: Path, sink: EventSink, serve_factory: Any
) -> None:
    """Five runs of one key wait behind a running one, with two workers: they hold none of them,
    so another key's event runs and ends meanwhile; the key's runs still go in arrival order."""
    runs, serve = await holding(tmp_path, serve_factory, "queue", {"MAX_CONCURRENT_RUNS": "2"})
    queued = ["a2", "a3", "a4", "a5", "a6"]
    for event_id in queued:
        runs.open(event_id)  # each ends as soon as it starts: only the gate orders them
        assert (await serve.post(deploy(event_id, "prod")))[0] == 202
    await waiting(serve, len(queued))
    assert (await serve.post(deploy("b1", "staging")))[0] == 202
    await runs.wait_for("start b1")
    runs.open("b1")
    assert (await finished_for(sink, "b1"))["status"] == "succeeded"
    assert not [line for line in runs.lines() if line.startswith("start a") and line != "start a1"]

    runs.open("a1")
    for event_id in ("a1", *queued):
        data = await finished_for(sink, event_id)
        assert data["status"] == "succeeded", data["message"]
    prod = [line for line in runs.lines() if line.split()[1].startswith("a")]
    assert prod == [f"{step} {event_id}" for event_id in ("a1", *queued) for step in ("start", "end")]
    await serve.stop()


# Loaded into `serve` (a sitecustomize on its PYTHONPATH): the task of the event named by a file
# in the fault dir cannot be started once, as fork(2) fails with EAGAIN when the machine is out
# of processes for now. The local backend makes that a Temporary error: the event is retried.
SPAWN_FAULT = """\
import errno, os
from pathlib import Path

from executor.backends.local import children

_faults = Path(os.environ["TEST_SPAWN_FAULTS"])
_start = children.start


async def _start_or_fail(argv, *, env, **options):
    fault = _faults / env.get("RUN_ID", "-")
    if fault.exists():
        fault.unlink()
        raise OSError(errno.EAGAIN, os.strerror(errno.EAGAIN))
    return await _start(argv, env=env, **options)


children.start = _start_or_fail
"""


async def test_a_holder_waiting_for_its_retry_is_not_starved_by_its_waiter_with_one_worker(
    tmp_path: Path, sink: EventSink, serve_factory: Any
) -> None:
    """MAX_CONCURRENT_RUNS=1: a1 holds its key's slot and waits to be retried; a2 of the same key
    waits for that slot. a2 must not keep the only worker, or a1's retry never runs."""
    runs = Runs(tmp_path, "queue")
    inject = tmp_path / "inject"
    faults = tmp_path / "faults"
    inject.mkdir()
    faults.mkdir()
    (inject / "sitecustomize.py").write_text(SPAWN_FAULT)
    (faults / "a1").touch()
    path = os.pathsep.join(p for p in (str(inject), os.environ.get("PYTHONPATH", "")) if p)
    serve = serve_factory({"MAX_CONCURRENT_RUNS": "1", "PYTHONPATH": path, "TEST_SPAWN_FAULTS": str(faults)})
    await serve.start()
    await serve.post(deploy("a1", "prod"))
    for _ in range(400):  # the spawn failed: a1 holds the slot and waits for its retry
        if not (faults / "a1").exists():
            break
        await asyncio.sleep(0.05)
    assert not (faults / "a1").exists(), "a1's task was never started"
    await serve.post(deploy("a2", "prod"))
    await waiting(serve, 1)
    await runs.wait_for("start a1")  # its retry found a worker
    assert "start a2" not in runs.lines()
    runs.open("a1")
    runs.open("a2")
    for event_id in ("a1", "a2"):
        data = await finished_for(sink, event_id)
        assert data["status"] == "succeeded", data["message"]
    assert runs.lines() == ["start a1", "end a1", "start a2", "end a2"]
    await serve.stop()


async def test_events_waiting_for_their_key_count_against_queue_size(
    tmp_path: Path, sink: EventSink, serve_factory: Any
) -> None:
    """QUEUE_SIZE=2: a1 runs (doing work, not counted), a2 and a3 wait for its key and fill the
    queue's room, so a fourth event is answered 429, whatever its key; once a2 runs, one fits."""
    runs, serve = await holding(tmp_path, serve_factory, "queue", {"QUEUE_SIZE": "2"})
    for event_id in ("a2", "a3"):
        assert (await serve.post(deploy(event_id, "prod")))[0] == 202
    await waiting(serve, 2)
    assert (await serve.post(deploy("a4", "prod")))[0] == 429
    assert (await serve.post(deploy("b1", "staging")))[0] == 429
    runs.open("a1")
    await runs.wait_for("start a2")  # a2 does work now: only a3 waits
    assert (await serve.post(deploy("b1", "staging")))[0] == 202
    for event_id in ("a2", "a3", "b1"):
        runs.open(event_id)
    for event_id in ("a1", "a2", "a3", "b1"):
        assert (await finished_for(sink, event_id))["status"] == "succeeded"
    await serve.stop()
