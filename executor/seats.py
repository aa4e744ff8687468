"""Seats: MAX_CONCURRENT_RUNS bounds the events doing work at once, not the events waiting.

The dispatcher seats each event it takes from its queue. While every action an event has under
way waits for a slot of its key (the action field `concurrency`, onConflict: queue), the event
gives its seat back, so that a burst of one key cannot take every seat and stall every other
event, nor keep the run it waits for from coming back to finish after a Temporary error. When
the gate lets one of its actions through, the event takes a seat again, in line with the others.

Seats are handed out in the order events leave the queue, which is their arrival order, and the
gate lets an action line up for its key only once every event seated before it has lined up its
own actions (or ended): the key is known only after the config is read, and reading it takes
each event its own time, so without this turn a later event ready first would take the slot.

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
        self._issued = 0
        # Seats whose actions have not all lined up at the gate yet, oldest first (dicts keep
        # insertion order, and numbers are issued in order, so the first key is the oldest).
        self._unsettled: dict[int, Seat] = {}
        self._settled = asyncio.Event()

    async def turn(self, seat: Seat) -> None:
        """Returns once no event seated before `seat` has actions still to line up."""
        while self._unsettled and next(iter(self._unsettled)) < seat.number:
            settled = self._settled
            await settled.wait()

    def _settle(self, seat: Seat) -> None:
        if self._unsettled.pop(seat.number, None) is not None:
            self._settled.set()
            self._settled = asyncio.Event()


class Seat:
    """One event's seat, given back while all of its actions under way wait at the gate."""

    def __init__(self, seats: Seats) -> None:
        self._seats = seats
        self.held = False
        self.parts = 0  # actions under way (Pipeline._handle runs them side by side)
        self.parked = 0  # of those, the ones waiting for a slot of their key
        self.unlined = 0  # of those, the ones that have not reached the gate yet
        self._taking = asyncio.Lock()  # two actions let through at once take one seat
        self.number = seats._issued
        seats._issued += 1
        seats._unsettled[self.number] = self

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

    def close(self) -> None:
        """The event's run ended (or stops): later events no longer wait for its actions."""
        self.give()
        self._seats._settle(self)


_current: contextvars.ContextVar[Seat | None] = contextvars.ContextVar("seat", default=None)
# Per action under way: whether it has lined up at the gate (or needs no slot).
_lined: contextvars.ContextVar[list[bool] | None] = contextvars.ContextVar("lined", default=None)


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
    seat.unlined += len(works)
    if not seat.unlined:
        seat._seats._settle(seat)  # nothing matched that is left to run
    return [_part(seat, work) for work in works]


async def _part(seat: Seat, work: Awaitable[T]) -> T:
    _lined.set([False])  # in this action's own task (gather made one), so it is this action's
    try:
        return await work
    finally:
        lined()  # ended before the gate (refused by policy, done before a restart): it never will
        seat.parts -= 1
        seat._settle()  # the others may all be waiting at the gate


async def in_turn() -> None:
    """Before the current action lines up at the gate for the first time: waits until every event
    seated before its own has lined up all of its actions, so the gate sees them in arrival order."""
    seat = _current.get()
    if seat is not None:
        await seat._seats.turn(seat)


def lined() -> None:
    """The current action is in line at the gate (or runs without a slot): later events may line up
    once every action of its event is."""
    seat, mark = _current.get(), _lined.get()
    if seat is None or mark is None or mark[0]:
        return
    mark[0] = True
    seat.unlined -= 1
    if not seat.unlined:
        seat._seats._settle(seat)


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
