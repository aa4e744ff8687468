"""Issue 14 item 5: slow clients. Many trickling connections (bounded, loopback) must be cut off by
header and body read timeouts (408 where the protocol allows: RFC 9110 15.5.9) and held under a
connection cap, while /healthz and a real event still go through.

Settings proposed in SPEC.md; small values here: RCV_HEADER_TIMEOUT_SECONDS=1,
RCV_BODY_TIMEOUT_SECONDS=1, RCV_MAX_CONNECTIONS=20.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from tests.receivers.harness import STRUCTURED, Service, keptn_event, start_service

pytestmark = pytest.mark.asyncio(loop_scope="module")

TRICKLERS = 40  # twice the cap


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def service(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Service]:
    env = {"RCV_HEADER_TIMEOUT_SECONDS": "1", "RCV_BODY_TIMEOUT_SECONDS": "1", "RCV_MAX_CONNECTIONS": "20"}
    svc, collector = await start_service(tmp_path_factory.mktemp("slow"), env)
    yield svc
    svc.stop()
    await collector.stop()
    assert "Traceback" not in svc.log_text()


async def read_answer(reader: asyncio.StreamReader, limit: float) -> bytes:
    """What the server said before closing (b"" if it closed silently); bounded by `limit` seconds."""
    return await asyncio.wait_for(reader.read(4096), timeout=limit)


async def trickle_headers(service: Service) -> tuple[float, bytes]:
    """Sends one header line every 0.3 s, for at most 6 s; returns when the server cuts it off."""
    started = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", service.port)
    try:
        writer.write(b"POST / HTTP/1.1\r\nHost: x\r\n")
        for i in range(20):
            if reader.at_eof():
                break
            writer.write(f"X-Slow-{i}: 1\r\n".encode())
            try:
                await writer.drain()
            except ConnectionError:
                break
            try:
                answer = await asyncio.wait_for(reader.read(4096), timeout=0.3)
            except TimeoutError:
                continue
            return time.monotonic() - started, answer
        return time.monotonic() - started, await read_answer(reader, 1)
    except ConnectionError:
        return time.monotonic() - started, b""
    finally:
        writer.close()


async def test_trickling_headers_are_cut_off(service: Service) -> None:
    elapsed, answer = await trickle_headers(service)
    assert elapsed < 4, f"a connection trickling headers was kept {elapsed:.1f}s"
    assert answer == b"" or answer.startswith(b"HTTP/1.1 408"), answer[:80]


async def test_trickling_body_gets_408(service: Service) -> None:
    body = json.dumps(keptn_event()).encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", service.port)
    started = time.monotonic()
    try:
        writer.write(
            f"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: {STRUCTURED}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        )
        answer = b""
        for byte in body[:20]:  # a byte every 0.3 s: 6 s at most
            writer.write(bytes([byte]))
            with contextlib.suppress(ConnectionError):
                await writer.drain()
            try:
                answer = await asyncio.wait_for(reader.read(4096), timeout=0.3)
                break
            except TimeoutError:
                continue
        assert time.monotonic() - started < 4, "a body sent a byte at a time was never cut off"
        assert answer.startswith(b"HTTP/1.1 408"), answer[:80]
    finally:
        writer.close()


async def test_service_stays_usable_under_many_trickling_connections(service: Service) -> None:
    tricklers = [asyncio.create_task(trickle_headers(service)) for _ in range(TRICKLERS)]
    try:
        await asyncio.sleep(0.2)  # let them connect; what follows waits on positive answers only
        status, _, text = await service.request("GET", "/healthz")
        assert status == 200, text
        event = keptn_event()
        status, text = await service.post(json.dumps(event).encode(), {"Content-Type": STRUCTURED})
        assert status == 202, text
        await service.wait_run(event["id"])
    finally:
        results = await asyncio.gather(*tricklers)
    assert max(elapsed for elapsed, _ in results) < 6
