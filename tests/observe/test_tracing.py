"""Issue 16 (traces): one trace from the incoming event's traceparent through receive, handle,
resolve, match, each task and each delivery; TRACEPARENT in the task's env and on the Job; the
task span's traceparent on the finished event; a new trace for an event without one; and
nothing at all while no provider is set."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from executor.app.service import Service
from executor.backends.kubernetes.render import render_job
from executor.pipeline import _traced
from executor.settings import Settings
from executor.support import tracing
from tests.kubernetes.conftest import OPTIONS, make_spec
from tests.service.conftest import EventSink, make_event, write_config

TRACE = "0af7651916cd43dd8448eb211c80319c"
PARENT = f"00-{TRACE}-b7ad6b7169203331-01"
CONFIG = """\
apiVersion: v2
actions:
  - name: "Test"
    events: [{name: "sh.keptn.event.test.triggered"}]
    tasks:
      - name: "Show"
        image: "alpine"
        cmd: ["sh", "-c", "echo TP=$TRACEPARENT"]
"""


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.use(provider)
    try:
        yield exporter
    finally:
        tracing.use(None)


async def _run(tmp_path: Path, sink: EventSink, event: dict[str, Any]) -> tuple[Service, str]:
    """Post `event` to an in-process service; the task's log once the finished report arrived."""
    write_config(tmp_path, CONFIG)
    settings = Settings().with_overrides(
        receiver={"port": 0},
        state={"dir": tmp_path / "state"},
        config={"dir": tmp_path / "resources"},
        reporting={"sink_url": sink.url},
        local={"run_as_user": ""},
    )
    service = Service(settings)
    await service.start()
    try:
        url = f"http://127.0.0.1:{service.port}/"
        headers = {"Content-Type": "application/cloudevents+json"}
        async with aiohttp.ClientSession() as session:
            async with session.post(url, data=json.dumps(event), headers=headers) as response:
                assert response.status == 202
            await sink.wait_for(".finished")
            await service.outbox.drained()
            runs = f"http://127.0.0.1:{service.port}/api/v1/runs"
            async with session.get(runs) as response:
                key = (await response.json())["runs"][0]["key"]
            logs = f"{runs}/{key}/tasks/Test/Show/logs"
            async with session.get(logs) as response:
                log = await response.text()
    finally:
        await service.stop()
    return service, log


def _by_name(exporter: InMemorySpanExporter) -> dict[str, list[ReadableSpan]]:
    found: dict[str, list[ReadableSpan]] = {}
    for span in exporter.get_finished_spans():
        found.setdefault(span.name, []).append(span)
    return found


async def test_one_trace_runs_from_the_event_through_the_task_to_the_reports(
    tmp_path: Path, sink: EventSink, spans: InMemorySpanExporter
) -> None:
    event = make_event(event_id="trace-1") | {"traceparent": PARENT, "tracestate": "vendor=1"}
    _, log = await _run(tmp_path, sink, event)
    named = _by_name(spans)
    assert {"receive", "handle", "resolve", "match", "task", "deliver"} <= set(named), named
    every = spans.get_finished_spans()
    assert {f"{s.context.trace_id:032x}" for s in every} == {TRACE}
    [receive] = named["receive"]
    [handle] = named["handle"]
    [task] = named["task"]
    assert receive.parent is not None and f"{receive.parent.span_id:016x}" == "b7ad6b7169203331"
    assert receive.attributes is not None and receive.attributes["cloudevents.event_id"] == "trace-1"
    assert handle.parent is not None and handle.parent.span_id == receive.context.span_id
    for child in (*named["resolve"], *named["match"], task):
        assert child.parent is not None and child.parent.span_id == handle.context.span_id
    task_parent = f"00-{TRACE}-{task.context.span_id:016x}-01"
    # The task saw its own span as TRACEPARENT, and the finished report carries it too.
    assert log.strip() == f"TP={task_parent}"
    [finished] = sink.of_type(".finished")
    assert finished["traceparent"] == task_parent
    [started] = sink.of_type(".started")
    assert started["traceparent"] == f"00-{TRACE}-{handle.context.span_id:016x}-01"
    # Each delivery is a child of the report it delivered.
    parents = {f"{s.parent.span_id:016x}" for s in named["deliver"] if s.parent is not None}
    assert task_parent.split("-")[2] in parents


async def test_an_event_without_a_traceparent_starts_a_trace(
    tmp_path: Path, sink: EventSink, spans: InMemorySpanExporter
) -> None:
    _, log = await _run(tmp_path, sink, make_event(event_id="trace-2"))
    [receive] = _by_name(spans)["receive"]
    assert receive.parent is None
    trace_id = f"{receive.context.trace_id:032x}"
    assert {f"{s.context.trace_id:032x}" for s in spans.get_finished_spans()} == {trace_id}
    assert log.startswith(f"TP=00-{trace_id}-")
    assert sink.of_type(".finished")[0]["traceparent"].startswith(f"00-{trace_id}-")


async def test_off_no_spans_and_the_trigger_traceparent_passes_unchanged(
    tmp_path: Path, sink: EventSink
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    # A provider exists in the process but was never handed to us: tracing stays off.
    assert not tracing.enabled()
    event = make_event(event_id="trace-3") | {"traceparent": PARENT}
    _, log = await _run(tmp_path, sink, event)
    assert exporter.get_finished_spans() == ()
    assert log.strip() == f"TP={PARENT}"
    assert sink.of_type(".finished")[0]["traceparent"] == PARENT
    assert tracing.receive({"id": "x"}, "http") is tracing.receive({"id": "y"}, "nats")  # one shared no-op


def test_the_job_carries_the_traceparent_in_its_env_and_an_annotation() -> None:
    spec = _traced(make_spec(), PARENT)
    job = render_job(spec, OPTIONS)
    assert job["metadata"]["annotations"][tracing.ANNOTATION] == PARENT
    [container] = job["spec"]["template"]["spec"]["containers"]
    assert {"name": "TRACEPARENT", "value": PARENT} in container["env"]
