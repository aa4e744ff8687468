"""The outbox delivers in order, retries what may pass, and gives up on what a receiver refuses
so that one bad event cannot hold back every later one."""

from __future__ import annotations

from pathlib import Path

from executor.outbox import Outbox
from executor.sinks.http import HttpSink
from executor.state import StateStore
from executor.support.metrics import Metrics
from tests.service.conftest import EventSink


def event(event_id: str) -> dict[str, object]:
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": "t",
        "type": "sh.keptn.event.x.finished",
        "data": {},
    }


async def test_a_refused_event_is_set_aside_and_the_rest_delivered(tmp_path: Path, sink: EventSink) -> None:
    store = StateStore(tmp_path / "state.db")
    metrics = Metrics()
    outbox = Outbox(store, {"http": HttpSink(sink.url)}, metrics)
    sink.refuse_ids = {"bad"}
    for event_id in ("good-1", "bad", "good-2"):
        outbox.put(event(event_id))
    assert await outbox.deliver_due() == 2
    assert [e["id"] for e in sink.events] == ["good-1", "good-2"]
    assert store.pending_outbox() == 0
    ((event_id, sink_name, error),) = store.dead_letters()
    assert (event_id, sink_name) == ("bad", "http") and "answered 400" in error
    assert metrics.value("job_executor_outbox_dead_total", sink="http") == 1
    await outbox.sinks["http"].close()
    store.close()


async def test_a_receiver_that_is_down_holds_the_order(tmp_path: Path, sink: EventSink) -> None:
    store = StateStore(tmp_path / "state.db")
    outbox = Outbox(store, {"http": HttpSink(sink.url)})
    sink.fail_next = 1  # 503: may pass, so retried, and nothing overtakes it
    outbox.put(event("started"))
    outbox.put(event("finished"))
    assert await outbox.deliver_due() == 0
    assert sink.events == [] and store.pending_outbox() == 2 and store.dead_letters() == []
    await outbox.sinks["http"].close()
    store.close()


def test_credentials_in_urls_stay_out_of_messages() -> None:
    from executor.support.urls import without_userinfo

    assert without_userinfo("nats://user:s3cret@a:4222,nats://b:4222") == "nats://a:4222,nats://b:4222"
    assert HttpSink("https://bot:s3cret@hooks.example.com/x").where == "https://hooks.example.com/x"
