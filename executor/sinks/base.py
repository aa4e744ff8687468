from __future__ import annotations

from typing import Any, Protocol


class SinkError(RuntimeError):
    """Delivery failed. The outbox retries with backoff, unless `permanent`: the receiver
    refused this event itself (a 4xx), and sending it again would only block the ones behind it."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class Sink(Protocol):
    name: str

    async def send(self, event: dict[str, Any]) -> None: ...

    async def close(self) -> None: ...
