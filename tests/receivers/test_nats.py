"""Issue 14 item 8 (and items 2, 3, 6 on NATS): the CloudEvents NATS protocol binding, binary and
structured mode, with the same validation as HTTP; published events carry `Nats-Msg-Id`.

Rules: cloudevents/spec: cloudevents/bindings/nats-protocol-binding.md (3: structured when the
Content-Type header is `application/cloudevents...`, else binary; 3.1.3.1 `ce-` header names,
`ce-datacontenttype` included; 3.1.3.2 the same value decoding as HTTP). Keptn publishes
structured JSON without headers (keptn/go-utils: pkg/sdk/connector/nats/nats.go), which must
keep working (SPEC.md). The JetStream duplicate window keys on the `Nats-Msg-Id` header
(nats-io/nats-server: server/stream.go, JSMsgId).
A real nats-server (Debian package), as tests/nats/conftest.py starts it.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import nats
import pytest
import pytest_asyncio
from nats.aio.client import Client
from nats.aio.msg import Msg

from tests.receivers.harness import Service, free_port, keptn_event, metric, start_service

pytestmark = pytest.mark.asyncio(loop_scope="module")

NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"
SUBJECT = "sh.keptn.event.test.triggered"
LIMIT = 1024
MALFORMED = ("job_executor_events_rejected_total", "malformed")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def bus(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[Service, Client]]:
    if not Path(NATS_SERVER).exists():
        pytest.fail("nats-server is not installed: apt-get install nats-server")
    tmp = tmp_path_factory.mktemp("nats")
    port = free_port()
    server = subprocess.Popen(
        [NATS_SERVER, "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(tmp / "js")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"nats://127.0.0.1:{port}"
    client: Client | None = None
    try:
        for _ in range(200):
            try:
                client = await nats.connect(url, connect_timeout=1, max_reconnect_attempts=0)
                break
            except Exception:
                await asyncio.sleep(0.05)
        assert client is not None, "nats-server did not start"
        svc, collector = await start_service(tmp, {"NATS_URL": url, "MAX_ATTRIBUTE_BYTES": str(LIMIT)})
        try:
            yield svc, client
        finally:
            svc.stop()
            await collector.stop()
        assert "Traceback" not in svc.log_text()
    finally:
        if client is not None:
            await client.close()
        server.terminate()
        server.wait(timeout=10)


async def publish(client: Client, payload: bytes, headers: dict[str, str] | None = None) -> None:
    await client.publish(SUBJECT, payload, headers=headers)
    await client.flush()


def binary(event: dict[str, Any], **extra: str) -> tuple[bytes, dict[str, str]]:
    headers = {f"ce-{k}": str(v) for k, v in event.items() if k != "data"}
    headers.update(extra)
    return json.dumps(event["data"]).encode(), headers


async def refused(
    service: Service, client: Client, event: dict[str, Any], payload: bytes, headers: dict[str, str] | None
) -> None:
    """Positive signals only: the malformed counter goes up, and a later valid event runs first."""
    before = metric(await service.metrics(), *MALFORMED[:1], reason=MALFORMED[1])
    await publish(client, payload, headers)
    for _ in range(100):
        if metric(await service.metrics(), *MALFORMED[:1], reason=MALFORMED[1]) > before:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the invalid NATS message was not counted as malformed")
    sentinel = keptn_event()
    await publish(client, json.dumps(sentinel).encode())
    await service.wait_run(sentinel["id"])
    assert service.runs_of(event["id"]) == []


async def test_structured_without_headers_as_keptn_publishes(bus: tuple[Service, Client]) -> None:
    service, client = bus
    event = keptn_event()
    await publish(client, json.dumps(event).encode())
    await service.wait_run(event["id"])


async def test_structured_by_content_type_even_with_ce_headers(bus: tuple[Service, Client]) -> None:
    service, client = bus
    event = keptn_event(marker="structured")
    _, headers = binary(event)
    headers["Content-Type"] = "application/cloudevents+json; charset=utf-8"
    await publish(client, json.dumps(event).encode(), headers)
    seen = await service.wait_run(event["id"])
    assert seen["data"]["marker"] == "structured"


async def test_binary_mode_attributes_in_headers(bus: tuple[Service, Client]) -> None:
    service, client = bus
    event = keptn_event(marker="binary")
    payload, headers = binary(event)
    await publish(client, payload, headers)
    seen = await service.wait_run(event["id"])
    assert seen["data"]["marker"] == "binary"
    assert (seen["shkeptncontext"], seen["datacontenttype"]) == ("ctx-rcv", "application/json")


async def test_binary_mode_header_values_are_decoded(bus: tuple[Service, Client]) -> None:
    service, client = bus
    event = keptn_event()
    payload, headers = binary(event, **{"ce-shkeptncontext": '"ctx%20%E2%82%AC"'})
    await publish(client, payload, headers)
    assert (await service.wait_run(event["id"]))["shkeptncontext"] == "ctx \u20ac"


async def test_binary_mode_invalid_utf8_is_refused(bus: tuple[Service, Client]) -> None:
    service, client = bus
    event = keptn_event()
    payload, headers = binary(event, **{"ce-shkeptncontext": "%C0%A0"})
    await refused(service, client, event, payload, headers)


@pytest.mark.parametrize("mode", ["structured", "binary"])
async def test_invalid_time_is_refused(bus: tuple[Service, Client], mode: str) -> None:
    service, client = bus
    event = keptn_event()
    event["time"] = "lunchtime"
    if mode == "structured":
        await refused(service, client, event, json.dumps(event).encode(), None)
    else:
        await refused(service, client, event, *binary(event))


@pytest.mark.parametrize("mode", ["structured", "binary"])
async def test_attribute_cap_applies_on_nats(bus: tuple[Service, Client], mode: str) -> None:
    service, client = bus
    event = keptn_event()
    event["subject"] = "s" * (LIMIT + 1)
    if mode == "structured":
        await refused(service, client, event, json.dumps(event).encode(), None)
    else:
        await refused(service, client, event, *binary(event))


async def test_published_events_carry_nats_msg_id(bus: tuple[Service, Client]) -> None:
    service, client = bus
    seen: list[Msg] = []
    got = asyncio.Event()

    async def on_message(msg: Msg) -> None:
        seen.append(msg)
        got.set()

    sub = await client.subscribe("sh.keptn.event.test.*", cb=on_message)
    await client.flush()
    event = keptn_event()
    await publish(client, json.dumps(event).encode())
    await service.wait_run(event["id"])

    def answers() -> list[Msg]:
        return [
            m for m in seen if m.subject != SUBJECT and json.loads(m.data).get("triggeredid") == event["id"]
        ]

    for _ in range(200):
        if len(answers()) >= 2:
            break
        got.clear()
        await asyncio.wait([asyncio.ensure_future(got.wait())], timeout=0.1)
    await sub.unsubscribe()
    found = answers()
    assert len(found) >= 2, [m.subject for m in seen]
    ids = [(m.headers or {}).get("Nats-Msg-Id", "") for m in found]
    assert all(ids), f"published without Nats-Msg-Id: {[m.headers for m in found]}"
    assert len(set(ids)) == len(ids), "started and finished must have distinct Nats-Msg-Id"
    for msg, msg_id in zip(found, ids, strict=True):
        assert json.loads(msg.data)["id"] in msg_id or len(msg_id) >= 16
