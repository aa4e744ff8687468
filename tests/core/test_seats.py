"""MAX_CONCURRENT_RUNS bounds the events doing work, not those waiting at an action's
concurrency gate (executor/seats.py): the dispatcher's seat is given back while every action an
event has under way waits, taken again when one is let through, and a waiting event still counts
against QUEUE_SIZE."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from executor import seats
from executor.dispatcher import Dispatcher
from executor.model.events import Event, Offer, event_from_mapping
from executor.state import StateStore


def event(event_id: str) -> Event:
    return event_from_mapping({"specversion": "1.0", "id": event_id, "source": "s", "type": "t"})


async def taken_off_the_queue(dispatcher: Dispatcher) -> None:
    """Every task made ready since the offer has run as far as it can: the intake took the event
    off the queue, and had it found a seat, its action would have begun."""
    for _ in range(20):  # loop turns, not time: each lets the ready tasks take one step
        await asyncio.sleep(0)
    assert dispatcher.room() == dispatcher.queue_size - 1  # one taken, and nothing else waits


class Script:
    """Each event's handler is a list of actions run side by side, as Pipeline._handle runs
    them; `waits(name)` is an action that waits at the gate until `let(name)`, `works(name)` one
    that works until `let(name)`. Every step is recorded in order."""

    def __init__(self) -> None:
        self.log: list[str] = []
        self.plans: dict[str, list[Callable[[], Awaitable[None]]]] = {}
        self._gates: dict[str, asyncio.Event] = {}
        self._seen = asyncio.Condition()

    def gate(self, name: str) -> asyncio.Event:
        return self._gates.setdefault(name, asyncio.Event())

    def let(self, name: str) -> None:
        self.gate(name).set()

    async def note(self, line: str) -> None:
        async with self._seen:
            self.log.append(line)
            self._seen.notify_all()

    async def saw(self, line: str) -> None:
        async with self._seen:
            await asyncio.wait_for(self._seen.wait_for(lambda: line in self.log), 10)

    def waits(self, name: str) -> Callable[[], Awaitable[None]]:
        async def action() -> None:
            async with seats.aside():
                await self.note(f"waiting {name}")
                await self.gate(name).wait()
            await self.note(f"through {name}")

        return action

    def works(self, name: str) -> Callable[[], Awaitable[None]]:
        async def action() -> None:
            await self.note(f"working {name}")
            await self.gate(name).wait()
            await self.note(f"done {name}")

        return action

    async def handle(self, ev: Event) -> None:
        await asyncio.gather(*seats.parts(action() for action in self.plans[ev.id]))


async def test_a_waiting_event_gives_its_seat_to_the_next_and_takes_one_again() -> None:
    script = Script()
    script.plans = {"w": [script.waits("w")], "x": [script.works("x")]}
    dispatcher = Dispatcher(StateStore(":memory:"), script.handle, concurrency=1, queue_size=10)
    await dispatcher.start()
    dispatcher.offer(event("w"))
    await script.saw("waiting w")
    dispatcher.offer(event("x"))
    await script.saw("working x")  # one seat, and w waits: x has it
    script.let("w")  # let through while x works: w waits for the seat x holds
    script.let("x")
    await dispatcher.join()
    assert script.log.index("through w") > script.log.index("done x")
    await dispatcher.stop(grace=0)


async def test_an_event_keeps_its_seat_while_one_of_its_actions_still_works() -> None:
    script = Script()
    script.plans = {"e": [script.waits("e1"), script.works("e2")], "x": [script.works("x")]}
    dispatcher = Dispatcher(StateStore(":memory:"), script.handle, concurrency=1, queue_size=10)
    await dispatcher.start()
    dispatcher.offer(event("e"))
    await script.saw("waiting e1")
    await script.saw("working e2")
    dispatcher.offer(event("x"))
    await taken_off_the_queue(dispatcher)
    script.let("e2")  # now every action of e under way waits: its seat goes to x
    await script.saw("working x")
    assert script.log.index("working x") > script.log.index("done e2")
    script.let("x")
    script.let("e1")
    await dispatcher.join()
    assert script.log[-1] == "through e1"
    await dispatcher.stop(grace=0)


async def test_events_waiting_at_the_gate_count_against_the_queue_size() -> None:
    script = Script()
    script.plans = {name: [script.waits(name)] for name in ("a", "b", "c")}
    dispatcher = Dispatcher(StateStore(":memory:"), script.handle, concurrency=1, queue_size=2)
    await dispatcher.start()
    assert dispatcher.offer(event("a")) == Offer.ACCEPTED
    await script.saw("waiting a")
    assert dispatcher.offer(event("b")) == Offer.ACCEPTED
    await script.saw("waiting b")
    assert dispatcher.room() == 0
    assert dispatcher.offer(event("c")) == Offer.FULL
    script.let("a")
    script.let("b")
    await dispatcher.join()
    assert dispatcher.room() == 2
    await dispatcher.stop(grace=0)


async def test_a_stop_leaves_waiting_events_unfinished_for_the_next_start() -> None:
    script = Script()
    script.plans = {"w": [script.waits("w")]}
    store = StateStore(":memory:")
    dispatcher = Dispatcher(store, script.handle, concurrency=1, queue_size=10)
    await dispatcher.start()
    dispatcher.offer(event("w"))
    await script.saw("waiting w")
    await dispatcher.stop(grace=0)
    assert len(store.unfinished_runs()) == 1
