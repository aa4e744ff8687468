"""Prometheus text-format metrics, without a client library: a few counters, gauges and one
histogram are all the service exposes."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

DURATION_BUCKETS = (0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600)

HELP = {
    "job_executor_events_received_total": "CloudEvents accepted by a source",
    "job_executor_events_duplicate_total": "CloudEvents dropped as already seen (source, id)",
    "job_executor_events_rejected_total": "Requests refused, by reason (unauthorized, malformed, too_large, "
    "batch_too_large, unsupported, queue_full, closed, timeout)",
    "job_executor_events_matched_total": "CloudEvents that matched at least one action",
    "job_executor_runs_total": "Actions run, by outcome",
    "job_executor_events_sent_total": "Outgoing events delivered to a sink",
    "job_executor_outbox_failures_total": "Failed deliveries (retried)",
    "job_executor_queue_depth": "Events accepted and waiting for a worker",
    "job_executor_outbox_pending": "Outgoing events not yet delivered",
    "job_executor_task_duration_seconds": "Time from a task's submit to its end",
}


class Metrics:
    def __init__(self) -> None:
        self._counters: dict[tuple[str, tuple[tuple[str, str], ...]], float] = defaultdict(float)
        self._gauges: dict[tuple[str, tuple[tuple[str, str], ...]], Callable[[], float]] = {}
        self._hist_counts: dict[str, list[int]] = {}
        self._hist_sum: dict[str, float] = defaultdict(float)

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        self._counters[(name, tuple(sorted(labels.items())))] += amount

    def gauge(self, name: str, read: Callable[[], float], **labels: str) -> None:
        self._gauges[(name, tuple(sorted(labels.items())))] = read

    def read_gauge(self, name: str, **labels: str) -> float:
        return self._gauges[(name, tuple(sorted(labels.items())))]()

    def observe(self, name: str, value: float) -> None:
        counts = self._hist_counts.setdefault(name, [0] * (len(DURATION_BUCKETS) + 1))
        for i, bound in enumerate(DURATION_BUCKETS):
            if value <= bound:
                counts[i] += 1
        counts[-1] += 1
        self._hist_sum[name] += value

    def value(self, name: str, **labels: str) -> float:
        return self._counters.get((name, tuple(sorted(labels.items()))), 0.0)

    def render(self) -> str:
        lines: list[str] = []
        seen: set[str] = set()

        def header(name: str, kind: str) -> None:
            if name not in seen:
                seen.add(name)
                lines.append(f"# HELP {name} {HELP.get(name, name)}")
                lines.append(f"# TYPE {name} {kind}")

        for (name, labels), amount in sorted(self._counters.items()):
            header(name, "counter")
            lines.append(f"{name}{_labels(labels)} {amount:g}")
        for (name, labels), read in sorted(self._gauges.items(), key=lambda item: item[0]):
            header(name, "gauge")
            lines.append(f"{name}{_labels(labels)} {read():g}")
        for name, counts in sorted(self._hist_counts.items()):
            header(name, "histogram")
            for bound, count in zip((*DURATION_BUCKETS, "+Inf"), counts, strict=True):
                lines.append(f'{name}_bucket{{le="{bound}"}} {count}')
            lines.append(f"{name}_sum {self._hist_sum[name]:g}")
            lines.append(f"{name}_count {counts[-1]}")
        return "\n".join(lines) + "\n"


def _labels(labels: tuple[tuple[str, str], ...]) -> str:
    if not labels:
        return ""
    body = ",".join(
        f'{k}="{v.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"' for k, v in labels
    )
    return "{" + body + "}"
