"""Who waits for which Job, and until when: plain futures, and one timer for all their deadlines.

A wait for a Job is a future the tracker resolves when the Job ends (tracker.py). It may carry
a deadline (the pod-start grace, maxPollDuration), at which the future fails with TimeoutError.
The deadlines are kept in one heap with one loop timer for the earliest of them, rather than an
asyncio.timeout per wait: with 50,000 Jobs in flight, each wait's Timeout, TimerHandle, done
callback and list were about 0.7 KB of the 2.3 KB a wait cost (tracemalloc; bench/tracking.py).

A future its caller cancels is not unhooked at once (that needed a done callback per future):
it is dropped when its Job ends or goes, when its deadline passes, or when the heap is compacted.
A future that resolves or expires is dropped at once, so that nothing here keeps a Job's last
version alive.
"""

from __future__ import annotations

import asyncio
import heapq
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

Job = dict[str, Any]
# Settled waiters left in the heap (their deadline not yet due) before it is rebuilt without
# them, once they are also half of it: a service whose Jobs end well before their deadlines
# would otherwise hold one entry per Job ended within the last maxPollDuration.
COMPACT_AFTER = 64
# The loop may run a timer a hair before its time (it rounds to its clock's resolution): a
# deadline this close is due, rather than armed again for a moment later.
EARLY = 0.001


@dataclass(slots=True, eq=False)
class Waiter:
    name: str
    uid: str  # "": any Job of that name
    when: float  # loop time of the deadline; inf: none
    future: asyncio.Future[Job | None] | None  # None once it is settled here
    next: Waiter | None = None  # the next waiter for the same name (rarely more than one)

    def __lt__(self, other: Waiter) -> bool:  # heap order
        return self.when < other.when

    def pending(self) -> bool:
        return self.future is not None and not self.future.done()


class Waiters:
    def __init__(self) -> None:
        self._first: dict[str, Waiter] = {}
        self._deadlines: list[Waiter] = []
        self._settled_in_heap = 0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf

    def add(self, name: str, uid: str, future: asyncio.Future[Job | None], until: float | None) -> None:
        """Wait for `name` (of that uid, unless ""); `until`: the deadline, in epoch seconds."""
        loop = future.get_loop()
        when = math.inf if until is None else loop.time() + (until - time.time())
        waiter = Waiter(name, uid, when, future, self._first.get(name))
        self._first[name] = waiter
        if when == math.inf:
            return
        heapq.heappush(self._deadlines, waiter)
        if when < self._timer_at:
            if self._timer is not None:
                self._timer.cancel()
            self._timer, self._timer_at = loop.call_at(when, self._expire), when

    def take(self, name: str, uid: str, *, any_uid: bool = False) -> list[asyncio.Future[Job | None]]:
        """Remove and return the pending futures waiting for `name` with uid `uid` (or without
        one; `any_uid`: whatever their uid). Futures already done are dropped on the way."""
        taken: list[asyncio.Future[Job | None]] = []
        for waiter in list(self._chain(name)):
            if not waiter.pending():
                self._drop(waiter)
            elif any_uid or waiter.uid in ("", uid):
                assert waiter.future is not None
                taken.append(waiter.future)
                self._drop(waiter)
        return taken

    def names(self) -> list[str]:
        """Names of the Jobs with a pending waiter, sorted."""
        return sorted(name for name in self._first if any(w.pending() for w in self._chain(name)))

    def cancel_all(self) -> None:
        for name in list(self._first):
            for waiter in list(self._chain(name)):
                if waiter.pending():
                    assert waiter.future is not None
                    waiter.future.cancel()
                self._drop(waiter)
        self._deadlines.clear()
        self._settled_in_heap = 0
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._timer_at = None, math.inf

    # ---- inside ----

    def _chain(self, name: str) -> Iterator[Waiter]:
        waiter = self._first.get(name)
        while waiter is not None:
            yield waiter
            waiter = waiter.next

    def _drop(self, waiter: Waiter) -> None:
        """Unlink it from its name's chain; its heap entry, if any, becomes a settled one."""
        if waiter.future is None:
            return
        waiter.future = None
        if self._first.get(waiter.name) is waiter:
            if waiter.next is None:
                del self._first[waiter.name]
            else:
                self._first[waiter.name] = waiter.next
        else:
            for before in self._chain(waiter.name):
                if before.next is waiter:
                    before.next = waiter.next
                    break
        waiter.next = None
        if waiter.when != math.inf:
            self._settled_in_heap += 1
            if self._settled_in_heap > COMPACT_AFTER and 2 * self._settled_in_heap > len(self._deadlines):
                self._compact()

    def _compact(self) -> None:
        kept = []
        for waiter in self._deadlines:
            if waiter.future is None:
                continue
            if waiter.future.done():  # cancelled by its caller: forgotten now
                self._drop_quietly(waiter)
                continue
            kept.append(waiter)
        heapq.heapify(kept)
        self._deadlines = kept
        self._settled_in_heap = 0

    def _drop_quietly(self, waiter: Waiter) -> None:
        when, waiter.when = waiter.when, math.inf  # not counted as settled: it leaves the heap now
        self._drop(waiter)
        waiter.when = when

    def _expire(self) -> None:
        self._timer, self._timer_at = None, math.inf
        heap = self._deadlines
        if not heap:
            return
        loop = asyncio.get_running_loop()
        now = loop.time() + EARLY
        while heap and heap[0].when <= now:
            waiter = heapq.heappop(heap)
            if waiter.future is None:
                self._settled_in_heap -= 1
                continue
            future = waiter.future
            self._drop_quietly(waiter)
            if not future.done():
                future.set_exception(TimeoutError())
        if heap:
            self._timer, self._timer_at = loop.call_at(heap[0].when, self._expire), heap[0].when
