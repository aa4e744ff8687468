from __future__ import annotations

from typing import Any, Protocol


class SinkError(RuntimeError):
    """Delivery failed; the outbox retries with backoff."""


class Sink(Protocol):
    name: str

    async def send(self, event: dict[str, Any]) -> None: ...

    async def close(self) -> None: ...
