"""Issue 14 items 4, 6, 7, 9 and 10 over HTTP: auth answers, attribute length caps, batch vs
queue size, refusals counted by reason, the webhook handshake, `data_base64`.

Setting names proposed for the implementer are in SPEC.md (MAX_ATTRIBUTE_BYTES,
WEBHOOK_ALLOWED_ORIGINS, WEBHOOK_ALLOWED_RATE).
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from tests.receivers.harness import (
    BATCH,
    ROUTING,
    STRUCTURED,
    Service,
    binary_headers,
    keptn_event,
    metric,
    names_attribute,
    start_service,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
LIMIT = 1024
QUEUE = 20
ORIGIN = "sender.example.com"
REJECTED = "job_executor_events_rejected_total"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def service(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Service]:
    env = {
        "RCV_AUTH_TOKEN": TOKEN,
        "MAX_ATTRIBUTE_BYTES": str(LIMIT),
        "QUEUE_SIZE": str(QUEUE),
        "WEBHOOK_ALLOWED_ORIGINS": ORIGIN,
        "WEBHOOK_ALLOWED_RATE": "120",
    }
    svc, collector = await start_service(tmp_path_factory.mktemp("hardening"), env)
    yield svc
    svc.stop()
    await collector.stop()
    assert "Traceback" not in svc.log_text()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def small(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Service]:
    """Default settings, one worker, a queue of two: for queue-full and off-by-default checks."""
    env = {"QUEUE_SIZE": "2", "MAX_CONCURRENT_RUNS": "1"}
    svc, collector = await start_service(tmp_path_factory.mktemp("small"), env)
    yield svc
    svc.gate.touch()  # release the blocked task so the service can stop promptly
    svc.stop()
    await collector.stop()
    assert "Traceback" not in svc.log_text()


async def post(
    service: Service, body: object, content_type: str = STRUCTURED, **headers: str
) -> tuple[int, str]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return await service.post(raw, {"Content-Type": content_type, **AUTH, **headers})


# ---- item 4: 401 carries WWW-Authenticate; the scheme is case-insensitive ----
async def test_401_carries_www_authenticate_bearer(service: Service) -> None:
    """RFC 7235 3.1: a 401 MUST carry a WWW-Authenticate challenge (RFC 6750 3: scheme Bearer)."""
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic dXNlcjpwdw=="}):
        status, answer, text = await service.request(
            "POST", "/", json.dumps(keptn_event()).encode(), {"Content-Type": STRUCTURED, **headers}
        )
        assert status == 401, text
        assert answer.get("WWW-Authenticate", "").split(" ")[0].lower() == "bearer", answer


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "Bearer"])
async def test_auth_scheme_is_case_insensitive(service: Service, scheme: str) -> None:
    """RFC 7235 2.1: the auth-scheme is a case-insensitive token."""
    event = keptn_event()
    status, text = await service.post(
        json.dumps(event).encode(), {"Content-Type": STRUCTURED, "Authorization": f"{scheme} {TOKEN}"}
    )
    assert status == 202, text
    await service.wait_run(event["id"])


# ---- item 6: attribute length caps, 400 naming the attribute and the limit ----
@pytest.mark.parametrize("attribute", ["id", "source", "type", "subject", "shkeptncontext"])
@pytest.mark.parametrize("mode", ["structured", "binary"])
async def test_attribute_longer_than_the_cap_is_refused(service: Service, attribute: str, mode: str) -> None:
    event = keptn_event()
    event[attribute] = "a" * (LIMIT + 1)
    if mode == "structured":
        status, text = await post(service, event)
    else:  # stays under aiohttp's 8 KiB header line limit: the cap must be ours
        status, text = await service.post(
            json.dumps(event["data"]).encode(), {**binary_headers(event), **AUTH}
        )
    assert status == 400, text
    assert names_attribute(text, attribute) and str(LIMIT) in text, text


# ---- CloudEvents String: no control characters, unpaired surrogates or noncharacters ----
# (cloudevents/spec cloudevents/spec.md "Type System"). A NUL in a source let two events' Job
# names collide before the name hash was mended; a newline in an id splits log lines.
@pytest.mark.parametrize(
    ("attribute", "value", "code"),
    [
        ("source", r"a\u0000b", "U+0000"),
        ("id", r"line\nbreak", "U+000A"),
        ("type", r"sh.keptn.event.test\u0085.triggered", "U+0085"),
        ("subject", r"\ud800", "U+D800"),
        ("shkeptncontext", r"x\ufffe", "U+FFFE"),
    ],
)
async def test_a_string_attribute_with_a_disallowed_character_is_refused(
    service: Service, attribute: str, value: str, code: str
) -> None:
    event = keptn_event()
    event[attribute] = "PLACEHOLDER"
    # Written as the JSON escape a sender would send (the values above are raw JSON text).
    raw = json.dumps(event).replace('"PLACEHOLDER"', '"' + value + '"', 1)
    status, text = await service.post(raw.encode(), {"Content-Type": STRUCTURED, **AUTH})
    assert status == 400, text
    assert names_attribute(text, attribute) and code in text, text


async def test_a_control_character_in_a_binary_header_is_refused(service: Service) -> None:
    event = keptn_event()
    headers = {**binary_headers(event), **AUTH, "ce-subject": "tab%09here"}
    status, text = await service.post(json.dumps(event["data"]).encode(), headers)
    assert status == 400, text
    assert names_attribute(text, "subject") and "U+0009" in text, text


async def test_a_paired_surrogate_and_other_unicode_are_accepted(service: Service) -> None:
    event = keptn_event()
    event["subject"] = "caf\u00e9 \U0001f680 \u00a0"  # é, a rocket (a pair in JSON), NBSP
    status, text = await post(service, event)
    assert status == 202, text
    await service.wait_run(event["id"])


async def test_a_60kb_type_is_refused(service: Service) -> None:
    """The issue's case: well under MAX_BODY_BYTES, far over any sane attribute size."""
    event = keptn_event(event_type="sh.keptn.event." + "x" * 60_000 + ".triggered")
    started = time.monotonic()
    status, text = await post(service, event)
    assert status == 400, text
    assert names_attribute(text, "type") and str(LIMIT) in text, text
    assert time.monotonic() - started < 2


async def test_attribute_at_the_cap_is_accepted(service: Service) -> None:
    event = keptn_event()
    event["subject"] = "s" * LIMIT
    status, text = await post(service, event)
    assert status == 202, text
    await service.wait_run(event["id"])


async def test_cap_applies_to_batch_members(service: Service) -> None:
    long = keptn_event()
    long["source"] = "s" * (LIMIT + 1)
    status, text = await post(service, [keptn_event(), long], BATCH)
    assert status == 400, text
    assert names_attribute(text, "source") and str(LIMIT) in text, text


# ---- item 7: a batch that can never fit is 413; every refusal is counted by reason ----
async def test_batch_larger_than_queue_size_is_413(service: Service) -> None:
    before = await service.metrics()
    batch = [keptn_event() for _ in range(QUEUE + 1)]
    status, text = await post(service, batch, BATCH)
    assert status == 413, text
    assert "QUEUE_SIZE" in text or str(QUEUE) in text, text
    after = await service.metrics()
    assert (
        metric(after, REJECTED, reason="batch_too_large") - metric(before, REJECTED, reason="batch_too_large")
        == 1
    )


async def test_batch_of_exactly_queue_size_is_not_413(service: Service) -> None:
    batch = [keptn_event() for _ in range(QUEUE)]
    status, text = await post(service, batch, BATCH)
    assert status in (202, 429), text


@pytest.mark.parametrize(
    ("reason", "status", "request_kwargs"),
    [
        ("unauthorized", 401, {"headers": {"Content-Type": STRUCTURED}}),
        ("malformed", 400, {"headers": {"Content-Type": STRUCTURED, **AUTH}, "body": b"{not json"}),
        (
            "too_large",
            413,
            {"headers": {"Content-Type": STRUCTURED, **AUTH}, "body": b"[" + b" " * (2 << 20) + b"]"},
        ),
    ],
)
async def test_refusals_are_counted_by_reason(
    service: Service, reason: str, status: int, request_kwargs: dict[str, object]
) -> None:
    before = await service.metrics()
    body = request_kwargs.get("body", json.dumps(keptn_event()).encode())
    assert isinstance(body, bytes)
    got, _, text = await service.request("POST", "/", body, request_kwargs["headers"])  # type: ignore[arg-type]
    assert got == status, text
    after = await service.metrics()
    assert metric(after, REJECTED, reason=reason) - metric(before, REJECTED, reason=reason) == 1


async def wait_started(gate: Path, count: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while len(list(gate.parent.glob(gate.name + ".started.*"))) < count:
        assert time.monotonic() < deadline, "the blocking task did not start"
        await asyncio.sleep(0.05)


async def test_429_is_counted_as_queue_full(small: Service) -> None:
    """One worker held by a blocking task, a queue of two: the fourth event cannot be taken."""
    blocking = {**keptn_event(), "data": {"project": "block", "stage": "dev", "service": "svc"}}
    status, text = await small.post(json.dumps(blocking).encode(), {"Content-Type": STRUCTURED})
    assert status == 202, text
    await wait_started(small.gate, 1)
    before = await small.metrics()
    answers = []
    for _ in range(6):  # bounded: two fit, the rest must be 429
        event = {**keptn_event(), "data": {"project": "block", "stage": "dev", "service": "svc"}}
        status, answer, text = await small.request(
            "POST", "/", json.dumps(event).encode(), {"Content-Type": STRUCTURED}
        )
        answers.append(status)
        if status == 429:
            assert answer.get("Retry-After"), answer
    assert answers.count(202) == 2 and answers.count(429) == 4, answers
    after = await small.metrics()
    assert metric(after, REJECTED, reason="queue_full") - metric(before, REJECTED, reason="queue_full") == 4
    small.gate.touch()


# ---- item 9: the CloudEvents webhook abuse-protection handshake ----
# cloudevents/spec: cloudevents/http-webhook.md section 4 (validation request and response).
async def test_webhook_handshake_answers_an_allowed_origin(service: Service) -> None:
    status, answer, text = await service.request(
        "OPTIONS", "/", headers={"WebHook-Request-Origin": ORIGIN, "WebHook-Request-Rate": "60"}
    )
    assert status == 200, text
    assert answer.get("WebHook-Allowed-Origin") == ORIGIN, answer
    assert "POST" in answer.get("Allow", ""), answer
    rate = answer.get("WebHook-Allowed-Rate", "")
    assert rate == "*" or (rate.isdigit() and int(rate) <= 120), answer


async def test_webhook_handshake_refuses_other_origins(service: Service) -> None:
    status, answer, _ = await service.request(
        "OPTIONS", "/", headers={"WebHook-Request-Origin": "evil.example"}
    )
    assert status in (403, 405)
    assert "WebHook-Allowed-Origin" not in answer


async def test_webhook_handshake_is_off_by_default(small: Service) -> None:
    status, answer, _ = await small.request("OPTIONS", "/", headers={"WebHook-Request-Origin": ORIGIN})
    assert status != 200 and status < 500
    assert "WebHook-Allowed-Origin" not in answer


# ---- item 10: data_base64 ----
@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8", "text/json"])
async def test_data_base64_with_json_content_type_is_decoded(service: Service, content_type: str) -> None:
    """cloudevents/spec: cloudevents/formats/json-format.md 3.1: a receiver MUST decode data_base64."""
    event = keptn_event()
    payload = {**ROUTING, "from": "base64"}
    del event["data"]
    event["datacontenttype"] = content_type
    event["data_base64"] = base64.b64encode(json.dumps(payload).encode()).decode()
    status, text = await post(service, event)
    assert status == 202, text
    seen = await service.wait_run(event["id"])
    assert seen["data"] == payload


async def test_data_base64_in_a_batch_is_decoded(service: Service) -> None:
    event = keptn_event()
    payload = dict(event.pop("data"))
    event["data_base64"] = base64.b64encode(json.dumps(payload).encode()).decode()
    status, text = await post(service, [event], BATCH)
    assert status == 202, text
    assert (await service.wait_run(event["id"]))["data"] == payload


@pytest.mark.parametrize("content_type", ["application/octet-stream", "image/png", None])
async def test_binary_data_that_is_not_json_is_refused_with_the_reason(
    service: Service, content_type: str | None
) -> None:
    event = keptn_event()
    del event["data"]
    if content_type is None:
        del event["datacontenttype"]
    else:
        event["datacontenttype"] = content_type
    event["data_base64"] = base64.b64encode(b"\x89PNG\r\n\x1a\n").decode()
    status, text = await post(service, event)
    assert status == 400, text
    assert names_attribute(text, "datacontenttype") or names_attribute(text, "data_base64"), text


async def test_data_base64_that_is_not_base64_is_refused(service: Service) -> None:
    event = keptn_event()
    del event["data"]
    event["data_base64"] = "not base64 !!"
    status, text = await post(service, event)
    assert status == 400, text
    assert names_attribute(text, "data_base64"), text


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
@pytest.mark.parametrize("mode", ["structured", "binary", "data_base64"])
async def test_nan_and_infinity_are_not_json_and_are_refused(
    service: Service, constant: str, mode: str
) -> None:
    # Python's JSON reader takes them; no other does (RFC 8259), and a report carrying them back
    # would be refused by its receiver, or turned into null by orjson.
    event = keptn_event()
    data = json.dumps(event["data"])[:-1] + f', "score": {constant}}}'
    if mode == "structured":
        raw = json.dumps(event)
        status, text = await post(service, raw.replace(json.dumps(event["data"]), data).encode())
    elif mode == "binary":
        headers = binary_headers(event)
        status, text = await service.post(data.encode(), {**headers, **AUTH})
    else:
        del event["data"]
        event["data_base64"] = base64.b64encode(data.encode()).decode()
        status, text = await post(service, event)
    assert status == 400, text
    assert constant.lstrip("-") in text or "data_base64" in text, text
