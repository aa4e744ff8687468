"""Group commit: the events offered in one turn of the event loop are committed in one
transaction, and each sender is answered only once its event's row is committed."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from executor.dispatcher import Dispatcher
from executor.model.events import Event, Offer, event_from_mapping
from executor.state import StateStore


def _event(event_id: str) -> Event:
    return event_from_mapping({"specversion": "1.0", "id": event_id, "source": "s", "type": "t"})


def _rows(path: Path) -> set[str]:
    # A second connection sees committed rows only.
    with sqlite3.connect(path) as other:
        return {str(r[0]) for r in other.execute("SELECT id FROM runs")}


async def test_requests_of_one_loop_turn_share_one_commit_and_are_answered_after_it(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.db")
    commits: list[str] = []
    store.db.set_trace_callback(lambda sql: commits.append(sql) if sql == "COMMIT" else None)
    handled: list[str] = []

    async def handler(event: Event) -> None:
        handled.append(event.id)

    dispatcher = Dispatcher(store, handler, concurrency=2, queue_size=10)
    await dispatcher.start()
    seen_on_answer: list[set[str]] = []

    async def sender(ids: list[str]) -> list[Offer]:
        answers = await dispatcher.offer_all([_event(i) for i in ids])
        seen_on_answer.append(_rows(tmp_path / "state.db"))
        return answers

    answers = await asyncio.gather(sender(["a"]), sender(["b", "c"]), sender(["d"]))
    assert answers == [[Offer.ACCEPTED], [Offer.ACCEPTED] * 2, [Offer.ACCEPTED]]
    assert len(commits) == 1  # four events from three senders, one transaction
    assert all(seen == {"a", "b", "c", "d"} for seen in seen_on_answer)
    await dispatcher.join()
    assert sorted(handled) == ["a", "b", "c", "d"]
    await dispatcher.stop(grace=0)


async def test_an_event_twice_in_one_group_is_accepted_once(tmp_path: Path) -> None:
    handled: list[str] = []

    async def handler(event: Event) -> None:
        handled.append(event.id)

    dispatcher = Dispatcher(StateStore(tmp_path / "state.db"), handler, concurrency=1, queue_size=10)
    await dispatcher.start()
    first, again = await asyncio.gather(
        dispatcher.offer_all([_event("a")]), dispatcher.offer_all([_event("a"), _event("b")])
    )
    assert first == [Offer.ACCEPTED] and again == [Offer.DUPLICATE, Offer.ACCEPTED]
    assert await dispatcher.offer_all([_event("b")]) == [Offer.DUPLICATE]  # a later turn too
    await dispatcher.join()
    assert handled == ["a", "b"]
    await dispatcher.stop(grace=0)


async def test_events_beyond_the_queue_waiting_for_the_commit_are_refused(tmp_path: Path) -> None:
    dispatcher = Dispatcher(StateStore(tmp_path / "state.db"), _hold, concurrency=1, queue_size=2)
    await dispatcher.start()
    answers = await dispatcher.offer_all([_event("a"), _event("b"), _event("c")])
    assert answers == [Offer.ACCEPTED, Offer.ACCEPTED, Offer.FULL]
    await dispatcher.stop(grace=0)


async def test_a_failed_commit_answers_every_sender_of_the_group_with_the_error(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.db")
    dispatcher = Dispatcher(store, _never, concurrency=1, queue_size=10)
    await dispatcher.start()
    store.db.execute(
        "CREATE TRIGGER refuse BEFORE INSERT ON runs BEGIN SELECT RAISE(ABORT, 'disk full'); END"
    )
    results = await asyncio.gather(
        dispatcher.offer_all([_event("a")]), dispatcher.offer_all([_event("b")]), return_exceptions=True
    )
    assert all(isinstance(r, sqlite3.DatabaseError) and "disk full" in str(r) for r in results)
    assert _rows(tmp_path / "state.db") == set()
    assert dispatcher.room() == 10  # nothing queued, nothing left waiting
    await dispatcher.stop(grace=0)


async def _hold(_event: Event) -> None:
    await asyncio.Event().wait()


async def _never(_event: Event) -> None:
    pytest.fail("no event should reach the pipeline")
