"""Job names and labels: the JES shape where the id allows, always DNS-safe and deterministic."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from executor.backends.naming import JOB_NAME_PREFIX, event_id_part, job_name, label_value

from .conftest import DNS_LABEL, LABEL_VALUE

UUID = "f2b878d3-03c0-4e8f-bc3f-454bc1b3d79b"
HASHED = re.compile(rf"^{JOB_NAME_PREFIX}-[0-9a-f]{{24}}-\d{{3}}-\d{{3}}$")


def test_uuids_sharing_24_characters_get_different_names() -> None:
    # Issue 13 item 1: JES kept the id's first 24 characters, so these two events shared a task.
    other = UUID[:24] + "000000000000"
    assert job_name(UUID, "s", 0, 1) != job_name(other, "s", 0, 1)


def test_the_same_uuid_from_two_sources_gets_two_names() -> None:
    assert job_name(UUID, "project-a", 0, 1) != job_name(UUID, "project-b", 0, 1)


def test_jes_prefix_and_suffixes_are_kept() -> None:
    name = job_name(UUID, "shipyard-controller", 0, 1)
    assert HASHED.match(name), name
    assert len(name) == 57
    assert len(f"init-{name}") == 62


def test_indexes_are_three_digits() -> None:
    assert job_name(UUID, "s", 998, 999).endswith("-998-999")
    assert job_name(UUID, "s", 7, 12).endswith("-007-012")


@pytest.mark.parametrize(
    "event_id",
    [
        "1",  # JES crashed on ids shorter than 24 characters
        "abc",
        "",
        "x" * 24,
        "ABCDEFGHIJKLMNOPQRSTUVWX",
        "f2b878d3-03c0-4e8f-bc3f-454bc1b3d79",  # almost a UUID
        "Event_ID with spaces/and/slashes",
        "ü" * 40,
        "a" * 500,
    ],
)
def test_every_id_is_hashed(event_id: str) -> None:
    name = job_name(event_id, "source", 0, 1)
    assert HASHED.match(name), name
    assert len(name) == 57 and DNS_LABEL.match(name)


def test_same_id_from_different_sources_gets_different_names() -> None:
    assert job_name("42", "source-a", 0, 1) != job_name("42", "source-b", 0, 1)
    assert job_name("x" * 24, "a", 0, 1) != job_name("x" * 24, "b", 0, 1)


def test_ids_sharing_a_prefix_get_different_names() -> None:
    base = "event-" + "0" * 30
    assert job_name(base + "1", "s", 0, 1) != job_name(base + "2", "s", 0, 1)


def test_names_are_pinned_across_releases() -> None:
    # Known values, not f(x) == f(x): a changed hash or layout would rename the Jobs of events
    # already in flight, and a restarted service would run their tasks a second time.
    assert event_id_part("abc", "s") == "35c78848b9fa3808bd59748d"  # sha256("s\x00abc")[:24]
    assert job_name("abc", "s", 1, 2) == "job-executor-service-job-35c78848b9fa3808bd59748d-001-002"
    assert job_name("42", "source-a", 0, 1) == "job-executor-service-job-b7849893bcb523177edfb50b-000-001"
    assert (
        job_name(UUID, "shipyard-controller", 0, 1)
        == "job-executor-service-job-04e3db2a855d067f8c06c5d9-000-001"
    )


def test_non_uuid_ids_differing_only_in_case_get_different_names() -> None:
    assert job_name("Event-A", "s", 0, 1) != job_name("event-a", "s", 0, 1)
    assert job_name("ABC", "s", 0, 1) != job_name("abc", "s", 0, 1)


@settings(max_examples=300, deadline=None)
@given(
    st.text(max_size=80),
    st.text(max_size=40),
    st.integers(min_value=0, max_value=998),
    st.integers(min_value=1, max_value=999),
)
def test_job_name_is_always_dns_safe(event_id: str, source: str, action: int, task: int) -> None:
    name = job_name(event_id, source, action, task)
    assert len(name) <= 57
    assert len(f"init-{name}") <= 63
    assert DNS_LABEL.match(name), name
    assert name.endswith(f"-{action:03d}-{task:03d}")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60), st.text(max_size=60), st.text(max_size=10), st.text(max_size=10))
def test_different_events_get_different_names(id_a: str, id_b: str, src_a: str, src_b: str) -> None:
    if (id_a, src_a) == (id_b, src_b):
        return
    assert job_name(id_a, src_a, 0, 1) != job_name(id_b, src_b, 0, 1)


# ---- label values ----


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Run locust", "Run_locust"),
        ("Run locust tests", "Run_locust_tests"),
        ("ok.value-1_2", "ok.value-1_2"),
        ("-leading and trailing-", "leading_and_trailing"),
        ("__x__", "x"),
        ("...", ""),
        ("", ""),
        ("a/b:c", "a_b_c"),
        ("ümlaut", "mlaut"),  # one invalid character, replaced, then trimmed
        ("x" * 70, "x" * 63),
        ("x" * 62 + "-yyy", "x" * 62),  # cut to 63, then trimmed
    ],
)
def test_label_value(text: str, expected: str) -> None:
    assert label_value(text) == expected


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=100))
def test_label_value_is_always_valid(text: str) -> None:
    value = label_value(text)
    assert len(value) <= 63
    assert LABEL_VALUE.match(value), value
    assert label_value(value) == value  # already clean values stay as they are
