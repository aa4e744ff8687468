"""One NATS connection shared by the NATS source and sink, reconnecting forever.

nats-py buffers publishes while it reconnects and re-creates subscriptions after, so a
server restart is a pause, not a loss: JetStream redelivers what was not acknowledged.
"""

from __future__ import annotations

import logging

import nats
from nats.aio.client import Client

log = logging.getLogger(__name__)


async def connect(url: str, name: str = "job-executor") -> Client:
    async def disconnected() -> None:
        log.warning("NATS: disconnected from %s; reconnecting", url)

    async def reconnected() -> None:
        log.info("NATS: reconnected to %s", url)

    async def error(exc: Exception) -> None:
        log.warning("NATS: %s", exc)

    client: Client = await nats.connect(
        servers=[u.strip() for u in url.split(",") if u.strip()],
        name=name,
        max_reconnect_attempts=-1,
        reconnect_time_wait=1,
        connect_timeout=5,
        disconnected_cb=disconnected,
        reconnected_cb=reconnected,
        error_cb=error,
    )
    return client
