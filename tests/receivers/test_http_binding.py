"""One test per MUST of the CloudEvents HTTP protocol binding 1.0.2 that a receiver can be held
to (cloudevents/spec: cloudevents/bindings/http-protocol-binding.md), and issue 14 items 1 and 2.

Section numbers below are the binding's. Each accepted event must be seen to run exactly once
by the recording task, with the attributes the receiver decoded.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from tests.receivers.harness import (
    BATCH,
    ROUTING,
    STRUCTURED,
    Service,
    binary_headers,
    keptn_event,
    names_attribute,
    start_service,
    unique,
)
from tests.service.conftest import EventSink

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def served(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[Service, EventSink]]:
    svc, collector = await start_service(tmp_path_factory.mktemp("binding"))
    yield svc, collector
    svc.stop()
    await collector.stop()
    assert "Traceback" not in svc.log_text()


@pytest.fixture
def service(served: tuple[Service, EventSink]) -> Service:
    return served[0]


def binary_request(event: dict[str, Any], **extra: str) -> tuple[bytes, dict[str, str]]:
    headers = binary_headers(event)
    headers.update(extra)
    return json.dumps(event["data"]).encode(), headers


# ---- 3: the content mode is chosen by Content-Type (issue item 1) ----
async def test_structured_content_type_with_ce_headers_is_structured(service: Service) -> None:
    """3 and 3.2.3: `ce-` headers MAY accompany a structured message; the body is the event."""
    event = keptn_event(marker="structured")
    headers = {"Content-Type": STRUCTURED, **binary_headers(event, STRUCTURED)}
    status, text = await service.post(json.dumps(event).encode(), headers)
    assert status == 202, text
    seen = await service.wait_run(event["id"])
    assert seen["data"]["marker"] == "structured" and seen["data"]["project"] == ROUTING["project"]


async def test_structured_body_wins_over_disagreeing_ce_headers(service: Service) -> None:
    """3.2.3: all attributes MUST be in the payload; headers in structured mode are only copies."""
    event = keptn_event()
    headers = {
        "Content-Type": STRUCTURED,
        "ce-id": unique("header"),
        "ce-specversion": "1.0",
        "ce-source": "elsewhere",
        "ce-type": "other.type",
    }
    status, text = await service.post(json.dumps(event).encode(), headers)
    assert status == 202, text
    seen = await service.wait_run(event["id"])
    assert (seen["source"], seen["type"]) == (event["source"], event["type"])


async def test_batch_content_type_with_ce_headers_is_a_batch(service: Service) -> None:
    """3: `application/cloudevents-batch` selects batched mode whatever other headers say."""
    events = [keptn_event(), keptn_event()]
    headers = {"Content-Type": BATCH, **binary_headers(events[0], BATCH)}
    status, text = await service.post(json.dumps(events).encode(), headers)
    assert status == 202, text
    assert json.loads(text) == {"accepted": 2, "duplicate": 0}
    for event in events:
        await service.wait_run(event["id"])


async def test_other_content_type_with_ce_headers_is_binary(service: Service) -> None:
    """3: anything not prefixed `application/cloudevents` is binary mode; the body is `data`."""
    event = keptn_event(marker="binary")
    body, headers = binary_request(event)
    status, text = await service.post(body, headers)
    assert status == 202, text
    seen = await service.wait_run(event["id"])
    assert seen["data"]["marker"] == "binary"


# ---- 3.1.1 Content-Type and datacontenttype ----
async def test_binary_content_type_is_datacontenttype(service: Service) -> None:
    """3.1.1: Content-Type MUST be populated into datacontenttype, parameters included."""
    event = keptn_event()
    body, headers = binary_request(event, **{"Content-Type": "application/json; charset=utf-8"})
    status, text = await service.post(body, headers)
    assert status == 202, text
    assert (await service.wait_run(event["id"]))["datacontenttype"] == "application/json; charset=utf-8"


async def test_binary_with_ce_datacontenttype_header_is_refused(service: Service) -> None:
    """3.1.1: a `ce-datacontenttype` header MUST NOT be present in binary mode."""
    event = keptn_event()
    body, headers = binary_request(event, **{"ce-datacontenttype": "application/json"})
    status, text = await service.post(body, headers)
    assert status == 400, text
    assert names_attribute(text, "datacontenttype"), text


# ---- 3.1.3 / 3.1.3.1 every attribute, extensions included, is a `ce-` header; names ignore case ----
async def test_extension_headers_become_attributes(served: tuple[Service, EventSink]) -> None:
    """3.1.3: extensions MUST be mapped from their own headers (and go back to Keptn intact)."""
    service, collector = served
    event = keptn_event()
    body, headers = binary_request(event, **{"ce-shkeptncontext": "ctx-ext", "ce-myextension": "v1"})
    status, text = await service.post(body, headers)
    assert status == 202, text
    seen = await service.wait_run(event["id"])
    assert (seen["shkeptncontext"], seen["myextension"]) == ("ctx-ext", "v1")
    finished = await collector.wait_until(
        lambda e: e.get("triggeredid") == event["id"] and e["type"].endswith(".finished")
    )
    assert finished["shkeptncontext"] == "ctx-ext"


async def test_header_names_are_case_insensitive(service: Service) -> None:
    """3.1.3.1 (note): header names are case-insensitive."""
    event = keptn_event()
    headers = {f"CE-{k.upper()}": str(v) for k, v in event.items() if k not in ("data", "datacontenttype")}
    headers["Content-Type"] = "application/json"
    status, text = await service.post(json.dumps(event["data"]).encode(), headers)
    assert status == 202, text
    seen = await service.wait_run(event["id"])
    assert seen["shkeptncontext"] == event["shkeptncontext"]


# ---- 3.1.3.2 header values: quoted-string, then one round of strict UTF-8 percent-decoding (item 2) ----
@pytest.mark.parametrize(
    ("sent", "decoded"),
    [
        ("Euro%20%E2%82%AC%20%F0%9F%98%80", "Euro \u20ac \U0001f600"),  # the binding's own example
        ("caf%c3%a9", "caf\u00e9"),  # decoding MUST accept lower-case hex
        ("%41%42C", "ABC"),  # unnecessarily encoded MUST be accepted
        ('"quoted value"', "quoted value"),  # a quoted-string MUST be unescaped first
        ('"say \\"hi\\""', 'say "hi"'),  # with backslash escapes inside
        ('"a%20b"', "a b"),  # quoted first, then percent-decoding
        ("100%2525", "100%25"),  # a single round of percent-decoding only
    ],
    ids=[
        "binding-example",
        "lower-case-hex",
        "unnecessary",
        "quoted",
        "quoted-escapes",
        "quoted-then-percent",
        "one-round",
    ],
)
async def test_header_values_are_decoded(served: tuple[Service, EventSink], sent: str, decoded: str) -> None:
    service, collector = served
    event = keptn_event()
    body, headers = binary_request(event, **{"ce-subject": sent, "ce-shkeptncontext": sent})
    status, text = await service.post(body, headers)
    assert status == 202, text
    seen = await service.wait_run(event["id"])
    assert seen["subject"] == decoded and seen["shkeptncontext"] == decoded
    # Keptn correlates by shkeptncontext: the answer must carry the decoded value.
    finished = await collector.wait_until(
        lambda e: e.get("triggeredid") == event["id"] and e["type"].endswith(".finished")
    )
    assert finished["shkeptncontext"] == decoded


@pytest.mark.parametrize(
    "sent",
    ["%C0%A0", "ok%E2%82", "%FF", "%ED%A0%80", '"%C0%A0"'],
    ids=["overlong", "truncated", "invalid-byte", "surrogate", "quoted-overlong"],
)
async def test_invalid_utf8_in_header_values_is_refused(service: Service, sent: str) -> None:
    """3.1.3.2: encoded byte sequences invalid in UTF-8 MUST be rejected (`%C0%A0` is the spec's example)."""
    event = keptn_event()
    body, headers = binary_request(event, **{"ce-shkeptncontext": sent})
    status, text = await service.post(body, headers)
    assert status == 400, text
    assert names_attribute(text, "shkeptncontext"), text


async def test_required_attribute_in_header_is_decoded_too(service: Service) -> None:
    """3.1.3.2 applies to every header value, `ce-id` included: the run sees the decoded id."""
    event_id = unique("id")
    event = keptn_event(event_id=event_id)
    body, headers = binary_request(event, **{"ce-id": f'"{event_id}"'})
    status, text = await service.post(body, headers)
    assert status == 202, text
    await service.wait_run(event_id)


# ---- 1.4 / 3.2.1: structured mode is the JSON format; 3.3.2: a batch MAY be empty ----
async def test_structured_json_format_with_charset(service: Service) -> None:
    event = keptn_event()
    status, text = await service.post(
        json.dumps(event).encode(), {"Content-Type": STRUCTURED + "; charset=UTF-8"}
    )
    assert status == 202, text
    await service.wait_run(event["id"])


async def test_empty_batch_is_accepted(service: Service) -> None:
    status, text = await service.post(b"[]", {"Content-Type": BATCH})
    assert (status, json.loads(text)) == (202, {"accepted": 0, "duplicate": 0})


async def test_batch_with_mixed_specversions_is_refused(service: Service) -> None:
    """3.3.2: all batched CloudEvents MUST have the same specversion."""
    first, second = keptn_event(), keptn_event()
    second["specversion"] = "0.3"
    status, text = await service.post(json.dumps([first, second]).encode(), {"Content-Type": BATCH})
    assert status == 400, text
    assert names_attribute(text, "specversion"), text


async def test_bare_json_without_ce_headers_is_binary_mode_and_refused(service: Service) -> None:
    """3: `application/json` is not `application/cloudevents...`, so it is binary mode, and a
    binary message without `ce-` headers is no CloudEvent; the answer says how to send one."""
    event = keptn_event()
    status, text = await service.post(json.dumps(event).encode(), {"Content-Type": "application/json"})
    assert status == 400, text
    assert "application/cloudevents+json" in text and "ce-specversion" in text, text


async def test_text_data_reaches_the_task_as_a_string(service: Service) -> None:
    """3.1.1 with a `text/*` Content-Type: the body is the data, a string (conformance
    validSimpleTextData), accepted rather than refused as not JSON."""
    event = keptn_event()
    headers = binary_headers(event, "text/plain; charset=utf-8")
    status, text = await service.post("Simple text \u20ac".encode(), headers)
    assert (status, json.loads(text)) == (202, {"accepted": 1, "duplicate": 0}), text
