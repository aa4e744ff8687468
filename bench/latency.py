"""Latency: from an event's arrival (the sender's clock) to its Job's create request reaching a
loopback Kubernetes API (the API's clock; same machine), at 200 events/s, in two rounds after 200
warm-up events, with `serve` started as every benchmark starts it (bench/serving.py: its
reports go to a receiver)."""

from __future__ import annotations

import json
import time
import urllib.request
from typing import Any

from bench import run as runner
from bench.common import percentile
from bench.serving import ONE_TASK, send, serving
from executor.backends.naming import event_id_part

WARMUP = 200  # events sent before the measured rounds


def _arrivals(api: str) -> dict[str, float]:
    with urllib.request.urlopen(api + "/_fake/job_arrivals", timeout=10) as response:
        return dict(json.loads(response.read()))


def measure(rates: list[tuple[int, int]]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    # The fake API server is the measuring instrument here and shares a core with the load
    # generator: its schema validation (about 1 ms per created Job or pod) would saturate that
    # core near 1,000 events/s and the figures would be its queueing, not the service's. Every
    # rendered manifest is validated by the tests instead (bench/serving.py starts it so).
    # Reports go to a receiver, as in production: their delivery shares the loop with intake.
    with serving(ONE_TASK, kubernetes=True) as serve:
        # Warm-up, not measured: the first Job starts the namespace's watch and the first
        # requests open the connections, once per process (as in bench/kubecpu.py).
        warmup = min(WARMUP, rates[0][1]) if rates else 0
        before = set(_arrivals(serve.api))
        send(serve.url, rates[0][0] if rates else 1, warmup)
        deadline = time.monotonic() + 30
        while len(set(_arrivals(serve.api)) - before) < warmup and time.monotonic() < deadline:
            time.sleep(0.2)
        for rate, count in rates:
            before = set(_arrivals(serve.api))
            sent = send(serve.url, rate, count)
            deadline = time.monotonic() + 60
            while True:
                arrivals = {k: v for k, v in _arrivals(serve.api).items() if k not in before}
                if len(arrivals) >= count or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            by_prefix = {
                name.split("/")[1].removeprefix("job-executor-service-job-")[:24]: at
                for name, at in arrivals.items()
            }
            # A Job name carries a hash of the event's (source, id) (executor.backends.naming).
            named = {event_id_part(i, "bench"): at for i, at in sent.items()}
            latencies = [(by_prefix[part] - at) * 1000 for part, at in named.items() if part in by_prefix]
            results.setdefault(f"{rate}_per_second", []).append(
                {
                    "events": count,
                    "jobs_created": len(latencies),
                    "p50_ms": round(percentile(latencies, 50), 2),
                    "p99_ms": round(percentile(latencies, 99), 2),
                    "max_ms": round(max(latencies), 2) if latencies else None,
                }
            )
    return results


GOAL_MS = 10.0


def run(rate: int = 200, count: int = 2000, rounds: int = 2) -> dict[str, Any]:
    """The goal's p99 is the worst round's."""
    results = measure([(rate, count)] * rounds)
    measured = results[f"{rate}_per_second"]
    p99 = max(r["p99_ms"] for r in measured)
    complete = all(r["jobs_created"] == count for r in measured)
    results["p99_ms"] = p99
    results["goals"] = [
        {
            "name": "latency p99",
            "figure": f"{p99:.1f} ms at {rate} events/s, the worse of {rounds} rounds of {count:,} "
            f"(p50 {', '.join(str(r['p50_ms']) for r in measured)} ms; p99 "
            f"{', '.join(str(r['p99_ms']) for r in measured)} ms)",
            "goal": f"p99 < {GOAL_MS:g} ms at {rate} events/s, event arrival to Job create request",
            "met": p99 < GOAL_MS and complete,
        }
    ]
    return results


runner.register(
    "latency",
    (
        lambda: run(),
        lambda: run(rate=100, count=20, rounds=1),
        lambda r: all(g["met"] for g in r["goals"]),
        f"p99 under {GOAL_MS:g} ms at 200 events/s, event arrival to Job create request",
    ),
)

if __name__ == "__main__":
    print(json.dumps(run(count=1000), indent=2))
