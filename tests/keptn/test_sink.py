"""Events and error logs to the Keptn API through the sink and the error-log helpers."""

from __future__ import annotations

import pytest

from executor.keptn.api import KeptnAPI
from executor.keptn.format import task_of
from executor.keptn.models import IntegrationMetadata, Subscription
from executor.model.errors import Temporary
from executor.model.events import Event, event_from_mapping
from executor.reporter import error_finished, error_log_event, started
from executor.sinks.keptn import KeptnSink, log_entries
from tests.keptn.conftest import METADATA, PROJECT, SERVICE, STAGE
from tests.keptn.fake_keptn import FakeKeptn


def triggered() -> Event:
    return event_from_mapping(
        {
            "specversion": "1.0",
            "id": "trig-1",
            "source": "shipyard-controller",
            "type": "sh.keptn.event.test.triggered",
            "shkeptncontext": "ctx-1",
            "data": {"project": PROJECT, "stage": STAGE, "service": SERVICE},
        }
    )


async def test_the_sink_posts_events_and_closes_the_triggered_event(keptn: FakeKeptn, api: KeptnAPI) -> None:
    open_event = keptn.trigger("sh.keptn.event.test.triggered", PROJECT, STAGE, SERVICE)
    trigger = event_from_mapping(open_event)
    sink = KeptnSink(api, integration_id=lambda: "integration-1")
    await sink.send(started(trigger, "action-0"))
    finished = error_finished(trigger, "action-0", "Action 'x': Forbidden: Image evil does not match")
    await sink.send(finished)
    assert [e["type"] for e in keptn.received] == [
        "sh.keptn.event.test.started",
        "sh.keptn.event.test.finished",
    ]
    assert keptn.received[1]["triggeredid"] == open_event["id"]
    assert keptn.open_triggered == []
    # The errored finished event was forwarded as a log entry, the started one was not.
    assert keptn.logs == [
        {
            "integrationid": "integration-1",
            "message": "Action 'x': Forbidden: Image evil does not match",
            "shkeptncontext": open_event["shkeptncontext"],
            "task": "test",
            "triggeredid": open_event["id"],
            "time": finished["time"],
        }
    ]


async def test_sink_failures_are_temporary_for_the_outbox(
    keptn: FakeKeptn, api: KeptnAPI, bad_api: KeptnAPI
) -> None:
    event = started(triggered(), "action-0")
    with pytest.raises(Temporary, match="KEPTN_API_TOKEN was refused"):
        await KeptnSink(bad_api).send(event)
    keptn.fail_next = 3
    with pytest.raises(Temporary, match="is unavailable"):
        await KeptnSink(api).send(event)
    await KeptnSink(api).send(event)  # delivered once the control plane is back
    # The api-service publishes it under an id of its own: compare what identifies it to Keptn.
    assert [(e["type"], e["triggeredid"]) for e in keptn.received] == [(event["type"], "trig-1")]


async def test_error_log_event_through_the_sink_finds_its_integration_by_name(
    keptn: FakeKeptn, api: KeptnAPI
) -> None:
    integration_id = await api.register("job-executor", "1", [Subscription("x")], METADATA)
    await api.register("other-service", "1", [Subscription("x")], IntegrationMetadata("node-1", "keptn-exec"))
    event = error_log_event(triggered(), "No job configuration found for this event")
    assert event["type"] == "sh.keptn.log.error" and event["triggeredid"] == "trig-1"
    assert event["data"] == {
        "message": "No job configuration found for this event",
        "integrationid": "",
        "task": "test",
    }
    assert error_log_event(triggered(), "No job configuration found for this event")["id"] == event["id"]
    sink = KeptnSink(api)  # no poller in this process: the id is looked up by name
    await sink.send(event)
    await sink.send(error_log_event(triggered(), "Invalid job config: x.yaml:3: bad"))
    assert [log["integrationid"] for log in keptn.logs] == [integration_id, integration_id]
    assert [log["task"] for log in keptn.logs] == ["test", "test"]
    assert len(keptn.requests_to("/uniform/registration", "GET")) == 1  # looked up once


async def test_an_error_log_event_through_the_sink_sends_event_and_entry(
    keptn: FakeKeptn, api: KeptnAPI
) -> None:
    sent = error_log_event(triggered(), "Invalid job config", "integration-9")
    await KeptnSink(api, integration_id=lambda: "integration-9").send(sent)
    (published,) = keptn.received
    assert published["type"] == "sh.keptn.log.error" and published["data"] == sent["data"]
    assert published["triggeredid"] == "trig-1" and published["id"] != sent["id"]
    assert (
        keptn.logs[0]["integrationid"] == "integration-9" and keptn.logs[0]["message"] == "Invalid job config"
    )


def test_log_entries_follow_the_sdk_rules() -> None:
    ok = {"type": "sh.keptn.event.test.finished", "data": {"status": "succeeded", "message": "fine"}}
    assert log_entries(ok, "id") == []
    errored = {"type": "sh.keptn.event.test.finished", "data": {"status": "errored", "message": "boom"}}
    assert log_entries(errored, "") == []  # no integration id: nothing, like the SDK
    assert log_entries(errored, "id")[0]["message"] == "boom"
    assert task_of("sh.keptn.event.deployment.triggered") == "deployment"
    assert task_of("sh.keptn.event.dev.delivery.triggered") == "sh.keptn.event.dev.delivery.triggered"
