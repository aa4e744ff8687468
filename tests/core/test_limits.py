"""Limits and literal values users and running clusters rely on, pinned as literals.

Each test writes the number or text itself instead of importing the implementation's constant, so
changing the constant fails here and the change has to be made on purpose (and noted in FEATURES.md
or the upgrade notes).
"""

from __future__ import annotations

import json

import pytest

from executor.backends import naming
from executor.backends.kubernetes.render import render_task
from executor.config.fields import MAX_ITEMS
from executor.planner import MAX_EVENT_ANNOTATION, trigger_of

from .conftest import config, make_event, one_task, problems
from .test_render import OPTIONS, specs_for

# ---- the event rides on the Job as an annotation up to 32 KiB ----


def _event_of_json_length(length: int) -> str:
    """An event whose JSON text is exactly `length` characters."""
    base = len(make_event(data={"pad": ""}).to_json())
    event = make_event(data={"pad": "x" * (length - base)})
    text = event.to_json()
    assert len(text) == length
    return text


def test_event_annotation_cap_is_32_kib() -> None:
    assert MAX_EVENT_ANNOTATION == 32768


def test_an_event_of_exactly_32_kib_rides_along() -> None:
    text = _event_of_json_length(32768)
    event = make_event(data=json.loads(text)["data"])
    assert trigger_of(event).event_json == text


def test_an_event_one_byte_over_32_kib_is_left_off() -> None:
    text = _event_of_json_length(32769)
    event = make_event(data=json.loads(text)["data"])
    assert trigger_of(event).event_json == ""


def test_a_large_event_is_not_annotated_on_the_job() -> None:
    big = {"project": "sockshop", "stage": "dev", "service": "carts", "pad": "x" * 40000}
    (spec,) = specs_for(one_task("image: alpine"), event=make_event(data=big))
    job = render_task(spec, OPTIONS)[0]
    assert "keptn.sh/event" not in job["metadata"]["annotations"]
    (small,) = specs_for(one_task("image: alpine"))
    job = render_task(small, OPTIONS)[0]
    assert json.loads(job["metadata"]["annotations"]["keptn.sh/event"])["id"] == small.trigger.event_id


# ---- the label that finds our Jobs: renaming it would orphan running Jobs after an upgrade ----


def test_managed_by_label_and_selector_are_literal() -> None:
    assert naming.L_MANAGED_BY == "app.kubernetes.io/managed-by"
    assert naming.MANAGED_BY == "job-executor"
    assert naming.SELECTOR == "app.kubernetes.io/managed-by=job-executor"


def test_rendered_job_carries_the_literal_managed_by_label() -> None:
    (spec,) = specs_for(one_task("image: alpine"))
    for obj in render_task(spec, OPTIONS):
        if obj["kind"] == "Job":
            assert obj["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "job-executor"
            template = obj["spec"]["template"]["metadata"]["labels"]
            assert template["app.kubernetes.io/managed-by"] == "job-executor"


def test_job_name_prefix_is_literal() -> None:
    # JES names its Jobs so (keptn-contrib/job-executor-service: pkg/eventhandler/eventhandlers.go,
    # "job-executor-service-job-%s-%03d-%03d" with the first 24 characters of the event id).
    assert naming.JOB_NAME_PREFIX == "job-executor-service-job"
    assert naming.ID_PART_LENGTH == 24


# ---- MAX_ITEMS: at most 999 actions or tasks (the index has three digits in a Job name) ----


def test_max_items_is_999() -> None:
    assert MAX_ITEMS == 999


def _actions(count: int) -> str:
    action = '  - name: "a%d"\n    events: [{name: "e"}]\n    tasks: [{name: t, image: i}]\n'
    return "apiVersion: v2\nactions:\n" + "".join(action % i for i in range(count))


def test_999_actions_parse_and_1000_do_not() -> None:
    assert len(config(_actions(999)).actions) == 999
    (problem,) = problems(_actions(1000))
    assert "1000 actions; at most 999 fit in a job name" in problem.message


def test_999_tasks_parse_and_1000_do_not() -> None:
    def one_action(count: int) -> str:
        tasks = ", ".join(f"{{name: t{i}, image: i}}" for i in range(count))
        return f'apiVersion: v2\nactions:\n  - name: "a"\n    events: [{{name: "e"}}]\n    tasks: [{tasks}]\n'

    assert len(config(one_action(999)).actions[0].tasks) == 999
    (problem,) = problems(one_action(1000))
    assert "has 1000 entries; at most 999" in problem.message


# ---- serviceAccount: a DNS subdomain of at most 253 characters ----


def _account(length: int) -> str:
    # Labels of 63 characters joined by dots, cut to the length, never ending in a dot.
    text = ".".join(["a" * 63] * 5)[:length]
    assert len(text) == length and not text.endswith(".")
    return text


def test_service_account_of_253_characters_is_accepted() -> None:
    name = _account(253)
    task = config(one_task(f"image: alpine\nserviceAccount: {name}")).actions[0].tasks[0]
    assert task.service_account == name


def test_service_account_of_254_characters_is_refused() -> None:
    name = _account(251) + "aaa"
    assert len(name) == 254
    (problem,) = problems(one_task(f"image: alpine\nserviceAccount: {name}"))
    assert "is not a valid Kubernetes name" in problem.message


# ---- activeDeadlineSeconds: at least 1 ----


def test_active_deadline_seconds_of_1_is_the_least_accepted() -> None:
    task = config(one_task("image: alpine\nactiveDeadlineSeconds: 1")).actions[0].tasks[0]
    assert task.active_deadline_seconds == 1
    (spec,) = specs_for(one_task("image: alpine\nactiveDeadlineSeconds: 1"))
    job = render_task(spec, OPTIONS)[0]
    assert job["spec"]["activeDeadlineSeconds"] == 1


@pytest.mark.parametrize("value", [0, -1])
def test_active_deadline_seconds_below_1_is_refused(value: int) -> None:
    (problem,) = problems(one_task(f"image: alpine\nactiveDeadlineSeconds: {value}"))
    assert "activeDeadlineSeconds" in problem.message
