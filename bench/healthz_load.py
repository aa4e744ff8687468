"""Healthz under load: /healthz latency of `job-executor serve` while it handles the worst inputs
it accepts, against the same probe while it is idle.

The load, one request every SEND_INTERVAL: a structured event of MAX_BODY_BYTES (1 MiB of small
objects, what costs JSON the most per byte), then a batch of the same size made of 500 events
(which match no action), and so on; before it, the same at 64 KiB, Keptn's bound for its
events. For the single event, an action whose jsonpath filter and env read the event and whose
local task writes the largest result file accepted (64 KiB, nested 64 levels deep), so its
report is parsed, merged and sent; and a second action that takes the whole event as a JSON
env value (refused by the local backend when over 128 KiB). The probe asks /healthz every 20 ms
on a connection of its own; each figure is one answer's round trip.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench.common import cores, free_port, percentile, python, spawn, stop, wait_http
from executor.results import MAX_RESULT_BYTES, MAX_RESULT_DEPTH

PROBE_INTERVAL = 0.02
# The load's pace: a worst-case request every second, which the service keeps up with on
# one core (sent back to back, they would measure queueing behind a saturated core instead of
# how long one input holds the loop).
SEND_INTERVAL = 1.0
BODY_BYTES = 1024 * 1024  # MAX_BODY_BYTES' default
KEPTN_EVENT_BYTES = 64 * 1024  # the most Keptn's api-service takes: its events' own bound
MEMBER_BYTES = 2048  # a batch's events: 500 of them fill MAX_BODY_BYTES

CONFIG = """\
apiVersion: v2
actions:
  - name: "Heavy"
    events:
      - name: "sh.keptn.event.load.triggered"
        jsonpath:
          property: "$.data.items[0].k"
          match: "0"
    tasks:
      - name: "result"
        image: "alpine:3.20"
        cmd: ["sh", "-c", "cat {result} > \\"$JOB_RESULT_FILE\\"; echo \\"$FIRST\\""]
        env:
          - name: FIRST
            value: "$.data.items[1]"
            valueFrom: event
  - name: "Whole event"
    events:
      - name: "sh.keptn.event.load.triggered"
    tasks:
      - name: "refused"
        image: "alpine:3.20"
        cmd: ["true"]
        env:
          - name: EVENT
            value: "$"
            valueFrom: event
            as: json
"""


def _worst_result() -> bytes:
    """A merge patch of MAX_RESULT_BYTES, nested MAX_RESULT_DEPTH levels deep."""
    depth = MAX_RESULT_DEPTH - 1
    head, tail = b'{"load": ' + b"[" * depth, b"]" * depth + b"}"
    pad = MAX_RESULT_BYTES - len(head) - len(tail) - len(b', "pad": ""')
    return head + tail[:-1] + b', "pad": "' + b"x" * pad + b'"}'


def _data(size: int) -> dict[str, Any]:
    """Event data of about `size` bytes (at most), most of it small objects."""
    data: dict[str, Any] = {"project": "load", "stage": "dev", "service": "svc", "items": []}
    data["items"] = [{"k": i, "v": "a"} for i in range(size // 20)]
    while len(json.dumps(data)) > size:
        del data["items"][-max(1, (len(json.dumps(data)) - size) // 20) :]
    return data


def _event(
    event_id: str, data: dict[str, Any], event_type: str = "sh.keptn.event.load.triggered"
) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": "bench",
        "type": event_type,
        "shkeptncontext": "ctx",
        "datacontenttype": "application/json",
        "data": data,
    }


class _Bodies:
    """Prebuilt request bodies; each send gets new event ids by a byte replace, so the bench
    spends no time building JSON."""

    def __init__(self, size: int) -> None:
        margin = 4096  # envelope and id room under the limit
        count = max(2, min(999, size // MEMBER_BYTES))
        self.single = json.dumps(_event("ID-000000000", _data(size - margin))).encode()
        member = _data((size - margin) // count - 300)
        # The batch's members match no action: its cost is the receiver's and the dispatcher's.
        batch = [_event(f"ID-{i:03d}-00000", member, "sh.keptn.event.other.triggered") for i in range(count)]
        self.batch = json.dumps(batch).encode()
        assert len(self.single) <= size and len(self.batch) <= size, (len(self.single), len(self.batch))
        self.sent = 0

    def next(self) -> tuple[bytes, str]:
        self.sent += 1
        tag = f"{self.sent:05d}".encode()
        if self.sent % 2:
            return self.single.replace(b"ID-000000000", b"ID-0000" + tag), "application/cloudevents+json"
        return self.batch.replace(b"-00000", b"-" + tag), "application/cloudevents-batch+json"


async def _probe(url: str, until: float) -> list[float]:
    latencies: list[float] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as session:
        while time.monotonic() < until:
            began = time.perf_counter()
            async with session.get(url) as response:
                await response.read()
            latencies.append((time.perf_counter() - began) * 1000)
            await asyncio.sleep(PROBE_INTERVAL)
    return latencies


async def _load(url: str, bodies: _Bodies, until: float, answers: dict[int, int]) -> None:
    """One request every SEND_INTERVAL (or as soon as the last one is answered, if later)."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as session:
        while time.monotonic() < until:
            began = time.monotonic()
            body, content_type = bodies.next()
            async with session.post(url, data=body, headers={"Content-Type": content_type}) as response:
                await response.read()
                answers[response.status] = answers.get(response.status, 0) + 1
            await asyncio.sleep(max(0.0, SEND_INTERVAL - (time.monotonic() - began)))


def _figures(latencies: list[float]) -> dict[str, float]:
    return {
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
        "max_ms": max(latencies) if latencies else float("nan"),
        "probes": float(len(latencies)),
    }


def run(seconds: float = 20.0, idle_seconds: float = 3.0) -> dict[str, Any]:
    """The idle baseline, then the load at Keptn's event bound (64 KiB), then at the receiver's
    (MAX_BODY_BYTES), on one `serve`; the goal is judged on the latter."""
    work = Path(tempfile.mkdtemp(prefix="bench-healthz-"))
    result = work / "result.json"
    result.write_bytes(_worst_result())
    folder = work / "resources" / "load" / "job"
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(CONFIG.format(result=result))
    port, sink_port = free_port(), free_port()
    server_core = cores()[0]
    env = {
        "RCV_HOST": "127.0.0.1",
        "RCV_PORT": str(port),
        "STATE_DIR": str(work / "state"),
        "CONFIG_DIR": str(work / "resources"),
        "K_SINK": f"http://127.0.0.1:{sink_port}/",  # nobody listens: reports wait in the outbox
        "LOCAL_RUN_AS_USER": "",
        "LOG_LEVEL": "warning",
        "QUEUE_SIZE": "2000",
    }
    healthz, events = f"http://127.0.0.1:{port}/healthz", f"http://127.0.0.1:{port}/"
    figures: dict[str, Any] = {}
    answers: dict[int, int] = {}

    async def loaded(bodies: _Bodies) -> list[float]:
        until = time.monotonic() + seconds
        probe = asyncio.create_task(_probe(healthz, until))
        await _load(events, bodies, until, answers)
        return await probe

    proc = spawn([python(), "-m", "executor", "serve"], core=server_core, env=env)
    try:
        wait_http(healthz)
        figures["idle"] = _figures(asyncio.run(_probe(healthz, time.monotonic() + idle_seconds)))
        for name, size in (("keptn_64kib", KEPTN_EVENT_BYTES), ("max_body_1mib", BODY_BYTES)):
            bodies = _Bodies(size)
            figures[name] = {**_figures(asyncio.run(loaded(bodies))), "requests": float(bodies.sent)}
    finally:
        stop(proc)
        shutil.rmtree(work, ignore_errors=True)
    figures["answers"] = {str(k): float(v) for k, v in sorted(answers.items())}
    return figures


if __name__ == "__main__":
    print(json.dumps(run(seconds=10), indent=2))
