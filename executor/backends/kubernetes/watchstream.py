"""The lines of a Kubernetes watch response, whatever chunks they arrive in, read at a pace.

Kept apart from its readers, the Job tracker (tracker.py) and the pod watch (podwatch.py), which
decide what the events mean, as kopf keeps its watch stream apart from the queues that consume it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any, Protocol

import aiohttp

from executor.backends.kubernetes.api import ApiError, status_error
from executor.support import fastjson

# The API server writes a watch event as {"type":"...","object":{...}}, type first: a line with
# one of these prefixes is an added or modified object, which a reader may pass over as bytes
# when nothing else in the line marks it as needed (deletions, bookmarks and errors never are).
PROGRESS_PREFIXES = (b'{"type":"MODIFIED"', b'{"type":"ADDED"')
MAX_EVENT_BYTES = 16 * 2**20  # one watch event (an object is at most about 1.5 MiB)
# A chunk this large says the stream is arriving faster than it is read: resting then would cap
# the watch at about one read per rest (with a 0.1 s rest, fewer Job events a second than 200
# events/s make), and endings would queue in the socket for ever longer (tasks seconds late at
# 200 events/s in bench/latency.py). Below it, the stream is bursty and a rest gathers the burst.
BUSY_CHUNK = 64 * 1024


class Chunks(Protocol):
    async def readany(self) -> bytes: ...
    def at_eof(self) -> bool: ...


class Reading(Protocol):
    """The connection's transport (asyncio's, or uvloop's)."""

    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...
    def is_reading(self) -> bool: ...
    def is_closing(self) -> bool: ...


class Pacer:
    """Leaves a connection unread for a moment: what arrives meanwhile waits in the socket and
    is then received in one read, instead of one wake-up per event. Without a connection that
    can pause (or with no moment), it does nothing; after a chunk of BUSY_CHUNK or more it does
    not rest either, since the stream is already arriving faster than it is read.

    It pauses the transport, not aiohttp's protocol: since aiohttp 3.14 the protocol's
    pause_reading also pauses its HTTP parser, which asserts that a response is still arriving.
    A watch's last lines come with the end of its response, so resting after them failed at the
    end of every watch (counted as an error, retried after a growing backoff)."""

    def __init__(self, reading: Reading | None, seconds: float) -> None:
        able = all(
            callable(getattr(reading, name, None))
            for name in ("pause_reading", "resume_reading", "is_reading", "is_closing")
        )
        self.reading = reading if able and seconds > 0 else None
        self.seconds = seconds

    async def rest(self, received: int = 0) -> None:
        """After a chunk of `received` bytes."""
        reading = self.reading
        if reading is None or received >= BUSY_CHUNK or reading.is_closing() or not reading.is_reading():
            return  # a connection closing, or held by aiohttp's own flow control, is left alone
        reading.pause_reading()
        try:
            await asyncio.sleep(self.seconds)
        finally:
            if not reading.is_closing():
                reading.resume_reading()


async def watch_lines(content: Chunks, pacer: Pacer | None = None) -> AsyncGenerator[bytes, None]:
    """The non-blank lines of a watch stream, whatever chunks they arrive in: each chunk is
    split at once (one step per chunk received, not one per line awaited). With a pacer, the
    connection rests once a chunk's lines are handled, so the first event after a quiet spell
    is read at once and those right behind it together (under a stream that fills each read, it
    does not rest: see BUSY_CHUNK)."""
    partial: list[bytes] = []
    size = 0
    while chunk := await content.readany():
        *lines, rest = chunk.split(b"\n")
        if lines:
            lines[0] = b"".join((*partial, lines[0]))
            partial, size = [], 0
            for line in lines:
                if line.strip():
                    yield line
            if pacer is not None and not content.at_eof():  # nothing more will come to wait for
                await pacer.rest(len(chunk))
        if rest:
            partial.append(rest)
            size += len(rest)
            if size > MAX_EVENT_BYTES:
                raise ApiError(f"a watch event larger than {MAX_EVENT_BYTES} bytes")
    last = b"".join(partial)
    if last.strip():
        yield last


@contextlib.asynccontextmanager
async def watching(
    list_call: Callable[..., Any],
    namespace: str,
    selector: str,
    resource_version: str,
    server_seconds: int,
    coalesce: float,
) -> AsyncIterator[AsyncGenerator[bytes, None]]:
    """The lines of one watch request (`list_call`: a generated client's list_namespaced_*),
    ended by the server after `server_seconds` (its timeoutSeconds) and read at the pace of a
    Pacer of `coalesce` seconds; an answer other than 2xx raises ApiError.

    The stream is read here rather than through kubernetes_asyncio's Watch, which decodes each
    event's JSON, encodes its object again and decodes that once more (three passes per event,
    and an ApiClient per watch): the caller parses each line once, into plain dicts."""
    response: Any = await list_call(
        namespace,
        label_selector=selector,
        resource_version=resource_version,
        allow_watch_bookmarks=True,
        timeout_seconds=server_seconds,
        watch=True,
        _preload_content=False,
        # One deadline for the whole watch (the server ends it after `server_seconds`), rather
        # than a read timeout that aiohttp would re-arm on every chunk received.
        _request_timeout=aiohttp.ClientTimeout(total=server_seconds + 30, connect=10, sock_connect=10),
    )
    try:
        status = int(response.status)
        if not 200 <= status < 300:
            raise status_error(status, await response.read(), str(response.reason or ""))
        pacer = Pacer(getattr(response.connection, "transport", None), coalesce)
        async with contextlib.aclosing(watch_lines(response.content, pacer)) as lines:
            yield lines
    finally:
        response.release()


def watch_event(line: bytes) -> tuple[str, dict[str, Any]]:
    """One line of a watch stream, {"type": ..., "object": ...}: its type and object. An ERROR
    event (410 Expired among them) or a line that is not an event raises ApiError."""
    try:
        event = fastjson.loads(line)
    except ValueError:
        raise ApiError(f"unreadable watch event: {line[:200]!r}") from None
    kind = event.get("type") if isinstance(event, dict) else None
    obj = event.get("object") if isinstance(event, dict) else None
    if kind == "ERROR" or not isinstance(obj, dict):
        status = obj if kind == "ERROR" and isinstance(obj, dict) else event
        code = int(status.get("code") or 0) if isinstance(status, dict) else 0
        raise status_error(code or 500, json.dumps(status))
    return str(kind), obj
