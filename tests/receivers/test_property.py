"""Random headers and bodies against a real `job-executor serve` (hypothesis, bounded examples):
never a 5xx, never a traceback in the log, never 202 for an invalid event, and every accepted
event leads to exactly one run (a 202's duplicates are dedups, counted in /metrics).

Validity is judged by an independent oracle written from the JSON format
(cloudevents/spec: cloudevents/formats/json-format.md) and the core attribute rules
(cloudevents/spec: cloudevents/spec.md, "Context Attributes"), for structured-mode requests
whose body the test built; for fuzzed binary requests only the safety properties hold.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import pytest
import pytest_asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.receivers.harness import ROUTING, STRUCTURED, Service, metric, start_service

pytestmark = pytest.mark.asyncio(loop_scope="module")

RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
NAME = re.compile(r"^[a-z0-9]{1,20}$")
EXAMPLES: list[int] = []  # proves the examples really ran (an async body that is never awaited passes)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def service(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Service]:
    svc, collector = await start_service(tmp_path_factory.mktemp("property"), {"QUEUE_SIZE": "500"})
    yield svc
    svc.stop()
    await collector.stop()


def valid_time(value: str) -> bool:
    if not RFC3339.match(value):
        return False
    try:
        parsed = datetime.fromisoformat(re.sub(r"\.(\d{1,6})\d*", r".\1", value).replace("Z", "+00:00"))
    except ValueError:
        return False
    return parsed.utcoffset() is not None and abs(parsed.utcoffset().total_seconds()) < 24 * 3600  # type: ignore[union-attr]


def is_valid(event: Any) -> bool:
    """The oracle: a structured-mode event that every conforming receiver accepts."""
    if not isinstance(event, dict):
        return False
    for name in ("specversion", "id", "source", "type"):
        if not isinstance(event.get(name), str) or not event[name]:
            return False
    if event["specversion"] != "1.0":
        return False
    for name, value in event.items():
        if name in ("data",):
            continue
        if not NAME.match(name):
            return False
        if value is None:
            continue
        if isinstance(value, (dict, list, float)):
            return False
        # Core attributes typed String, URI-reference or Timestamp are JSON strings
        # (json-format.md 2.2), and not empty when present (spec.md, "subject" and kin).
        if name in ("subject", "dataschema", "datacontenttype", "time") and not (
            isinstance(value, str) and value
        ):
            return False
        if name == "time" and not (isinstance(value, str) and valid_time(value)):
            return False
        if isinstance(value, str) and len(value.encode()) > 4096:
            return False
    return "datacontenttype" not in event or event["datacontenttype"] in (None, "application/json")


ATTRIBUTE_NAMES = st.sampled_from(
    ["subject", "time", "dataschema", "datacontenttype", "shkeptncontext", "ext1", "Bad", "x.y"]
)
VALUES = st.one_of(
    st.none(),
    st.text(max_size=12),
    st.integers(-5, 5),
    st.booleans(),
    st.sampled_from(
        ["2018-04-05T17:31:00Z", "lunchtime", "2018-04-05T18:31:00+25:00", "application/json", ""]
    ),
    st.floats(allow_nan=False, allow_infinity=False, width=16),
)
EVENTS = st.fixed_dictionaries(
    {
        "specversion": st.sampled_from(["1.0"] * 8 + ["0.3", ""]),
        "id": st.sampled_from([""] + ["x"] * 9).flatmap(
            lambda x: st.text(alphabet="abcdef0123456789-", min_size=len(x), max_size=16)
        ),
        "source": st.sampled_from(["prop"] * 6 + ["", "/a/b", "#frag"]),
        "type": st.sampled_from(["sh.keptn.event.t.triggered"] * 6 + ["io.x", ""]),
        "extra": st.dictionaries(ATTRIBUTE_NAMES, VALUES, min_size=1, max_size=3),
    },
).map(lambda e: {**{k: v for k, v in e.items() if k != "extra"}, **e.get("extra", {})})
HEADER_NAMES = st.sampled_from(
    ["ce-id", "ce-source", "ce-type", "ce-specversion", "ce-time", "ce-subject", "Content-Type", "ce-x"]
)
HEADER_VALUES = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=20)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,
)
@given(event=EVENTS, salt=st.integers(0, 10**9))
async def test_random_structured_events(service: Service, event: dict[str, Any], salt: int) -> None:
    EXAMPLES.append(1)
    if event.get("id"):
        event["id"] = f"{event['id']}-{salt}"  # a fresh id per example: dedup is checked on purpose below
    event["data"] = dict(ROUTING)
    before = await service.metrics()
    status, text = await service.post(json.dumps(event).encode(), {"Content-Type": STRUCTURED})
    assert status < 500, text
    if not is_valid(event):
        assert status == 400, f"an invalid event was answered {status}: {event}"
        return
    assert status == 202, f"{text}: {event}"
    after = await service.metrics()
    counted = metric(after, "job_executor_events_received_total") - metric(
        before, "job_executor_events_received_total"
    )
    deduped = metric(after, "job_executor_events_duplicate_total") - metric(
        before, "job_executor_events_duplicate_total"
    )
    assert counted + deduped == 1
    if counted and event["type"].startswith("sh.keptn.event.") and not event.get("shkeptncontext"):
        # A Keptn task event Keptn could not correlate an answer to runs nothing, and says so.
        await service.wait_log(f"{event['id']} from {event['source']} lacks shkeptncontext")
    elif counted:
        await service.wait_run(event["id"])


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,
)
@given(headers=st.dictionaries(HEADER_NAMES, HEADER_VALUES, max_size=6), body=st.binary(max_size=64))
async def test_random_binary_requests(service: Service, headers: dict[str, str], body: bytes) -> None:
    status, text = await service.post(body, headers)
    assert status < 500, text
    assert status in (202, 400, 415), text


async def test_zz_every_accepted_event_ran_once_and_no_traceback(service: Service) -> None:
    """Every accepted routed event ran at most once (each waited for its own run above); no traceback."""
    assert len(EXAMPLES) >= 30, f"only {len(EXAMPLES)} structured examples ran"
    runs = [json.loads(p.read_text()) for p in service.runs.glob("*.json")]
    ids = [(run.get("source"), run.get("id")) for run in runs]
    assert len(ids) == len(set(ids)), "an event ran twice"
    assert "Traceback" not in service.log_text()
