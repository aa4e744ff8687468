"""How a finished Job is told: failure reasons, log excerpts, results (pure functions), and a
Job that failed without ever getting a pod (through the fake)."""

from __future__ import annotations

import asyncio
from typing import Any

from executor.backends.base import MAX_LOG_EXCERPT
from executor.backends.kubernetes.backend import KubernetesBackend
from executor.backends.kubernetes.harvest import combine_logs, failure_reason, result_of, warning_events
from tests.kubeapi.server import FakeKubeAPI
from tests.kubernetes.conftest import NAMESPACE, make_spec

FAILED_JOB: dict[str, Any] = {
    "metadata": {"name": "j"},
    "status": {
        "conditions": [
            {"type": "FailureTarget", "status": "True", "reason": "BackoffLimitExceeded"},
            {
                "type": "Failed",
                "status": "True",
                "reason": "BackoffLimitExceeded",
                "message": "Job has reached the specified backoff limit",
            },
        ]
    },
}


def pod_with(main_state: dict[str, Any]) -> dict[str, Any]:
    return {
        "metadata": {"name": "j-abcde"},
        "spec": {"containers": [{"name": "j"}]},
        "status": {"containerStatuses": [{"name": "j", "state": main_state}]},
    }


def event(reason: str, message: str, when: str, kind: str = "Warning") -> dict[str, Any]:
    return {"type": kind, "reason": reason, "message": message, "lastTimestamp": when}


def test_an_image_that_cannot_be_pulled_is_named() -> None:
    pod = pod_with({"waiting": {"reason": "ImagePullBackOff", "message": 'Back-off pulling image "nope:1"'}})
    events = [
        event("Failed", 'Failed to pull image "nope:1": not found', "2024-01-01T00:00:02Z"),
        event("Pulling", 'Pulling image "nope:1"', "2024-01-01T00:00:01Z", kind="Normal"),
        event("Failed", 'Failed to pull image "nope:1": not found', "2024-01-01T00:00:03Z"),
    ]
    reason = failure_reason(FAILED_JOB, pod, events)
    assert reason == (
        'container did not start: ImagePullBackOff (Back-off pulling image "nope:1"); '
        "Job BackoffLimitExceeded (Job has reached the specified backoff limit); "
        'events: Failed: Failed to pull image "nope:1": not found'
    )


def test_oom_kill_is_named_with_the_exit_code() -> None:
    pod = pod_with({"terminated": {"exitCode": 137, "reason": "OOMKilled"}})
    assert failure_reason(FAILED_JOB, pod, []).startswith(
        "exit code 137 (OOMKilled); Job BackoffLimitExceeded"
    )


def test_only_the_last_few_warnings_are_quoted() -> None:
    events = [event(f"R{i}", "m" * 1000, f"2024-01-01T00:00:{i:02d}Z") for i in range(12)]
    quoted = warning_events(events)
    assert [q.split(":")[0] for q in quoted] == ["R7", "R8", "R9", "R10", "R11"]
    assert all(len(q) <= 300 for q in quoted)


def test_logs_of_two_containers_share_the_excerpt_budget() -> None:
    assert combine_logs([("init container i", ""), ("container j", "only\n")]) == "only\n"
    text = combine_logs([("init container i", "a" * 10_000), ("container j", "b" * 10_000)])
    assert text.startswith("--- init container i ---\n[...]\n")
    assert "--- container j ---\n[...]\n" in text
    assert len(text) <= MAX_LOG_EXCERPT + 100


def test_result_is_the_termination_message() -> None:
    assert result_of(pod_with({"terminated": {"exitCode": 0, "message": '{"a": 1}'}}), "j") == b'{"a": 1}'
    assert result_of(pod_with({"terminated": {"exitCode": 0}}), "j") is None
    assert result_of(None, "j") is None


async def test_job_that_never_got_a_pod_reports_its_own_events(
    kube_api: FakeKubeAPI, backend: KubernetesBackend
) -> None:
    spec = make_spec()
    handle = await backend.submit(spec, {})
    kube_api.add_event(
        NAMESPACE,
        "Job",
        handle.name,
        "FailedCreate",
        'Error creating: pods "x" is forbidden: exceeded quota: compute, requested: cpu=1',
        type="Warning",
    )
    condition = {
        "type": "Failed",
        "status": "True",
        "reason": "DeadlineExceeded",
        "message": "Job was active longer than specified deadline",
        "lastTransitionTime": "2024-01-01T00:00:00Z",
    }
    kube_api.patch("jobs", NAMESPACE, handle.name, {"status": {"failed": 0, "conditions": [condition]}})
    outcome = await asyncio.wait_for(backend.wait(handle, spec), 5)
    assert outcome.status == "failed"
    assert outcome.reason == (
        "Job DeadlineExceeded (Job was active longer than specified deadline); no pod was found; "
        'events: FailedCreate: Error creating: pods "x" is forbidden: exceeded quota: compute, requested: cpu=1'
    )
