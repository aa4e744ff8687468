from __future__ import annotations

from typing import Protocol

from executor.model.events import OutEvent


class Sink(Protocol):
    """Where outgoing events go. `send` raises `Temporary` when delivery failed (the outbox
    retries with backoff) and `Permanent` when the receiver refused this event itself (a 4xx):
    sending it again would only block the ones behind it."""

    name: str

    async def send(self, event: OutEvent) -> None: ...

    async def close(self) -> None: ...
