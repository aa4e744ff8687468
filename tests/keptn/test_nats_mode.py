"""NATS mode (in-cluster) with a Keptn API endpoint: the service registers with the control plane
and renews, as Keptn's Go SDK does in both modes, but polls nothing; its answers and error logs go
back over NATS (issue 11 item 9)."""

from __future__ import annotations

import json
from pathlib import Path

import nats
import pytest

from tests.keptn.conftest import PROJECT, SERVICE, STAGE
from tests.keptn.fake_keptn import FakeKeptn
from tests.nats.conftest import NatsServer, nats_server  # noqa: F401 (fixture)
from tests.service.conftest import Serve, make_event

pytestmark = pytest.mark.slow


async def test_nats_mode_registers_without_polling_and_sends_error_logs_over_nats(
    tmp_path: Path,
    keptn: FakeKeptn,
    nats_server: NatsServer,  # noqa: F811
) -> None:
    client = await nats.connect(nats_server.url)
    logs = await client.subscribe("sh.keptn.log.error")
    serve = Serve(
        tmp_path,
        "",
        {
            "K_SINK": "",
            "NATS_URL": nats_server.url,
            "NATS_SUBJECTS": "sh.keptn.event.test.triggered",
            "KEPTN_API_ENDPOINT": keptn.url,
            "KEPTN_API_TOKEN": keptn.token,
            "CONFIG_SOURCE": "keptn",
            "KEPTN_POLL_INTERVAL": "1",
            "KEPTN_RENEW_INTERVAL": "5",
        },
    )
    await serve.start()
    try:
        await keptn.wait_for(lambda: keptn.registrations, timeout=20)
        (registration,) = keptn.registrations.values()
        assert [s["event"] for s in registration["subscriptions"]] == ["sh.keptn.event.test.triggered"]
        # An event without config (none in the resource service): an error log over NATS.
        event = make_event(event_id="no-config", project=PROJECT, stage=STAGE, service=SERVICE)
        await client.publish("sh.keptn.event.test.triggered", json.dumps(event).encode())
        message = await logs.next_msg(timeout=20)
        sent = json.loads(message.data)
        assert sent["triggeredid"] == "no-config" and "No job configuration found" in sent["data"]["message"]
        assert sent["data"]["integrationid"] == registration["id"]
        assert keptn.requests_to("/event/triggered/") == [] and keptn.received == []
    finally:
        await serve.stop()
        await client.close()
