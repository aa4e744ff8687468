"""Kill the service mid-run and start it again: exactly one finished event, no task run twice."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import aiohttp
import pytest

from tests.service.conftest import EventSink, make_event, write_config

pytestmark = pytest.mark.slow

SLOW_TASK = """\
apiVersion: v2
actions:
  - name: "Long test"
    events: [{{name: "sh.keptn.event.test.triggered"}}]
    tasks:
      - name: "first"
        image: "alpine"
        cmd: ["sh", "-c", "echo started >> {runs}; while [ ! -e {gate} ]; do sleep 0.05; done; echo done >> {runs}"]
      - name: "second"
        image: "alpine"
        cmd: ["sh", "-c", "echo second >> {runs}"]
"""


QUICK = """\
apiVersion: v2
actions:
  - name: "Quick"
    events: [{name: "sh.keptn.event.test.triggered"}]
    tasks: [{name: "q", image: "alpine", cmd: ["true"]}]
"""


async def later_event_reported(tmp_path: Path, serve, sink: EventSink, event_id: str) -> None:
    """A positive signal instead of a fixed sleep: an event posted now, for a quick config of
    its own, is run and reported; anything the service was going to report about the events
    before it had that long to show."""
    write_config(tmp_path, QUICK, level=("shop", "later", "cart"))
    assert (await serve.post(make_event(event_id=event_id, stage="later")))[0] == 202
    for _ in range(20):  # each round needs one more finished event (20 s at most each)
        if any(e["triggeredid"] == event_id for e in sink.of_type(".finished")):
            return
        await sink.wait_for(".finished", count=len(sink.of_type(".finished")) + 1)
    raise AssertionError(f"no finished event for {event_id}")


async def delivered(serve, count: int, timeout: float = 10) -> None:
    """Until the service's outbox has recorded `count` deliveries (its /metrics counter)."""
    async with aiohttp.ClientSession() as client:
        for _ in range(int(timeout / 0.05)):
            async with client.get(serve.url + "metrics") as response:
                text = await response.text()
            for line in text.splitlines():
                if line.startswith("job_executor_events_sent_total ") and float(line.split()[1]) >= count:
                    return
            await asyncio.sleep(0.05)
    raise AssertionError(f"the outbox never recorded {count} deliveries")


async def wait_for_file(path: Path, text: str, timeout: float = 10) -> None:
    for _ in range(int(timeout / 0.05)):
        if path.exists() and text in path.read_text():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{path} never contained {text!r}")


async def killed_mid_task(serve_factory, event_id: str, runs: Path) -> None:
    """serve takes the event, its first task starts, and the service is killed (SIGKILL)."""
    serve = serve_factory()
    await serve.start()
    await serve.post(make_event(event_id=event_id))
    await wait_for_file(runs, "started")
    serve.signal(signal.SIGKILL)
    await serve.wait_exit()


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
async def test_restart_adopts_running_task(tmp_path: Path, sink: EventSink, serve_factory, sig: int) -> None:
    runs, gate = tmp_path / "runs", tmp_path / "gate"
    write_config(tmp_path, SLOW_TASK.format(runs=runs, gate=gate))
    serve = serve_factory()
    await serve.start()
    assert (await serve.post(make_event(event_id="crash-1")))[0] == 202
    await wait_for_file(runs, "started")
    await sink.wait_for(".started")
    # The sink having it is not enough: until the outbox records the delivery, a kill means the
    # started event is sent again after the restart (at least once, same id: FEATURES.md).
    await delivered(serve, 1)

    serve.signal(sig)
    code = await serve.wait_exit()
    if sig == signal.SIGTERM:
        assert code == 0  # a graceful stop, leaving the task running for the next start
        assert "stopped" in serve.log.read_text()
    gate.touch()  # the task finishes while nobody is watching
    await wait_for_file(runs, "done")

    restarted = serve_factory()
    await restarted.start()
    finished = await sink.wait_for(".finished")
    await later_event_reported(tmp_path, restarted, sink, "after-crash-1")
    assert [e["triggeredid"] for e in sink.of_type(".finished")] == ["crash-1", "after-crash-1"]
    assert [e["triggeredid"] for e in sink.of_type(".started")] == ["crash-1", "after-crash-1"]
    data = finished[0]["data"]
    assert data["status"] == "succeeded", data["message"]
    assert "Task 'first' finished successfully!" in data["message"]
    assert "Task 'second' finished successfully!" in data["message"]
    assert runs.read_text() == "started\ndone\nsecond\n"  # nothing ran twice
    await restarted.stop()


async def test_restart_while_task_still_runs(tmp_path: Path, sink: EventSink, serve_factory) -> None:
    runs, gate = tmp_path / "runs", tmp_path / "gate"
    write_config(tmp_path, SLOW_TASK.format(runs=runs, gate=gate))
    await killed_mid_task(serve_factory, "crash-2", runs)

    restarted = serve_factory()
    await restarted.start()
    await later_event_reported(tmp_path, restarted, sink, "after-crash-2")
    # the adopted task is still running: only the later event is finished
    assert [e["triggeredid"] for e in sink.of_type(".finished")] == ["after-crash-2"]
    gate.touch()
    await sink.wait_for(".finished", count=2)
    assert sink.of_type(".finished")[1]["triggeredid"] == "crash-2"
    assert runs.read_text() == "started\ndone\nsecond\n"
    await restarted.stop()


async def test_finished_event_survives_an_unreachable_sink(
    tmp_path: Path, sink: EventSink, serve_factory
) -> None:
    write_config(
        tmp_path,
        """\
apiVersion: v2
actions:
  - name: "Quick"
    events: [{name: "sh.keptn.event.test.triggered"}]
    tasks: [{name: "t", image: "alpine", cmd: ["true"]}]
""",
    )
    sink.fail_next = 3  # the receiver is down for a while: the outbox retries with backoff
    serve = serve_factory()
    await serve.start()
    await serve.post(make_event(event_id="retry-1"))
    finished = await sink.wait_for(".finished", timeout=20)
    assert finished[0]["triggeredid"] == "retry-1"
    assert len(sink.of_type(".started")) == 1
    await serve.stop()


async def test_config_changed_during_a_restart_is_reported_not_mixed(
    tmp_path: Path, sink: EventSink, serve_factory
) -> None:
    runs, gate = tmp_path / "runs", tmp_path / "gate"
    config = write_config(tmp_path, SLOW_TASK.format(runs=runs, gate=gate))
    await killed_mid_task(serve_factory, "changed-1", runs)
    # a new action inserted first: position 0 now means another action
    config.write_text(
        config.read_text().replace(
            "actions:\n",
            f'actions:\n  - name: "New"\n    events: [{{name: "sh.keptn.event.test.triggered"}}]\n    tasks: [{{name: "n", image: "alpine", cmd: ["sh", "-c", "echo new >> {runs}"]}}]\n',
            1,
        )
    )
    gate.touch()
    restarted = serve_factory()
    await restarted.start()
    finished = await sink.wait_for(".finished")
    assert "changed while this event was being handled" in finished[0]["data"]["message"]
    await later_event_reported(tmp_path, restarted, sink, "after-changed-1")
    assert "new" not in runs.read_text()  # nothing of the new config ran for the old event
    await restarted.stop()


async def test_config_changed_to_match_nothing_during_a_restart_is_reported(
    tmp_path: Path, sink: EventSink, serve_factory
) -> None:
    # An event that matches nothing pins no config; one whose action began under the old config
    # still has it pinned, so the change is reported, not taken for "nothing to do".
    runs, gate = tmp_path / "runs", tmp_path / "gate"
    config = write_config(tmp_path, SLOW_TASK.format(runs=runs, gate=gate))
    await killed_mid_task(serve_factory, "changed-2", runs)
    config.write_text(
        config.read_text().replace("sh.keptn.event.test.triggered", "sh.keptn.event.other.triggered")
    )
    gate.touch()
    restarted = serve_factory()
    await restarted.start()
    finished = await sink.wait_for(".finished")
    assert "changed while this event was being handled" in finished[0]["data"]["message"]
    await restarted.stop()
