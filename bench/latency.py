"""Latency: from an event's arrival (the sender's clock) to its Job's create request reaching a
loopback Kubernetes API (the API's clock; same machine), at 200 events/s, in two rounds."""

from __future__ import annotations

import json
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench import run as runner
from bench.common import free_port, percentile, python, spawn, stop, wait_http
from executor.backends.naming import event_id_part

CONFIG = """\
apiVersion: v2
actions:
  - name: "Bench"
    events: [{name: "sh.keptn.event.bench.triggered"}]
    tasks: [{name: "t", image: "alpine:3.20", cmd: ["true"]}]
"""


def _arrivals(api: str) -> dict[str, float]:
    with urllib.request.urlopen(api + "/_fake/job_arrivals", timeout=10) as response:
        return dict(json.loads(response.read()))


def measure(rates: list[tuple[int, int]]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "resources" / "bench" / "dev" / "svc" / "job").mkdir(parents=True)
        (root / "resources" / "bench" / "dev" / "svc" / "job" / "config.yaml").write_text(CONFIG)
        api_port, port = free_port(), free_port()
        api = f"http://127.0.0.1:{api_port}"
        # The fake API server is the measuring instrument here and shares a core with the load
        # generator: its schema validation (about 1 ms per created Job or pod) would saturate
        # that core near 1,000 events/s and the figures would be its queueing, not the
        # service's. Every rendered manifest is validated by the tests instead.
        fake = spawn(
            [
                python(),
                "-m",
                "tests.kubeapi.server",
                "--port",
                str(api_port),
                "--validation",
                "off",
                "--auto-complete-delay",
                "0.05",
                "--kubeconfig",
                str(root / "kubeconfig"),
            ],
            core=1,
        )
        serve = None
        try:
            wait_http(api + "/version")
            env = {
                "BACKEND": "kubernetes",
                "KUBECONFIG": str(root / "kubeconfig"),
                "JOB_NAMESPACE": "bench",
                "RCV_PORT": str(port),
                "CONFIG_DIR": str(root / "resources"),
                "STATE_DIR": str(root / "state"),
                "QUEUE_SIZE": "100000",
                "MAX_CONCURRENT_RUNS": "512",
                "ALLOWED_IMAGE_LIST": "alpine:*",
            }
            serve = spawn([python(), "-m", "executor", "serve", "--log-level", "WARNING"], core=0, env=env)
            wait_http(f"http://127.0.0.1:{port}/readyz")
            for rate, count in rates:
                before = set(_arrivals(api))
                sender = spawn(
                    [
                        python(),
                        "-m",
                        "bench.loadgen",
                        f"http://127.0.0.1:{port}/",
                        "--rate",
                        str(rate),
                        "--count",
                        str(count),
                    ],
                    core=1,
                    stdout=-1,
                )
                out, _ = sender.communicate(timeout=count / rate + 120)
                sent = json.loads(out)["sent"]
                deadline = time.monotonic() + 60
                while True:
                    arrivals = {k: v for k, v in _arrivals(api).items() if k not in before}
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
        finally:
            if serve is not None:
                stop(serve)
            stop(fake)
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
