"""Shared commits: the events offered in one turn of the event loop are committed in one
transaction, and each sender is answered only once its event's row is committed; other writes
share a commit a moment later, except those something outside the process acts on next."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from executor.dispatcher import Dispatcher
from executor.model.events import Event, Offer, event_from_mapping
from executor.outbox import Outbox
from executor.pipeline import Pipeline
from executor.resolvers.local import LocalTreeResolver
from executor.settings import Settings
from executor.state import OutboxItem, StateStore
from tests.service.conftest import make_event, write_config
from tests.service.test_pipeline_faults import CONFIG, BrokenBackend, Recorder


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
    release = asyncio.Event()

    async def handler(event: Event) -> None:
        await release.wait()  # the workers write nothing (no later commit) until counted
        handled.append(event.id)

    dispatcher = Dispatcher(store, handler, concurrency=4, queue_size=10)
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
    release.set()
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


def _committed(path: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as other:
        return list(other.execute(sql))


async def test_writes_that_can_wait_share_one_commit_a_moment_later(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = StateStore(path)
    for i in "abc":
        store.accept("s", i, "{}")
    commits: list[str] = []
    store.db.set_trace_callback(lambda sql: commits.append(sql) if sql == "COMMIT" else None)
    for i in "abc":
        store.set_run_state("s", i, "done")
    assert store.unfinished_runs() == []  # this process sees its writes at once
    assert len(_committed(path, "SELECT id FROM runs WHERE state = 'done'")) == 0  # not committed yet
    for _ in range(500):
        if commits:
            break
        await asyncio.sleep(0.01)
    assert commits == ["COMMIT"]
    assert len(_committed(path, "SELECT id FROM runs WHERE state = 'done'")) == 3
    store.close()


async def test_what_leaves_the_process_next_is_committed_before_the_call_returns(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = StateStore(path)
    store.accept("s", "a", "{}")
    store.set_run_state("s", "a", "done")  # waiting for company...
    store.place("job-a", "east", "s", "a")  # ...and committed with the placement, before the create
    assert _committed(path, "SELECT cluster FROM placements") == [("east",)]
    assert _committed(path, "SELECT state FROM runs") == [("done",)]
    store.enqueue("e1", ["http"], "{}", group="a")
    store.delivered(OutboxItem("e1", "http", "{}", 0, "a"))
    store.close()  # a stop commits what waits
    assert _committed(path, "SELECT delivered_at IS NOT NULL FROM outbox") == [(1,)]


class Witness:
    """A sink that reads, from another connection, what is committed when a report leaves."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.seen: list[tuple[str, list[tuple[object, ...]]]] = []

    async def send(self, event: dict[str, object]) -> None:
        rows = _committed(self.path, "SELECT event_id, uncertain FROM outbox ORDER BY rowid")
        self.seen.append((str(event["id"]), rows))

    async def close(self) -> None:
        pass


async def test_every_report_and_its_attempt_are_committed_before_it_is_sent(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = StateStore(path)
    witness = Witness(path)
    outbox = Outbox(store, {"http": witness})  # type: ignore[dict-item]
    for event_id, group in (("s1", "a"), ("s2", "b"), ("f1", "a")):
        outbox.put({"id": event_id, "type": "x.finished", "triggeredid": group})
    assert await outbox.deliver_due() == 3
    # s1 and s2 (two events' first reports) leave after one commit of both attempts; f1, held
    # back behind s1, after its own.
    assert witness.seen == [
        ("s1", [("s1", 1), ("s2", 1), ("f1", 0)]),
        ("s2", [("s1", 1), ("s2", 1), ("f1", 0)]),
        ("f1", [("s1", 1), ("s2", 1), ("f1", 1)]),
    ]
    store.close()


def test_without_an_event_loop_every_write_commits_at_once(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = StateStore(path)
    store.accept("s", "a", "{}")
    store.set_run_state("s", "a", "done")
    assert _committed(path, "SELECT state FROM runs") == [("done",)]
    store.close()


async def test_a_task_is_submitted_only_after_its_pinned_config_and_progress_are_committed(
    tmp_path: Path,
) -> None:

    path = tmp_path / "state.db"
    seen: list[list[tuple[object, ...]]] = []

    class Checking(BrokenBackend):
        async def submit(self, spec: object, files: object) -> object:
            seen.append(
                _committed(
                    path, "SELECT r.config_digest IS NOT NULL, t.job FROM runs r JOIN tasks t USING (id)"
                )
            )
            return await super().submit(spec, files)  # type: ignore[arg-type]

    write_config(tmp_path, CONFIG)
    store = StateStore(path)
    event = event_from_mapping(make_event(event_id="pinned"))
    store.accept(event.source, event.id, event.to_json())
    pipeline = Pipeline(Settings(), LocalTreeResolver(tmp_path / "resources"), Checking(), store, Recorder())
    await pipeline.handle(event)
    assert len(seen) == 1 and len(seen[0]) == 1
    pinned, job = seen[0][0]
    assert pinned == 1 and str(job).startswith("job-executor-service-job-")
    store.close()
