"""NATS source and sink against a real nats-server, with `job-executor serve` replicas."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from collections import Counter
from pathlib import Path
from typing import Any

import nats
import pytest

from tests.nats.conftest import NatsServer
from tests.service.conftest import EventSink, Serve, make_event, write_config

pytestmark = pytest.mark.slow

CONFIG = """\
apiVersion: v2
actions:
  - name: "Record"
    events: [{{name: "sh.keptn.event.test.triggered"}}]
    tasks:
      - name: "note"
        image: "alpine"
        cmd: ["sh", "-c", "sleep {pause}; echo $(EVENT_ID) >> {runs}"]
        env: [{{name: EVENT_ID, value: "$.id", valueFrom: event}}]
"""


def replica(tmp: Path, name: str, sink: EventSink, nats_url: str, **env: str) -> Serve:
    serve = Serve(tmp / name, sink.url, {"NATS_URL": nats_url, "CONFIG_DIR": str(tmp / "resources"), **env})
    (tmp / name).mkdir(exist_ok=True)
    return serve


async def wait_lines(path: Path, count: int, timeout: float = 30) -> list[str]:
    for _ in range(int(timeout / 0.1)):
        if path.exists() and len(path.read_text().split()) >= count:
            break
        await asyncio.sleep(0.1)
    return path.read_text().split() if path.exists() else []


async def all_acknowledged(js: Any, durable: str = "job-executor", timeout: float = 30) -> None:
    """Until the service's JetStream consumer holds nothing pending and nothing unacknowledged:
    from then on the server redelivers nothing (nats-io/nats-server: server/consumer.go, the
    ack-pending map that drives redelivery after AckWait)."""
    stream = await js.find_stream_name_by_subject("sh.keptn.event.test.triggered")
    for _ in range(int(timeout / 0.1)):
        info = await js.consumer_info(stream, durable)
        if info.num_ack_pending == 0 and info.num_pending == 0:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"consumer {durable} still has messages pending after {timeout}s: {info}")


async def collect(nc: Any, subject: str) -> list[dict[str, Any]]:
    received: list[dict[str, Any]] = []

    async def on_message(msg: Any) -> None:
        received.append(json.loads(msg.data))

    await nc.subscribe(subject, cb=on_message)
    await nc.flush()
    return received


async def test_queue_group_shares_events_between_replicas(
    tmp_path: Path, nats_server: NatsServer, sink: EventSink
) -> None:
    runs = tmp_path / "runs"
    write_config(tmp_path, CONFIG.format(pause=0, runs=runs))
    replicas = [replica(tmp_path, n, sink, nats_server.url) for n in ("a", "b")]
    for r in replicas:
        await r.start()
    nc = await nats.connect(nats_server.url)
    finished = await collect(nc, "sh.keptn.event.test.finished")
    ids = [f"q-{i}" for i in range(20)]
    for event_id in ids:
        await nc.publish("sh.keptn.event.test.triggered", json.dumps(make_event(event_id=event_id)).encode())
    await nc.flush()
    lines = await wait_lines(runs, len(ids))
    assert len(lines) == len(ids)
    # Later events, spread over both replicas by the queue group: once each of their runs is
    # reported, a second delivery of an earlier event would have been run and reported too.
    later = [f"later-{i}" for i in range(10)]
    for event_id in later:
        await nc.publish("sh.keptn.event.test.triggered", json.dumps(make_event(event_id=event_id)).encode())
    await nc.flush()
    for _ in range(300):
        if {e["triggeredid"] for e in finished} >= set(ids + later):
            break
        await asyncio.sleep(0.1)
    assert Counter(runs.read_text().split()) == Counter(ids + later)  # each handled once, by one replica
    # published to NATS by type, once each
    assert sorted(e["triggeredid"] for e in finished) == sorted(ids + later)
    handled = [r.log.read_text().count("NATS: subscribed") for r in replicas]
    assert handled == [1, 1]
    await nc.close()
    for r in replicas:
        await r.stop()


async def test_jetstream_redelivery_after_crash_runs_nothing_twice(
    tmp_path: Path, nats_server: NatsServer, sink: EventSink
) -> None:
    runs = tmp_path / "runs"
    write_config(tmp_path, CONFIG.format(pause=0.3, runs=runs))
    env = {
        "NATS_JETSTREAM": "true",
        "NATS_ACK_WAIT_SECONDS": "2",
        "MAX_CONCURRENT_RUNS": "1",
        "QUEUE_SIZE": "2",
    }
    serve = replica(tmp_path, "a", sink, nats_server.url, **env)
    await serve.start()
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    ids = [f"js-{i}" for i in range(8)]
    for event_id in ids:
        await js.publish("sh.keptn.event.test.triggered", json.dumps(make_event(event_id=event_id)).encode())
    # a redelivery of an event already handled is recognised by (source, id)
    await js.publish("sh.keptn.event.test.triggered", json.dumps(make_event(event_id=ids[0])).encode())
    await wait_lines(runs, 2)
    serve.signal(signal.SIGKILL)  # mid-stream: some accepted, some not yet acknowledged
    await serve.wait_exit()
    restarted = replica(tmp_path, "a", sink, nats_server.url, **env)
    await restarted.start()
    await wait_lines(runs, len(ids))
    # Nothing left to redeliver, then one later event: with one run at a time, in order of
    # acceptance, its run comes after the run of any redelivered event that was taken again.
    await all_acknowledged(js)
    await js.publish("sh.keptn.event.test.triggered", json.dumps(make_event(event_id="js-later")).encode())
    await wait_lines(runs, len(ids) + 1)
    assert runs.read_text().split()[-1] == "js-later"
    assert Counter(runs.read_text().split()) == Counter([*ids, "js-later"])
    await nc.close()
    await restarted.stop()


async def test_server_restart_mid_stream_loses_nothing(
    tmp_path: Path, nats_server: NatsServer, sink: EventSink
) -> None:
    runs = tmp_path / "runs"
    write_config(tmp_path, CONFIG.format(pause=0, runs=runs))
    serve = replica(tmp_path, "a", sink, nats_server.url, NATS_JETSTREAM="true")
    await serve.start()
    nc = await nats.connect(nats_server.url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    js = nc.jetstream()
    first = [f"r-{i}" for i in range(5)]
    for event_id in first:
        await js.publish("sh.keptn.event.test.triggered", json.dumps(make_event(event_id=event_id)).encode())
    await wait_lines(runs, len(first))
    await nats_server.stop()
    for _ in range(200):  # until the client has noticed the server is gone (10 s at most)
        if not nc.is_connected:
            break
        await asyncio.sleep(0.05)
    assert not nc.is_connected
    await nats_server.start()  # same port, same store
    second = [f"r-{i}" for i in range(5, 10)]
    for event_id in second:
        for _ in range(50):
            try:
                await js.publish(
                    "sh.keptn.event.test.triggered", json.dumps(make_event(event_id=event_id)).encode()
                )
                break
            except Exception:
                await asyncio.sleep(0.2)
    await wait_lines(runs, 10)
    assert Counter(runs.read_text().split()) == Counter(first + second)
    # every finished event reached the stream too, including those sent while the server was down
    finished = []
    sub = await js.pull_subscribe("sh.keptn.event.test.finished", durable="check")
    for _ in range(20):
        with contextlib.suppress(Exception):
            finished += await sub.fetch(20, timeout=1)
        if len(finished) >= 10:
            break
    assert sorted(json.loads(m.data)["triggeredid"] for m in finished) == sorted(first + second)
    await nc.close()
    await serve.stop()


async def test_jetstream_consumer_starts_with_new_messages_unless_told(
    tmp_path: Path, nats_server: NatsServer, sink: EventSink
) -> None:
    """Issue 11 item 7: a first start on a stream with history (Keptn's own `keptn` stream keeps
    every event) must not replay it; NATS_DELIVER_POLICY=all does, for whoever wants it."""
    runs = tmp_path / "runs"
    write_config(tmp_path, CONFIG.format(pause=0, runs=runs))
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    await js.add_stream(name="keptn", subjects=["sh.keptn.event.>"])
    await js.publish("sh.keptn.event.test.triggered", json.dumps(make_event(event_id="history")).encode())
    env = {"NATS_JETSTREAM": "true", "MAX_CONCURRENT_RUNS": "1"}
    serve = replica(tmp_path, "new", sink, nats_server.url, **env)
    await serve.start()
    await js.publish("sh.keptn.event.test.triggered", json.dumps(make_event(event_id="fresh")).encode())
    # One run at a time, in stream order: had the history been delivered, it would run first.
    assert await wait_lines(runs, 1) == ["fresh"]
    await serve.stop()
    replay = replica(
        tmp_path, "all", sink, nats_server.url, NATS_QUEUE_GROUP="replay", NATS_DELIVER_POLICY="all", **env
    )
    await replay.start()
    assert await wait_lines(runs, 3) == ["fresh", "history", "fresh"]
    await replay.stop()
    await nc.close()


async def test_published_events_carry_a_msg_id_that_jetstream_deduplicates(nats_server: NatsServer) -> None:
    """Issue 14 item 8: the outbox may publish an event again (a crash between the publish and
    marking it delivered); `Nats-Msg-Id` from (source, id) lets the stream's duplicate window
    drop the second copy (nats-io/nats-server: server/stream.go, JSMsgId)."""
    from executor.sinks.nats import NatsSink

    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    await js.add_stream(name="out", subjects=["sh.keptn.event.test.*"])
    sink = NatsSink(nc, jetstream=True)
    event: Any = {**make_event("sh.keptn.event.test.started", event_id="out-1"), "triggeredid": "t"}
    await sink.send(event)
    await sink.send(event)  # the same event again: dropped by the duplicate window
    await sink.send({**event, "id": "out-2"})  # another event: kept
    info = await js.stream_info("out")
    assert info.state.messages == 2
    await nc.close()
