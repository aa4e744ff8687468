"""The HTTP floor of an event on the Kubernetes backend: the CPU that aiohttp's client spends on
one request to a loopback server that answers at once, with nothing else done. An event costs
`serve` one request received and four sent (the Job's create, its log read, the started and
finished reports), so 4 x this + the bare parser's receipt is what the protocol alone costs,
whatever the service does around it.

Run as `python -m bench.httpfloor URL COUNT` (core 0, the server elsewhere): prints the client's
CPU milliseconds per request as JSON."""

from __future__ import annotations

import asyncio
import json
import sys
import time

import aiohttp

from bench.common import free_port, python, spawn, stop, wait_http
from executor.support import speedups

CONCURRENCY = 8  # requests in flight, as the backend has several tasks' reads at once


async def _requests(url: str, count: int) -> float:
    async with aiohttp.ClientSession() as session:

        async def one() -> None:
            async with session.get(url) as response:
                await response.read()

        async def worker(share: int) -> None:
            for _ in range(share):
                await one()

        await asyncio.gather(*(worker(50) for _ in range(CONCURRENCY)))  # connections, imports
        began = time.process_time()
        await asyncio.gather(*(worker(count // CONCURRENCY) for _ in range(CONCURRENCY)))
        return (time.process_time() - began) / (count // CONCURRENCY * CONCURRENCY) * 1000


def client_ms_per_request(count: int = 6000) -> float:
    """aiohttp's client CPU per request, on the event loop `serve` runs on (SPEEDUPS=auto)."""
    port = free_port()
    server = spawn([python(), "-m", "bench.bare_server", str(port)], core=1)
    try:
        url = f"http://127.0.0.1:{port}/readyz"
        wait_http(url)
        client = spawn([python(), "-m", "bench.httpfloor", url, str(count)], core=0, stdout=-1)
        out, _ = client.communicate(timeout=300)
        return float(json.loads(out)["client_ms_per_request"])
    finally:
        stop(server)


def main() -> None:
    url, count = sys.argv[1], int(sys.argv[2])
    ms = 0.0

    async def measure() -> None:
        nonlocal ms
        ms = await _requests(url, count)

    speedups.run(measure(), "auto")
    print(json.dumps({"client_ms_per_request": round(ms, 4)}))


if __name__ == "__main__":
    main()
