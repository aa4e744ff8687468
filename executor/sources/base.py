"""What every source meets: the dispatcher, seen only through these types.

A source turns its input into `Event`s and offers each one; the answer (`Offer`) comes at once
and tells the source what to say to its sender (HTTP 202 or 429, a NATS ack or none). The HTTP
source also asks whether the intake is open, how much room it has and how large its queue is,
to refuse a batch whole (429 while it does not fit now, 413 when it never can), and it offers
its events with `offer_all`, answered when they are committed together with the other events
offered in the same turn of the event loop (group commit).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from executor.model.events import Event, Offer

Offering = Callable[[Event], Offer]


class Intake(Protocol):
    @property
    def accepting(self) -> bool: ...

    def room(self) -> int: ...

    @property
    def queue_size(self) -> int: ...

    def offer(self, event: Event) -> Offer: ...

    async def offer_all(self, events: list[Event]) -> list[Offer]: ...
