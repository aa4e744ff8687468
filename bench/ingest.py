"""Ingest: events/s that `job-executor serve` accepts over HTTP (binary mode, keep-alive, 64
senders) with a 50-action config, every 202 sent once the event is committed to SQLite, against
a bare aiohttp handler that only parses the event. Rounds alternate the two; the figure is the
median of the rounds' ratios."""

from __future__ import annotations

import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import ROOT, cores, cpu_seconds, free_port, python, spawn, stop, wait_http
from executor.config.parse import parse_config
from executor.matcher import matching_actions
from executor.model.events import event_from_mapping


def fifty_actions() -> str:
    """50 actions mixing exact names, wildcards at each position and jsonpath filters; the
    benchmark's events are evaluated against all of them and match none (no task runs)."""
    lines = ["apiVersion: v2", "actions:"]
    for i in range(50):
        kind = i % 5
        name = [
            f"sh.keptn.event.task{i}.triggered",
            f"sh.keptn.event.*.started{i}",
            f"*.task{i}.triggered",
            f"sh.keptn.*.task{i}.*",
            "sh.keptn.event.bench.triggered",
        ][kind]
        lines += [f"  - name: action-{i}", "    events:", f"      - name: '{name}'"]
        if kind == 4:
            lines += [
                "        jsonpath:",
                f"          property: '$.data.test.strategy{i}'",
                "          match: 'never'",
            ]
        lines += ["    tasks:", f"      - {{name: t{i}, image: 'alpine:3.20', cmd: ['true']}}"]
    return "\n".join(lines) + "\n"


def matching_cost(samples: int = 20000) -> float:
    """Microseconds to match one event against the 50 actions, in this process."""
    config = parse_config(fifty_actions(), "bench")
    event = event_from_mapping(
        {
            "specversion": "1.0",
            "id": "1",
            "source": "bench",
            "type": "sh.keptn.event.bench.triggered",
            "data": {"project": "bench", "stage": "dev", "service": "svc", "test": {"teststrategy": "x"}},
        }
    )
    began = time.perf_counter()
    for _ in range(samples):
        assert not matching_actions(config, event)
    return (time.perf_counter() - began) / samples * 1e6


WRK = shutil.which("wrk")
SENDERS = 64


def load(url: str, seconds: float, core: int | None) -> dict[str, Any]:
    """wrk (C, one core) when installed: a Python client tops out near 2,000 requests/s and would
    measure itself. Without it the aiohttp load generator is used and the result says so."""
    if WRK:
        argv = [
            WRK,
            "-t1",
            f"-c{SENDERS}",
            f"-d{max(1, round(seconds))}s",
            "-s",
            str(ROOT / "bench" / "cloudevent.lua"),
            url,
        ]
        proc = spawn(argv, core=core, stdout=-1)
        out, _ = proc.communicate(timeout=seconds + 60)
        summary = json.loads(out.decode().strip().splitlines()[-1])
        ok = summary["requests"] - summary["errors_status"]
        return {"client": "wrk", **summary, "per_second": ok / summary["seconds"]}
    proc = spawn(
        [python(), "-m", "bench.loadgen", url, "--seconds", str(seconds), "--senders", str(SENDERS)],
        core=core,
        stdout=-1,
    )
    out, _ = proc.communicate(timeout=seconds + 60)
    return {"client": "aiohttp (client-bound)", **json.loads(out)}


GOAL_RATIO = 0.6


def _measure(argv: list[str], port: int, seconds: float, env: dict[str, str] | None = None) -> dict[str, Any]:
    """A server under load on `port`: its figures, and its CPU milliseconds per accepted event."""
    server_core, client_core = (cores() + cores())[:2]
    proc = spawn(argv, core=server_core, env=env)
    try:
        wait_http(f"http://127.0.0.1:{port}/readyz")
        before = cpu_seconds(proc.pid)
        figures = load(f"http://127.0.0.1:{port}/", seconds, client_core)
        accepted = figures["per_second"] * figures["seconds"]
        figures["cpu_ms_per_event"] = round((cpu_seconds(proc.pid) - before) / max(accepted, 1) * 1000, 3)
        return figures
    finally:
        stop(proc)


def run(seconds: float = 10.0, rounds: int = 3) -> dict[str, Any]:
    results: dict[str, Any] = {"matching_us_per_event": round(matching_cost(), 2), "rounds": []}
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "resources" / "bench" / "dev" / "svc" / "job"
        tree.mkdir(parents=True)
        (tree / "config.yaml").write_text(fifty_actions())
        for i in range(rounds):
            port = free_port()
            env = {
                "RCV_PORT": str(port),
                "CONFIG_DIR": str(Path(tmp) / "resources"),
                "STATE_DIR": str(Path(tmp) / f"state-{i}"),  # on disk, as in a deployment
                "QUEUE_SIZE": "1000000",
                "ALLOWED_IMAGE_LIST": "alpine:*",
            }
            serve = _measure(
                [python(), "-m", "executor", "serve", "--log-level", "WARNING"], port, seconds, env
            )
            port = free_port()
            bare = _measure([python(), "-m", "bench.bare_server", str(port)], port, seconds)
            results["rounds"].append(
                {
                    "serve": serve,
                    "bare": bare,
                    "ratio_to_bare": round(serve["per_second"] / bare["per_second"], 3),
                }
            )
    ratios = [r["ratio_to_bare"] for r in results["rounds"]]
    ratio = statistics.median(ratios)
    results["events_per_second"] = round(
        statistics.median(r["serve"]["per_second"] for r in results["rounds"])
    )
    results["bare_events_per_second"] = round(
        statistics.median(r["bare"]["per_second"] for r in results["rounds"])
    )
    results["ratio_to_bare"] = ratio
    results["client"] = results["rounds"][0]["serve"]["client"]
    results["goals"] = [
        {
            "name": "ingest, durable",
            "figure": f"{ratio:.2f} of the bare parser ({results['events_per_second']:,} events/s against "
            f"{results['bare_events_per_second']:,}; rounds {min(ratios):.2f}-{max(ratios):.2f}; "
            f"{results['client']})",
            "goal": f">= {GOAL_RATIO} of the bare parser, every 202 after its event is committed",
            "met": ratio >= GOAL_RATIO,
        }
    ]
    return results


if __name__ == "__main__":
    print(json.dumps(run(5), indent=2))
