"""CPU per event on the Kubernetes backend: `serve`'s own CPU time (its process only; the fake
API server, the sender and the report receiver run in other processes) from the events' receipt
to their finished reports delivered, over N events at a rate it sustains. Beside it, in the same
run: the bare parser's CPU per event under the same sender (the floor of receiving an event);
the same service with SPEEDUPS=off (the standard library's event loop and JSON), which shows
what the `speedups` extra gains; and the HTTP floor (bench/httpfloor.py): one receipt and the
four requests an event makes, with nothing else done."""

from __future__ import annotations

import json
import statistics
from typing import Any

from bench import httpfloor
from bench import run as runner
from bench.common import cpu_seconds, free_port, python, spawn, stop, wait_http
from bench.serving import ONE_TASK, cpu_per_event, send, serving, wait_finished

GOAL_MS = 0.6
# Job create, log read, started and finished reports (the pod comes from the pod watch; listing
# it was a fifth request before 2026-12-03).
REQUESTS_PER_EVENT = 4


def bare_cpu_per_event(rate: float, count: int) -> float:
    port = free_port()
    bare = spawn([python(), "-m", "bench.bare_server", str(port)], core=0)
    try:
        wait_http(f"http://127.0.0.1:{port}/readyz")
        before = cpu_seconds(bare.pid)
        send(f"http://127.0.0.1:{port}/", rate, count)
        return (cpu_seconds(bare.pid) - before) / count * 1000
    finally:
        stop(bare)


def measure(
    count: int, rate: float, rounds: int, warmup: int, env: dict[str, str]
) -> tuple[list[float], int]:
    rounds_ms = []
    with serving(ONE_TASK, kubernetes=True, env=env) as serve:
        send(serve.url, rate, warmup)  # imports, connections, the watch: not per-event costs
        wait_finished(serve, warmup)
        for _ in range(rounds):
            rounds_ms.append(round(cpu_per_event(serve, rate, count, finished=True), 3))
        delivered = serve.finished()
    return rounds_ms, warmup + rounds * count - delivered


def run(count: int = 3000, rate: float = 300, rounds: int = 3, warmup: int = 200) -> dict[str, Any]:
    rounds_ms, missing = measure(count, rate, rounds, warmup, {})
    plain_ms, plain_missing = measure(count, rate, rounds, warmup, {"SPEEDUPS": "off"})
    ms, plain = statistics.median(rounds_ms), statistics.median(plain_ms)
    bare = round(bare_cpu_per_event(rate, count), 3)
    client = httpfloor.client_ms_per_request(min(count * 2, 6000))
    floor = round(bare + REQUESTS_PER_EVENT * client, 3)
    return {
        "events_per_round": count,
        "rate": rate,
        "finished_missing": missing + plain_missing,
        "cpu_ms_per_event_rounds": rounds_ms,
        "cpu_ms_per_event": ms,
        "speedups_off_cpu_ms_per_event_rounds": plain_ms,
        "speedups_off_cpu_ms_per_event": plain,
        "bare_parser_cpu_ms_per_event": bare,
        "http_client_cpu_ms_per_request": client,
        "http_floor_cpu_ms_per_event": floor,
        "goals": [
            {
                "name": "cpu per event, kubernetes",
                "figure": f"{ms:.3f} ms (rounds {min(rounds_ms):.3f}-{max(rounds_ms):.3f}; SPEEDUPS=off "
                f"{plain:.3f} ms, {plain / ms:.2f}x; HTTP floor {floor:.3f} ms = bare parser {bare:.3f} + "
                f"{REQUESTS_PER_EVENT} x {client:.3f} per request sent)",
                "goal": f"<= {GOAL_MS} ms of serve's CPU per event, receipt to delivered finished event",
                "met": ms <= GOAL_MS and missing == 0,
            }
        ],
    }


runner.register(
    "kubernetes_cpu",
    (
        lambda: run(),
        lambda: run(count=20, rate=50, rounds=1, warmup=5),
        lambda r: all(g["met"] for g in r["goals"]),
        f"<= {GOAL_MS} ms of serve's CPU per event on the Kubernetes backend",
    ),
)

if __name__ == "__main__":
    print(json.dumps(run(count=1000, rounds=1), indent=2))
