"""Scaling: what one unit of work costs as the load grows to 4x and 16x.

- ingest: serve's CPU per event (receipt, commit, matching against 50 actions) at 1x, 4x and
  16x an event rate, each sent paced for the same few seconds (bench/serving.py);
- tracking: the shared watch's CPU per Job to learn that it ended, with 1x, 4x and 16x as many
  Jobs in flight on the loopback API (bench/tracking.py, its watch variant).

The goal: the cost per unit at 16x within 1.5x of the cost at 1x. The curves are drawn to
bench/results/scaling.png when matplotlib (the `bench` extra) is installed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from bench import run as runner
from bench.ingest import fifty_actions
from bench.serving import cpu_per_event, send, serving
from bench.tracking import variant

GOAL_GROWTH = 1.5
FACTORS = (1, 4, 16)
PNG = Path(__file__).resolve().parent / "results" / "scaling.png"
SMOKE_PNG = PNG.with_name("smoke.scaling.png")  # not kept (.gitignore: bench/results/smoke.*)
# Smaller tracking loads for a busy machine (the figures name them).
BASE_JOBS = int(os.environ.get("BENCH_SCALING_BASE_JOBS", 1000))
WINDOW = float(os.environ.get("BENCH_SCALING_WINDOW", 120))


def ingest_costs(base_rate: float, seconds: float) -> dict[int, float]:
    costs = {}
    with serving(fifty_actions(), kubernetes=False) as serve:
        send(serve.url, base_rate, max(10, round(base_rate)))  # warm: imports, the first commits
        for factor in FACTORS:
            rate = base_rate * factor
            costs[factor] = round(cpu_per_event(serve, rate, round(rate * seconds), finished=False), 4)
    return costs


def tracking_costs(base_jobs: int, window: float) -> tuple[dict[int, float], dict[int, int]]:
    """CPU ms per Job that ended while tracked, and how many were in flight when tracking began."""
    costs, in_flight = {}, {}
    for factor in FACTORS:
        figures = variant("watch", base_jobs * factor, window)
        in_flight[factor] = figures["in_flight_when_tracking_began"]
        costs[factor] = round(figures["cpu_seconds_tracking"] / max(in_flight[factor], 1) * 1000, 4)
    return costs, in_flight


def run(
    base_rate: float = 50,
    seconds: float = 6,
    base_jobs: int = BASE_JOBS,
    window: float = WINDOW,
    png: Path = PNG,
) -> dict[str, Any]:
    ingest = ingest_costs(base_rate, seconds)
    tracking, in_flight = tracking_costs(base_jobs, window)
    growth = {
        "ingest": round(ingest[FACTORS[-1]] / ingest[1], 2),
        "tracking": round(tracking[FACTORS[-1]] / max(tracking[1], 1e-6), 2),
    }
    results: dict[str, Any] = {
        "ingest_events_per_second": {str(f): base_rate * f for f in FACTORS},
        "ingest_cpu_ms_per_event": {str(f): c for f, c in ingest.items()},
        "tracking_jobs_in_flight": {str(f): base_jobs * f for f in FACTORS},
        "tracking_in_flight_when_tracking_began": {str(f): n for f, n in in_flight.items()},
        "tracking_cpu_ms_per_job": {str(f): c for f, c in tracking.items()},
        "growth_16x_to_1x": growth,
        "png": _draw(base_rate, ingest, base_jobs, tracking, png),
    }
    results["goals"] = [
        {
            "name": "scaling",
            "figure": f"at 16x the cost per unit is {growth['ingest']}x (ingest, ms/event "
            f"{' / '.join(str(c) for c in ingest.values())}) and {growth['tracking']}x (tracking, ms/Job "
            f"{' / '.join(str(c) for c in tracking.values())}) of 1x",
            "goal": f"cost per unit at 16x within {GOAL_GROWTH}x of 1x",
            "met": max(growth.values()) <= GOAL_GROWTH,
        }
    ]
    return results


def _draw(
    base_rate: float, ingest: dict[int, float], base_jobs: int, tracking: dict[int, float], png: Path
) -> str:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "not drawn: matplotlib is missing (pip install -e '.[bench]')"
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for axes, base, costs, unit, title in (
        (left, base_rate, ingest, "events/s", "ingest: serve's CPU per event"),
        (right, base_jobs, tracking, "Jobs in flight", "tracking: CPU per Job (shared watch)"),
    ):
        loads = [base * f for f in costs]
        axes.plot(loads, list(costs.values()), marker="o")
        axes.axhline(
            costs[1] * GOAL_GROWTH, linestyle="--", color="grey", label=f"{GOAL_GROWTH}x the cost at 1x"
        )
        axes.set_xscale("log")
        axes.minorticks_off()
        axes.set_xticks(loads, [f"{load:g}" for load in loads])
        axes.set_ylim(bottom=0)
        axes.set_xlabel(unit)
        axes.set_ylabel("CPU ms per unit")
        axes.set_title(title)
        axes.legend()
    figure.tight_layout()
    png.parent.mkdir(exist_ok=True)
    figure.savefig(png, dpi=100)
    plt.close(figure)
    return str(png.relative_to(png.parent.parent.parent))


runner.register(
    "scaling",
    (
        lambda: run(),
        lambda: run(base_rate=10, seconds=1, base_jobs=5, window=1, png=SMOKE_PNG),
        lambda r: all(g["met"] for g in r["goals"]),
        f"cost per unit at 16x within {GOAL_GROWTH}x of 1x (ingest per event, tracking per Job)",
    ),
)

if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
