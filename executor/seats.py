"""Seats: MAX_CONCURRENT_RUNS bounds the events doing work at once, not the events waiting.

The dispatcher seats each event it takes from its queue. While every action an event has under
way waits for a slot of its key (the action field `concurrency`, onConflict: queue), the event
gives its seat back, so that a burst of one key cannot take every seat and stall every other
event, nor keep the run it waits for from coming back to finish after a Temporary error. When
the gate lets one of its actions through, the event takes a seat again, in line with the others.

The seat travels with the event's task in a context variable: the pipeline and the gate find it
there, and code that runs an event without the dispatcher (`run`, tests) has none.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import AsyncIterator, Awaitable, Iterable
from typing import TypeVar

T = TypeVar("T")


class Seats:
    """The MAX_CONCURRENT_RUNS seats. asyncio.Semaphore serves its waiters first come, first
    served, so an event coming back from the gate waits its turn like one from the queue."""

    def __init__(self, limit: int) -> None:
        self._free = asyncio.Semaphore(limit)
        self.taken = 0


class Seat:
    """One event's seat, given back while all of its actions under way wait at the gate."""

    def __init__(self, seats: Seats) -> None:
        self._seats = seats
        self.held = False
        self.parts = 0  # actions under way (Pipeline._handle runs them side by side)
        self.parked = 0  # of those, the ones waiting for a slot of their key
        self._taking = asyncio.Lock()  # two actions let through at once take one seat

    async def take(self) -> None:
        async with self._taking:
            if not self.held:
                await self._seats._free.acquire()
                self.held = True
                self._seats.taken += 1

    def give(self) -> None:
        if self.held:
            self.held = False
            self._seats.taken -= 1
            self._seats._free.release()

    def _settle(self) -> None:
        if self.parts and self.parked >= self.parts:
            self.give()


_current: contextvars.ContextVar[Seat | None] = contextvars.ContextVar("seat", default=None)


def sit(seat: Seat) -> None:
    """The current task (and those it starts) runs in `seat`: call it first in the event's task."""
    _current.set(seat)


def parts(works: Iterable[Awaitable[T]]) -> list[Awaitable[T]]:
    """The actions of the current event, to run side by side: each is under way until it ends.
    All are counted at once, before any begins, so the first to wait at the gate does not give
    the seat back while the others have yet to start."""
    seat = _current.get()
    works = list(works)
    if seat is None:
        return works
    seat.parts += len(works)
    return [_part(seat, work) for work in works]


async def _part(seat: Seat, work: Awaitable[T]) -> T:
    try:
        return await work
    finally:
        seat.parts -= 1
        seat._settle()  # the others may all be waiting at the gate


@contextlib.asynccontextmanager
async def aside() -> AsyncIterator[None]:
    """The current action waits at the gate; on leaving it (let through), the event takes a seat
    again before the action goes on. Left by an error (refused, or stopping), it does not: a
    refused action only reports, and a stopping one resumes on the next start."""
    seat = _current.get()
    if seat is None:
        yield
        return
    seat.parked += 1
    seat._settle()
    try:
        yield
    finally:
        seat.parked -= 1
    await seat.take()
