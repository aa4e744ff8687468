"""`onConflict: cancel-previous` across kill -9 and a restart of the real `serve` (local backend):
the newer event of a key still stops the older one's task, and nothing of the key runs or is
reported twice."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest

from tests.service.conftest import EventSink
from tests.service.test_concurrency import deploy, finished_for, holding

pytestmark = pytest.mark.slow


def reports_per_event(sink: EventSink, suffix: str) -> dict[str, int]:
    """How many reports of this kind each event got, told apart by their ids (a receiver dedups
    on the id, so a report sent again with the same id would not be a second report)."""
    counts: dict[str, int] = {}
    for event in {e["id"]: e for e in sink.of_type(suffix)}.values():
        counts[event["triggeredid"]] = counts.get(event["triggeredid"], 0) + 1
    return counts


def assert_cancelled_by(data: dict[str, Any], newer: str) -> None:
    assert (data["status"], data["result"]) == ("errored", "fail"), data
    assert "cancelled" in data["message"] and newer in data["message"], data["message"]


def assert_answered_once(sink: EventSink, *event_ids: str) -> None:
    for suffix in (".started", ".finished"):
        assert reports_per_event(sink, suffix) == dict.fromkeys(event_ids, 1), suffix
        assert len(sink.of_type(suffix)) == len(event_ids), sink.of_type(suffix)  # none sent again


async def test_cancel_previous_stops_a_run_adopted_after_kill_and_restart(
    tmp_path: Path, sink: EventSink, serve_factory: Any
) -> None:
    runs, serve = await holding(tmp_path, serve_factory, "cancel-previous")
    serve.signal(signal.SIGKILL)
    await serve.wait_exit()

    restarted = serve_factory()
    await restarted.start()  # a1 resumes holding its slot, its task (still running) adopted
    assert (await restarted.post(deploy("a2", "prod")))[0] == 202
    assert_cancelled_by(await finished_for(sink, "a1"), "a2")
    # a1's finished event comes once its task ended: its gate opening now must find no one.
    runs.open("a1")
    await runs.wait_for("start a2")
    runs.open("a2")
    assert (await finished_for(sink, "a2"))["status"] == "succeeded"
    await restarted.stop()
    assert runs.lines() == ["start a1", "start a2", "end a2"]  # a1 stopped, nothing ran twice
    assert_answered_once(sink, "a1", "a2")


async def test_the_replacing_run_completes_once_after_kill_and_restart(
    tmp_path: Path, sink: EventSink, serve_factory: Any
) -> None:
    runs, serve = await holding(tmp_path, serve_factory, "cancel-previous")
    await serve.post(deploy("a2", "prod"))
    assert_cancelled_by(await finished_for(sink, "a1"), "a2")
    await runs.wait_for("start a2")
    serve.signal(signal.SIGKILL)  # a1 reported cancelled, a2 running
    await serve.wait_exit()

    restarted = serve_factory()
    await restarted.start()
    runs.open("a1")  # a1 was stopped before the kill: nothing of it may run again to see this
    runs.open("a2")
    assert (await finished_for(sink, "a2"))["status"] == "succeeded"
    await restarted.stop()
    assert runs.lines() == ["start a1", "start a2", "end a2"]
    assert_answered_once(sink, "a1", "a2")
