"""The pipeline's side of the Keptn contract: which events it answers, in which order, and which
it refuses (issue 11 items 3 and 4, issue 13 item 6)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from executor.model.events import event_from_mapping
from executor.pipeline import Pipeline
from executor.resolvers.local import LocalTreeResolver
from executor.settings import Settings
from executor.state import StateStore
from tests.service.conftest import make_event, write_config
from tests.service.test_pipeline_faults import BrokenBackend, Recorder
from tests.service.test_pipeline_faults import pipeline as broken_pipeline

TWO_ACTIONS = """\
apiVersion: v2
actions:
  - name: "First"
    events: [{name: "sh.keptn.event.test.triggered"}]
    tasks: [{name: "t", image: "alpine", cmd: ["true"]}]
  - name: "Second"
    events: [{name: "sh.keptn.event.test.triggered"}]
    tasks: [{name: "t", image: "alpine", cmd: ["true"]}]
"""


async def test_every_started_goes_out_before_any_finished(tmp_path: Path) -> None:
    write_config(tmp_path, TWO_ACTIONS)
    reports = Recorder()
    store = StateStore(":memory:")
    pipe = Pipeline(Settings(), LocalTreeResolver(tmp_path / "resources"), BrokenBackend(), store, reports)
    await pipe.handle(event_from_mapping(make_event(event_id="two")))
    kinds = [e["type"].rsplit(".", 1)[1] for e in reports.events]
    assert kinds == ["started", "started", "finished", "finished"]
    assert len({e["id"] for e in reports.events}) == 4


@pytest.mark.parametrize(
    "event_type",
    [
        "sh.keptn.event.dev.delivery.triggered",
        "sh.keptn.event.service.create.finished",
        "sh.keptn.event.test",
    ],
)
async def test_keptn_events_that_are_not_task_events_run_nothing(tmp_path: Path, event_type: str) -> None:
    reports = Recorder()  # the config matches sh.keptn.event.*; the backend would fail loudly
    assert await broken_pipeline(tmp_path, reports).handle(event_from_mapping(make_event(event_type))) is True
    assert reports.events == []


async def test_names_keptn_would_not_accept_are_refused_not_resolved_elsewhere(tmp_path: Path) -> None:
    reports = Recorder()
    pipe = broken_pipeline(tmp_path, reports)  # a service-level config exists for "carts" only
    ok = await pipe.handle(event_from_mapping(make_event(event_id="inject", service="carts; rm -rf /")))
    assert ok is False
    assert [e["type"] for e in reports.events] == [
        "sh.keptn.event.test.started",
        "sh.keptn.event.test.finished",
    ]
    data = reports.events[1]["data"]
    assert data["status"] == "errored" and "internal error" not in data["message"]
    assert data["message"].startswith("Refused: the event's service 'carts; rm -rf /' is not")


async def test_a_task_event_without_a_keptn_context_is_logged_and_not_answered(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    reports = Recorder()
    raw = make_event(event_id="no-context")
    del raw["shkeptncontext"]
    assert await broken_pipeline(tmp_path, reports).handle(event_from_mapping(raw)) is False
    assert reports.events == []
    assert any(
        r.levelno == logging.WARNING and "lacks shkeptncontext" in r.getMessage() for r in caplog.records
    )


async def test_garbage_from_the_resource_service_is_reported_without_a_traceback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from aiohttp import web

    from executor.keptn.api import KeptnAPI
    from executor.resolvers.keptn import KeptnResolver

    async def garbage(request: web.Request) -> web.Response:
        return web.Response(text="<html>proxy login</html>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/{tail:.*}", garbage)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    api = KeptnAPI(f"http://127.0.0.1:{runner.addresses[0][1]}/api", "t", retries=0)
    reports = Recorder()
    pipe = Pipeline(Settings(), KeptnResolver(api), BrokenBackend(), StateStore(":memory:"), reports)
    try:
        assert await pipe.handle(event_from_mapping(make_event(event_id="garbage"))) is False
    finally:
        await api.close()
        await runner.cleanup()
    assert [e["type"].rsplit(".", 1)[1] for e in reports.events] == ["started", "finished"]
    message = reports.events[1]["data"]["message"]
    assert message.startswith("Could not read the job config:") and "not a JSON object" in message
    assert all(r.exc_info is None for r in caplog.records)
    assert any("reading the job config for event garbage failed" in r.getMessage() for r in caplog.records)
