"""Load generator (its own process, on its own core): N concurrent senders with keep-alive
POST binary-mode CloudEvents for a fixed time, or at a fixed rate. Prints a JSON summary."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid

import aiohttp


def headers(event_type: str) -> dict[str, str]:
    return {
        "ce-specversion": "1.0",
        "ce-id": str(uuid.uuid4()),
        "ce-source": "bench",
        "ce-type": event_type,
        "ce-shkeptncontext": "bench",
        "Content-Type": "application/json",
    }


BODY = json.dumps(
    {
        "project": "bench",
        "stage": "dev",
        "service": "svc",
        "labels": {"run": "1"},
        "test": {"teststrategy": "none"},
    }
).encode()


async def flood(url: str, event_type: str, senders: int, seconds: float) -> dict[str, float]:
    counts: dict[int, int] = {}
    deadline = time.monotonic() + seconds
    connector = aiohttp.TCPConnector(limit=senders)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def sender() -> None:
            while time.monotonic() < deadline:
                async with session.post(url, data=BODY, headers=headers(event_type)) as response:
                    await response.read()
                    counts[response.status] = counts.get(response.status, 0) + 1

        began = time.monotonic()
        await asyncio.gather(*(sender() for _ in range(senders)))
        elapsed = time.monotonic() - began
    return {
        "seconds": elapsed,
        **{str(k): v for k, v in counts.items()},
        "per_second": counts.get(202, 0) / elapsed,
    }


async def paced(url: str, event_type: str, rate: float, count: int) -> dict[str, object]:
    """`count` events at `rate` per second; reports when each was sent (wall clock) by id."""
    sent: dict[str, float] = {}
    statuses: dict[int, int] = {}
    async with aiohttp.ClientSession() as session:

        async def one(h: dict[str, str]) -> None:
            sent[h["ce-id"]] = time.time()
            async with session.post(url, data=BODY, headers=h) as response:
                await response.read()
                statuses[response.status] = statuses.get(response.status, 0) + 1

        began = time.monotonic()
        tasks = []
        for i in range(count):
            delay = began + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(headers(event_type))))
        await asyncio.gather(*tasks)
    return {"sent": sent, "statuses": {str(k): v for k, v in statuses.items()}}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--type", default="sh.keptn.event.bench.triggered")
    parser.add_argument("--senders", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--rate", type=float, default=0)
    parser.add_argument("--count", type=int, default=0)
    args = parser.parse_args()
    if args.rate:
        result = asyncio.run(paced(args.url, args.type, args.rate, args.count))
    else:
        result = asyncio.run(flood(args.url, args.type, args.senders, args.seconds))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
