"""Issue 16 (7): metrics on prometheus_client, every series there from the start at 0, an
in-flight gauge and build_info."""

from __future__ import annotations

import asyncio

from prometheus_client.parser import text_string_to_metric_families

from executor import __version__
from executor.dispatcher import Dispatcher
from executor.model.events import event_from_mapping
from executor.state import StateStore
from executor.support.metrics import Metrics


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_every_series_is_exported_at_zero_before_anything_happens() -> None:
    found = samples(Metrics().render())
    for name in (
        "job_executor_events_received_total",
        "job_executor_events_duplicate_total",
        "job_executor_events_matched_total",
        "job_executor_events_sent_total",
        "job_executor_outbox_failures_total",
        "job_executor_queue_depth",
        "job_executor_outbox_pending",
        "job_executor_runs_in_flight",
        "job_executor_task_duration_seconds_count",
    ):
        assert found[(name, ())] == 0, name
    assert found[("job_executor_events_rejected_total", (("reason", "queue_full"),))] == 0
    assert found[("job_executor_runs_total", (("outcome", "failed"),))] == 0
    assert found[("job_executor_task_phase_seconds_count", (("phase", "queued"),))] == 0
    assert found[("job_executor_build_info", (("version", __version__),))] == 1


def test_counts_reach_the_exposition_and_value() -> None:
    metrics = Metrics()
    metrics.inc("job_executor_events_rejected_total", reason="malformed")
    metrics.inc("job_executor_events_rejected_total", reason="malformed")
    metrics.observe("job_executor_task_phase_seconds", 2.0, phase="running")
    found = samples(metrics.render())
    assert found[("job_executor_events_rejected_total", (("reason", "malformed"),))] == 2
    assert metrics.value("job_executor_events_rejected_total", reason="malformed") == 2
    bucket = ("job_executor_task_phase_seconds_bucket", (("le", "5.0"), ("phase", "running")))
    assert found[bucket] == 1


async def test_in_flight_gauge_counts_events_being_handled() -> None:
    metrics = Metrics()
    entered, release = asyncio.Event(), asyncio.Event()

    async def handler(_event: object) -> None:
        entered.set()
        await release.wait()

    dispatcher = Dispatcher(StateStore(":memory:"), handler, concurrency=2, queue_size=5, metrics=metrics)
    await dispatcher.start()
    event = event_from_mapping({"specversion": "1.0", "id": "1", "source": "s", "type": "t"})
    dispatcher.offer(event)
    await entered.wait()
    assert samples(metrics.render())[("job_executor_runs_in_flight", ())] == 1
    release.set()
    await dispatcher.join()
    assert samples(metrics.render())[("job_executor_runs_in_flight", ())] == 0
    await dispatcher.stop(grace=0)
