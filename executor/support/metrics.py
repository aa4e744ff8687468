"""Prometheus metrics on prometheus_client: its registry, histograms and text exposition.

Every series is declared here, once, and exported from the start at 0 (labelled ones for each
label value known in advance), so a dashboard or an alert on `rate(...)` sees a series before
the first event rather than a gap. Each `Metrics` has a registry of its own: tests and several
services in one process do not share counts.
"""

from __future__ import annotations

from collections.abc import Callable

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest

from executor import __version__

# `_created` samples double the exposition and no dashboard of ours reads them.
prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]

DURATION_BUCKETS = (0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600)
PHASES = ("queued", "staged", "running", "total")
REJECT_REASONS = (
    "unauthorized",
    "malformed",
    "too_large",
    "batch_too_large",
    "unsupported",
    "queue_full",
    "saturated",
    "closed",
    "timeout",
)
RUN_OUTCOMES = ("succeeded", "failed", "refused", "error", "skipped", "cancelled")

# name -> (help, label names, label values to export from the start)
COUNTERS: dict[str, tuple[str, tuple[str, ...], tuple[tuple[str, ...], ...]]] = {
    "job_executor_events_received_total": ("CloudEvents accepted by a source", (), ()),
    "job_executor_events_duplicate_total": ("CloudEvents dropped as already seen (source, id)", (), ()),
    "job_executor_events_rejected_total": (
        "Requests refused, by reason (" + ", ".join(REJECT_REASONS) + ")",
        ("reason",),
        tuple((r,) for r in REJECT_REASONS),
    ),
    "job_executor_events_matched_total": ("CloudEvents that matched at least one action", (), ()),
    "job_executor_runs_total": (
        "Actions run, by outcome (" + ", ".join(RUN_OUTCOMES) + ")",
        ("outcome",),
        tuple((o,) for o in RUN_OUTCOMES),
    ),
    "job_executor_events_sent_total": ("Outgoing events delivered to a sink", (), ()),
    "job_executor_outbox_failures_total": ("Failed deliveries (retried)", (), ()),
    "job_executor_outbox_dead_total": ("Outgoing events given up on, by sink", ("sink",), ()),
    "job_executor_cluster_failures_total": (
        "Failed Job creates, by cluster (CLUSTERS_FILE)",
        ("cluster",),
        (),
    ),
}
# name -> (help, label names); each reads a function at scrape time
GAUGES: dict[str, tuple[str, tuple[str, ...]]] = {
    "job_executor_queue_depth": ("Events accepted and waiting for a worker", ()),
    "job_executor_outbox_pending": ("Outgoing events not yet delivered", ()),
    "job_executor_runs_in_flight": ("Events being handled by a worker now", ()),
    "job_executor_tasks_waiting": ("Tasks waiting for a slot (MAX_CONCURRENT_TASKS)", ()),
    "job_executor_tasks_running": ("Tasks holding a slot (MAX_CONCURRENT_TASKS)", ()),
    "job_executor_tasks_waiting_for_cluster": ("Tasks waiting for room on an eligible cluster", ()),
    "job_executor_runs_waiting_for_concurrency": (
        "Actions of events waiting for a slot of their key (the action's concurrency)",
        (),
    ),
    "job_executor_cluster_jobs": ("Jobs of ours not yet ended, by cluster", ("cluster",)),
    "job_executor_cluster_failing": ("1 while a cluster is skipped after failures, by cluster", ("cluster",)),
    "job_executor_tasks_waiting_for_admission": (
        "Tasks held back by MAX_PENDING_JOBS or KUBE_WRITE_QPS (intake pauses meanwhile)",
        (),
    ),
    "job_executor_intake_paused": ("1 while NATS intake pauses for admission", ()),
    "job_executor_leader": ("1 while this replica holds the leader Lease (LEADER_ELECTION)", ()),
}
HISTOGRAMS: dict[str, tuple[str, tuple[str, ...], tuple[tuple[str, ...], ...]]] = {
    "job_executor_task_duration_seconds": ("Time from a task's submit to its end", (), ()),
    "job_executor_task_phase_seconds": (
        "Time a task spent in each phase: queued (event received to submit), staged (submit to "
        "start), running (start to end), total (received to end)",
        ("phase",),
        tuple((p,) for p in PHASES),
    ),
}


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._counters: dict[str, Counter] = {}
        self._gauges: dict[str, Gauge] = {}
        self._histograms: dict[str, Histogram] = {}
        for name, (doc, labels, known) in COUNTERS.items():
            counter = Counter(name, doc, labels, registry=self.registry)
            if labels:
                for values in known:
                    counter.labels(*values)
            self._counters[name] = counter
        for name, (doc, labels) in GAUGES.items():
            self._gauges[name] = Gauge(name, doc, labels, registry=self.registry)
        self._reads: dict[tuple[str, tuple[tuple[str, str], ...]], Callable[[], float]] = {}
        for name, (doc, labels, known) in HISTOGRAMS.items():
            hist = Histogram(name, doc, labels, buckets=DURATION_BUCKETS, registry=self.registry)
            for values in known:
                hist.labels(*values)
            self._histograms[name] = hist
        build = Gauge(
            "job_executor_build_info", "The running version (value 1)", ("version",), registry=self.registry
        )
        build.labels(__version__).set(1)

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        counter = self._counters[name]
        (counter.labels(**labels) if labels else counter).inc(amount)

    def gauge(self, name: str, read: Callable[[], float], **labels: str) -> None:
        """The gauge `name` (with these labels) reads `read()` at each scrape."""
        gauge = self._gauges[name]
        (gauge.labels(**labels) if labels else gauge).set_function(read)
        self._reads[(name, tuple(sorted(labels.items())))] = read

    def read_gauge(self, name: str, **labels: str) -> float:
        """A gauge's value now, for tests and health checks."""
        return self._reads[(name, tuple(sorted(labels.items())))]()

    def observe(self, name: str, value: float, **labels: str) -> None:
        hist = self._histograms[name]
        (hist.labels(**labels) if labels else hist).observe(value)

    def value(self, name: str, **labels: str) -> float:
        """A counter's count (0 when never counted), for tests and health checks."""
        sample = self.registry.get_sample_value(name, labels)
        return 0.0 if sample is None else float(sample)

    def render(self) -> str:
        return generate_latest(self.registry).decode()
