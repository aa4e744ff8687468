"""The outbox delivers in order, retries what may pass, and gives up on what a receiver refuses
so that one bad event cannot hold back every later one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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


class _Recording:
    """A sink that refuses some events for good, fails others for now, records the rest."""

    name = "rec"

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.poison: set[str] = set()
        self.down: set[str] = set()
        self.has: set[str] = set()
        self.asked: list[str] = []

    async def send(self, event: Any) -> None:
        from executor.model.errors import Permanent, Temporary

        if event["id"] in self.poison:
            raise Permanent(f"subject {event['type']!r} is not valid")
        if event["id"] in self.down:
            raise Temporary("not now")
        self.sent.append(event["id"])

    async def already_has(self, event: Any) -> bool:
        self.asked.append(event["id"])
        return bool(event["id"] in self.has)

    async def close(self) -> None:
        pass


def report(event_id: str, trigger: str, phase: str = "finished") -> dict[str, object]:
    return {**event(event_id), "type": f"sh.keptn.event.x.{phase}", "triggeredid": trigger}


async def test_one_unpublishable_report_blocks_only_its_own_event(tmp_path: Path) -> None:
    """Issue 13 item 4: a Permanent error dead-letters that report at once, and a report that
    waits for a retry holds back only the later reports of its own event."""
    store = StateStore(tmp_path / "state.db")
    sink = _Recording()
    outbox = Outbox(store, {"rec": sink})
    sink.poison, sink.down = {"a-started"}, {"b-started"}
    for event_id, trigger in [
        ("a-started", "a"),
        ("b-started", "b"),
        ("a-finished", "a"),
        ("b-finished", "b"),
        ("c-started", "c"),
        ("c-finished", "c"),
    ]:
        outbox.put(report(event_id, trigger))
    assert await outbox.deliver_due() == 3
    assert sorted(sink.sent) == ["a-finished", "c-finished", "c-started"]
    assert sink.sent.index("c-started") < sink.sent.index("c-finished")
    assert [d[0] for d in store.dead_letters()] == ["a-started"]
    assert store.pending_outbox() == 2  # b's reports, in order behind b-started
    store.close()


async def test_an_uncertain_delivery_is_checked_with_the_receiver_first(tmp_path: Path) -> None:
    """Issue 11 item 6: an attempt that began and never ended (kill -9 between POST and marking
    it delivered) is not simply repeated: the receiver is asked whether it has the event."""
    store = StateStore(tmp_path / "state.db")
    sink = _Recording()
    outbox = Outbox(store, {"rec": sink})
    outbox.put(report("arrived", "t1"))
    outbox.put(report("lost", "t2"))
    for item in store.due():
        store.sending(item)  # what a crash mid-delivery leaves behind
    store.close()
    store = StateStore(tmp_path / "state.db")  # the restart
    outbox = Outbox(store, {"rec": sink})
    sink.has = {"arrived"}
    assert await outbox.deliver_due() == 2
    assert sink.asked == ["arrived", "lost"] and sink.sent == ["lost"]
    assert store.pending_outbox() == 0
    outbox.put(report("fresh", "t3"))
    await outbox.deliver_due()
    assert sink.asked == ["arrived", "lost"]  # a first attempt asks nothing
    store.close()


async def test_reports_of_an_adopted_orphan_are_checked_with_the_receiver_first(tmp_path: Path) -> None:
    """A running task adopted from its Job after the state that knew it was lost (or from a replica
    that led before) may have had its reports sent already: Keptn would count a second .started
    and wait for a second .finished, so each of its reports is checked before it is sent."""
    store = StateStore(tmp_path / "state.db")
    sink = _Recording()
    outbox = Outbox(store, {"rec": sink})
    store.reports_uncertain("t1")
    outbox.put(report("started-before", "t1"))
    outbox.put(report("finished-now", "t1"))
    outbox.put(report("other-event", "t2"))
    sink.has = {"started-before"}
    await outbox.deliver_due()
    assert sink.asked == ["started-before", "finished-now"]  # only the adopted event's reports
    assert sorted(sink.sent) == ["finished-now", "other-event"]  # order is kept per event only
    store.close()
