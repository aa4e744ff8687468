"""One NATS connection shared by the NATS source and sink, reconnecting forever.

nats-py buffers publishes while it reconnects and re-creates subscriptions after, so a
server restart is a pause, not a loss: JetStream redelivers what was not acknowledged.
"""

from __future__ import annotations

import asyncio
import logging

import nats
import nats.errors
from nats.aio.client import Client

from executor.support.urls import without_userinfo

log = logging.getLogger(__name__)


CONNECT_SECONDS = 30.0


async def connect(url: str, name: str = "job-executor") -> Client:
    """Connected, or an OSError after CONNECT_SECONDS: a server unreachable at start is a start
    failure to report, not a reason to hang; once connected, reconnection never stops."""
    where = without_userinfo(url)

    async def disconnected() -> None:
        log.warning("NATS: disconnected from %s; reconnecting", where)

    async def reconnected() -> None:
        log.info("NATS: reconnected to %s", where)

    async def error(exc: Exception) -> None:
        log.warning("NATS: %s", exc)

    connecting = nats.connect(
        servers=[u.strip() for u in url.split(",") if u.strip()],
        name=name,
        max_reconnect_attempts=-1,
        reconnect_time_wait=1,
        connect_timeout=5,
        disconnected_cb=disconnected,
        reconnected_cb=reconnected,
        error_cb=error,
    )
    try:
        client: Client = await asyncio.wait_for(connecting, timeout=CONNECT_SECONDS)
    except (TimeoutError, nats.errors.NoServersError) as exc:
        raise OSError(
            f"NATS at {where} did not answer within {CONNECT_SECONDS:.0f} s ({exc.__class__.__name__})"
        ) from None
    return client
