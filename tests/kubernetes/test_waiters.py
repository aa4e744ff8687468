"""Waits for Jobs and their deadlines (waiters.py): one timer for all, nothing kept once settled."""

from __future__ import annotations

import asyncio
import gc
import time
import weakref
from typing import Any

import pytest

from executor.backends.kubernetes import waiters as waiters_module
from executor.backends.kubernetes.waiters import Waiters


def future() -> asyncio.Future[Any]:
    return asyncio.get_running_loop().create_future()


async def test_each_deadline_fails_its_own_wait_in_turn() -> None:
    waiters = Waiters()
    late, soon, never = future(), future(), future()
    waiters.add("late", "", late, time.time() + 0.3)
    waiters.add("soon", "", soon, time.time() + 0.05)  # earlier than the timer already armed
    waiters.add("never", "", never, None)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(soon, 1)
    assert not late.done()
    assert waiters.names() == ["late", "never"]
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(late, 1)
    await asyncio.sleep(0.05)
    assert not never.done() and waiters.names() == ["never"]


async def test_a_deadline_already_past_fails_at_the_next_turn() -> None:
    waiters = Waiters()
    gone = future()
    waiters.add("job", "uid", gone, time.time() - 5)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(gone, 1)


async def test_an_ending_goes_to_the_waits_for_its_uid_and_to_those_for_any() -> None:
    waiters = Waiters()
    first, second, anyone, other = future(), future(), future(), future()
    waiters.add("job", "uid-1", first, None)
    waiters.add("job", "uid-2", second, None)
    waiters.add("job", "", anyone, None)
    waiters.add("other", "uid-1", other, None)
    assert set(waiters.take("job", "uid-1")) == {first, anyone}
    assert waiters.names() == ["job", "other"]
    assert waiters.take("job", "uid-1") == []
    # A Job of that name is gone whatever its uid: every wait for it is told.
    assert waiters.take("job", "", any_uid=True) == [second]
    assert waiters.names() == ["other"]


async def test_a_wait_its_caller_cancelled_is_passed_over() -> None:
    waiters = Waiters()
    cancelled, kept = future(), future()
    waiters.add("job", "", cancelled, time.time() + 60)
    waiters.add("job", "", kept, time.time() + 60)
    cancelled.cancel()
    assert waiters.names() == ["job"]
    assert waiters.take("job", "") == [kept]  # setting the cancelled one would raise
    assert waiters.names() == []


async def test_nothing_is_held_of_a_settled_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    # Jobs that end long before their deadline (the usual case) must not keep their futures, or
    # the Jobs those hold, until the deadline passes: ended Jobs would pile up for maxPollDuration.
    monkeypatch.setattr(waiters_module, "COMPACT_AFTER", 8)
    waiters = Waiters()
    futures = [future() for _ in range(100)]
    for i, waiting in enumerate(futures):
        waiters.add(f"job-{i}", "", waiting, time.time() + 3600)
    results = []
    for i in range(100):
        for taken in waiters.take(f"job-{i}", ""):
            result = Ending()
            results.append(weakref.ref(result))
            taken.set_result(result)
    del futures, waiting, taken, result
    gc.collect()
    assert [r for r in results if r() is not None] == []
    assert len(waiters._deadlines) <= 2 * 8  # the heap was rebuilt without the settled waits


async def test_close_cancels_every_wait_and_its_timer() -> None:
    waiters = Waiters()
    pending = [future() for _ in range(3)]
    for i, waiting in enumerate(pending):
        waiters.add(f"job-{i}", "", waiting, time.time() + 0.05 if i else None)
    waiters.cancel_all()
    assert all(f.cancelled() for f in pending)
    assert waiters.names() == []
    await asyncio.sleep(0.1)  # the timer, had it stayed, would set an exception on a cancelled future


class Ending:
    """A stand-in for an ended Job (dicts cannot be weakly referenced)."""
