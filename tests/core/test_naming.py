"""Job names and labels: the JES shape where the id allows, always DNS-safe and deterministic."""

from __future__ import annotations

import hashlib
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from executor.backends.naming import (
    JOB_NAME_PREFIX,
    event_id_part,
    job_annotations,
    job_labels,
    job_name,
    label_value,
    selector,
    spec_job_name,
)
from executor.model.tasks import TaskSpec, Trigger

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


def test_the_hash_is_sha256_of_source_nul_id() -> None:
    # The documented recipe, recomputed here from hashlib, for ids of any length and shape.
    for event_id, source in [("abc", "s"), (UUID, "shipyard-controller"), ("x" * 300, ""), ("ü", "q")]:
        expected = hashlib.sha256(f"{source}\x00{event_id}".encode()).hexdigest()[:24]
        assert event_id_part(event_id, source) == expected


def test_a_nul_in_the_source_does_not_run_into_the_id() -> None:
    # ("a\x00b", "c") and ("a", "b\x00c") were both hashed as "a\x00b\x00c": the second event was
    # adopted into the first one's Job. CloudEvents forbids control characters in Strings, but
    # the service does not refuse them; a source holding NUL is hashed as JSON instead.
    assert job_name("b\x00c", "a", 0, 1) != job_name("c", "a\x00b", 0, 1)
    assert job_name("", "a\x00x", 0, 1) != job_name("x", "a\x00", 0, 1)
    assert event_id_part("c", "a\x00b") == "9408326ff9550b02a09a4014"  # sha256('["a\\u0000b", "c"]')
    assert event_id_part("b\x00c", "a") == "8badde10c760e9b702defb4b"  # the plain form, as before
    assert HASHED.match(job_name("c", "a\x00b", 0, 1))


def test_a_lone_surrogate_in_the_id_is_named_not_a_crash() -> None:
    # JSON may escape one ("\ud800"); strict UTF-8 refuses to encode it.
    assert event_id_part("\ud800", "s") == "c03ef8b421c3c0b6e0a5fe48"
    assert job_name("\ud800", "s", 0, 1) != job_name("\udc00", "s", 0, 1)


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


# A tiny alphabet with NUL, so texts that run into each other at the separator come up often.
_tiny = st.text(alphabet="a\x00", max_size=4)


@settings(max_examples=300, deadline=None)
@given(_tiny, _tiny, _tiny, _tiny)
def test_no_two_events_share_a_name_across_the_separator(
    id_a: str, id_b: str, src_a: str, src_b: str
) -> None:
    if (id_a, src_a) != (id_b, src_b):
        assert event_id_part(id_a, src_a) != event_id_part(id_b, src_b)


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


def test_label_values_keep_letters_the_trim_does_not_name() -> None:
    # Only '-', '_' and '.' are trimmed from the ends; letters such as X stay.
    assert label_value("X-ray") == "X-ray"
    assert label_value("XxX") == "XxX"
    assert label_value("-._X_.-") == "X"


# ---- the selector, labels and annotations of a task's Job ----


def test_selector_finds_the_jobs_of_one_deployment() -> None:
    assert selector() == "app.kubernetes.io/managed-by=job-executor"
    assert selector("job-executor-service") == "app.kubernetes.io/managed-by=job-executor-service"
    # The label value the Jobs carry is sanitized, so the selector must be too.
    assert selector("my deploy/x") == "app.kubernetes.io/managed-by=my_deploy_x"


def _spec(
    event_id: str = "ev-1",
    *,
    event_json: str = "",
    extra_labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
) -> TaskSpec:
    trigger = Trigger(
        event_id=event_id,
        event_source="shipyard-controller",
        event_type="sh.keptn.event.test.triggered",
        keptn_context="ctx 1",
        project="sockshop",
        stage="dev",
        service="carts",
        git_commit_id="c0ffee",
        event_json=event_json,
    )
    return TaskSpec(
        trigger=trigger,
        action_name="Run locust",
        action_index=2,
        task_name="Load tests/1",
        task_index=3,
        config_digest="sha256:abc",
        image="alpine",
        cmd=(),
        args=(),
        env=(),
        secret_refs=(),
        files=(),
        working_dir=None,
        limits={},
        requests={},
        init_limits={},
        init_requests={},
        max_poll_duration=60,
        ttl_seconds_after_finished=600,
        active_deadline_seconds=None,
        namespace="keptn",
        annotations=annotations or {},
        security_context={},
        image_pull_policy=None,
        service_account=None,
        automount_service_account_token=False,
        extra_labels=extra_labels or {},
    )


def test_spec_job_name_is_named_by_its_event_and_indexes() -> None:
    assert spec_job_name(_spec("E-1")) == "job-executor-service-job-1e3085866f838e945e2f0fab-002-003"
    assert spec_job_name(_spec("E-1")) == job_name("E-1", "shipyard-controller", 2, 3)


def test_job_labels_are_the_jes_labels() -> None:
    assert job_labels(_spec(), "jes") == {
        "app.kubernetes.io/managed-by": "jes",
        "keptn.sh/context": "ctx_1",
        "keptn.sh/event-id": "ev-1",
        "keptn.sh/commitid": "c0ffee",
        "keptn.sh/jes-action": "Run_locust",
        "keptn.sh/jes-task": "Load_tests_1",
        "keptn.sh/jes-job-confighash": "sha256_abc",
        "keptn.sh/jes-action-index": "2",
        "keptn.sh/jes-task-index": "2",  # 0-based, as JES wrote it; the Job name counts from 1
    }
    assert job_labels(_spec())["app.kubernetes.io/managed-by"] == "job-executor"
    assert job_labels(_spec(), "my deploy")["app.kubernetes.io/managed-by"] == "my_deploy"


def test_configured_labels_are_sanitized_and_cannot_hide_a_job() -> None:
    # A configured label named like one of ours must not move the Job out of the selector.
    labels = job_labels(
        _spec(extra_labels={"team": "load tests", "app.kubernetes.io/managed-by": "other"}), "jes"
    )
    assert labels["team"] == "load_tests"
    assert labels["app.kubernetes.io/managed-by"] == "jes"


def test_job_annotations_keep_the_full_texts() -> None:
    long_id = "e" * 100  # a label value would be cut to 63
    assert job_annotations(_spec(long_id, annotations={"note": "kept as is"})) == {
        "note": "kept as is",
        "keptn.sh/event-id": long_id,
        "keptn.sh/event-source": "shipyard-controller",
        "keptn.sh/event-type": "sh.keptn.event.test.triggered",
        "keptn.sh/context": "ctx 1",
        "keptn.sh/project": "sockshop",
        "keptn.sh/stage": "dev",
        "keptn.sh/service": "carts",
        "keptn.sh/jes-action": "Run locust",
        "keptn.sh/jes-task": "Load tests/1",
    }


def test_the_event_rides_along_when_present_and_wins_over_configured_annotations() -> None:
    spec = _spec(event_json='{"id":"ev-1"}', annotations={"keptn.sh/event-id": "forged"})
    annotations = job_annotations(spec)
    assert annotations["keptn.sh/event"] == '{"id":"ev-1"}'
    assert annotations["keptn.sh/event-id"] == "ev-1"
    assert "keptn.sh/event" not in job_annotations(_spec())
