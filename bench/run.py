"""`make bench` / `make bench-smoke`: run every benchmark, write bench/results/<name>.{json,md}.

Every comparison is a ratio measured side by side in the same run, since absolute figures
drift on a shared machine. The smoke variant runs each benchmark for a moment, so the
harness cannot rot; its figures mean nothing and it checks no goal.

The goals are listed apart, as `"goals": [{"name", "figure", "goal", "met"}]`: a benchmark
whose figures hold a "goals" list of such entries reports those; any other reports one entry,
named as the benchmark, from its goal check.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import healthz_load, ingest, local_spawn
from bench.common import cores

RESULTS = Path(__file__).resolve().parent / "results"

# name -> (full run, smoke run, goal check, goal text)
Benchmark = tuple[
    Callable[[], dict[str, Any]], Callable[[], dict[str, Any]], Callable[[dict[str, Any]], bool], str
]

BENCHMARKS: dict[str, Benchmark] = {
    "ingest": (
        lambda: ingest.run(seconds=8, rounds=3),
        lambda: ingest.run(seconds=1, rounds=1),
        lambda r: r["ratio_to_bare"] >= ingest.GOAL_RATIO,
        f">= {ingest.GOAL_RATIO} of the bare parser, every 202 after its event is committed",
    ),
    "healthz_under_load": (
        lambda: healthz_load.run(seconds=20),
        lambda: healthz_load.run(seconds=2, idle_seconds=1),
        lambda r: r["max_body_1mib"]["p99_ms"] < 50,
        "/healthz p99 < 50 ms while the worst accepted inputs are processed",
    ),
    "local_backend": (
        lambda: local_spawn.run(count=1600, rounds=8),
        lambda: local_spawn.run(count=20, rounds=2),
        lambda r: r["ratio_to_raw"] >= local_spawn.GOAL_RATIO,
        f">= {local_spawn.GOAL_RATIO} of raw subprocess spawns, work dirs in memory",
    ),
}


def register(name: str, benchmark: Benchmark) -> None:
    BENCHMARKS[name] = benchmark


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--smoke", action="store_true", help="a few seconds, for CI: checks the harness runs")
    parser.add_argument("--only", nargs="*", help="names of benchmarks to run")
    args = parser.parse_args()
    _load_optional()
    unknown = sorted(set(args.only or ()) - set(BENCHMARKS))
    if unknown:
        parser.error(f"no benchmark named {', '.join(unknown)} (there are: {', '.join(BENCHMARKS)})")
    stem = "smoke" if args.smoke else "latest"
    results: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {len(cores())} cores, Python {platform.python_version()}",
        "smoke": args.smoke,
        "goals": [],
        "benchmarks": {},
    }
    for name, (full, smoke, goal, goal_text) in BENCHMARKS.items():
        if args.only and name not in args.only:
            continue
        began = time.monotonic()
        print(f"bench: {name} ...", flush=True)
        figures = (smoke if args.smoke else full)()
        met = None if args.smoke else bool(goal(figures))
        goals = figures.pop("goals", None) or [{"name": name, "figure": None, "goal": goal_text, "met": met}]
        goals = [{**entry, "met": None if args.smoke else bool(entry["met"])} for entry in goals]
        results["benchmarks"][name] = {
            "figures": figures,
            "goal": goal_text,
            "goal_met": met,
            "goals": goals,
            "seconds": round(time.monotonic() - began, 1),
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        print(f"bench: {name}: {json.dumps(figures)}", flush=True)
        for entry in goals:
            print(f"bench: goal {entry['name']!r}: {entry['figure']} ({entry['goal']}): {_met(entry['met'])}")
    if args.only and (RESULTS / f"{stem}.json").exists():
        # Some benchmarks ran again: the others keep the figures of the run before (read now, so
        # two such runs at once both keep theirs).
        before = json.loads((RESULTS / f"{stem}.json").read_text())["benchmarks"]
        results["benchmarks"] = {**before, **results["benchmarks"]}
    results["goals"] = [goal for entry in results["benchmarks"].values() for goal in entry.get("goals", [])]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{stem}.json").write_text(json.dumps(results, indent=2) + "\n")
    (RESULTS / f"{stem}.md").write_text(markdown(results))
    print(f"bench: wrote {RESULTS / stem}.json and .md")
    return 0


def markdown(results: dict[str, Any]) -> str:
    lines = [
        f"# Benchmark results ({'smoke run, figures not meaningful' if results['smoke'] else 'full run'})",
        "",
        f"{results['when']} on {results['machine']}.",
        "",
    ]
    lines += ["| goal | figure | wanted | |", "| --- | --- | --- | --- |"]
    for goal in results["goals"]:
        lines.append(f"| {goal['name']} | {goal['figure']} | {goal['goal']} | {_met(goal['met'])} |")
    lines.append("")
    for name, entry in results["benchmarks"].items():
        met = _met(entry["goal_met"])
        lines += [
            f"## {name}",
            "",
            f"Goal: {entry['goal']} ({met}); took {entry['seconds']} s, "
            f"at {entry.get('when', results['when'])}.",
            "",
            "| figure | value |",
            "| --- | --- |",
        ]
        for key, value in _flatten(entry["figures"]):
            lines.append(f"| {key} | {value} |")
        lines.append("")
    return "\n".join(lines)


def _met(met: bool | None) -> str:
    return {True: "met", False: "NOT met", None: "not checked"}[met]


def _flatten(figures: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for key, value in figures.items():
        if isinstance(value, dict):
            out += _flatten(value, f"{prefix}{key}.")
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            for i, item in enumerate(value):
                out += _flatten(item, f"{prefix}{key}.{i}.")
        else:
            out.append((f"{prefix}{key}", round(value, 3) if isinstance(value, float) else value))
    return out


def _load_optional() -> None:
    """Benchmarks of the Kubernetes backend register themselves when their module exists."""
    for module in ("bench.latency", "bench.tracking", "bench.kubecpu", "bench.scaling", "bench.clusters"):
        try:
            __import__(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise


if __name__ == "__main__":
    # Run as `python -m bench.run`, this module is __main__; benchmarks that register through
    # `from bench import run` must reach this copy of BENCHMARKS, not a second import of it.
    sys.modules.setdefault("bench.run", sys.modules[__name__])
    raise SystemExit(main())
