"""Pods that can never start fail their task once the start grace has passed: the Job deleted,
the kubelet's or the scheduler's reason and message in the outcome (issue 13 item 12;
keptn-contrib/job-executor-service#235, #402). The pod is read only for Jobs still active after
the grace, once for a pod that started."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime

import pytest

from executor.backends.kubernetes.backend import KubernetesBackend
from tests.kubeapi.server import FakeKubeAPI
from tests.kubernetes.conftest import NAMESPACE, BackendFactory, eventually, make_spec, submitted_and_waiting

GRACE = 0.5


@pytest.fixture
async def graced(backend_factory: BackendFactory) -> KubernetesBackend:
    backend = backend_factory(pod_start_grace=GRACE, pod_check_interval=0.05)
    await backend.start()
    return backend


def pod_reads(api: FakeKubeAPI) -> int:
    """Lists of pods (the check, the outcome's read); not log reads."""
    return sum(r.path.endswith(f"/namespaces/{NAMESPACE}/pods") for r in api.requests("GET", watch=False))


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("ImagePullBackOff", 'container {job} ImagePullBackOff (Back-off pulling image "alpine:3.20")'),
        ("ErrImagePull", "container {job} ErrImagePull (failed to pull and unpack image"),
        ("InvalidImageName", "container {job} InvalidImageName (Failed to apply default image tag"),
        ("CreateContainerConfigError", "container {job} CreateContainerConfigError ("),
    ],
)
async def test_a_container_that_cannot_start_fails_the_task_after_the_grace(
    kube_api: FakeKubeAPI, graced: KubernetesBackend, reason: str, expected: str
) -> None:
    spec = make_spec(max_poll_duration=600)
    _, handle, waiter = await submitted_and_waiting(graced, kube_api, spec)
    created = kube_api.get("jobs", NAMESPACE, handle.name)["metadata"]["creationTimestamp"]  # type: ignore[index]
    kube_api.set_pod_waiting(NAMESPACE, handle.name, reason)
    outcome = await asyncio.wait_for(waiter, 10)  # not maxPollDuration's 600 s
    # judged once the grace since the Job's creation (a timestamp in whole seconds) had passed
    assert time.time() >= datetime.fromisoformat(created.replace("Z", "+00:00")).timestamp() + GRACE
    assert outcome.status == "failed"
    assert outcome.reason.startswith("the pod could not start: " + expected.format(job=handle.name)), (
        outcome.reason
    )
    assert "(POD_START_GRACE_SECONDS); the Job was deleted; events: " in outcome.reason
    assert kube_api.get("jobs", NAMESPACE, handle.name) is None


async def test_a_missing_secret_is_named(kube_api: FakeKubeAPI, graced: KubernetesBackend) -> None:
    _, handle, waiter = await submitted_and_waiting(graced, kube_api)
    kube_api.set_pod_waiting(
        NAMESPACE, handle.name, "CreateContainerConfigError", 'secret "db-creds" not found'
    )
    outcome = await asyncio.wait_for(waiter, 10)
    assert 'CreateContainerConfigError (secret "db-creds" not found)' in outcome.reason
    assert 'events: Failed: Error: secret "db-creds" not found' in outcome.reason


async def test_an_unschedulable_pod_fails_the_task_with_the_schedulers_message(
    kube_api: FakeKubeAPI, graced: KubernetesBackend
) -> None:
    _, handle, waiter = await submitted_and_waiting(graced, kube_api)
    kube_api.set_pod_unschedulable(NAMESPACE, handle.name)
    outcome = await asyncio.wait_for(waiter, 10)
    assert outcome.reason.startswith(
        "the pod could not start: Unschedulable (0/1 nodes are available: 1 Insufficient cpu."
    ), outcome.reason
    assert "events: FailedScheduling: 0/1 nodes are available" in outcome.reason
    assert kube_api.get("jobs", NAMESPACE, handle.name) is None


async def test_a_pod_that_started_is_read_once_after_the_grace(
    kube_api: FakeKubeAPI, graced: KubernetesBackend
) -> None:
    spec = make_spec()
    handle = await graced.submit(spec, {})
    kube_api.set_pod_waiting(NAMESPACE, handle.name, "ImagePullBackOff")
    kube_api.set_job_running(NAMESPACE, handle.name)  # the next pull worked, before any check
    waiter = asyncio.create_task(graced.wait(handle, spec))
    await eventually(lambda: pod_reads(kube_api) == 1, what="the one check after the grace")
    kube_api.set_job_succeeded(NAMESPACE, handle.name, log="pulled at last\n")
    outcome = await asyncio.wait_for(waiter, 10)
    assert (outcome.status, outcome.logs) == ("succeeded", "pulled at last\n")
    assert pod_reads(kube_api) == 2  # that check, and the outcome's read


async def test_a_job_without_a_pod_yet_is_checked_until_it_has_one(
    kube_api: FakeKubeAPI, graced: KubernetesBackend
) -> None:
    _, handle, waiter = await submitted_and_waiting(graced, kube_api)
    await eventually(lambda: pod_reads(kube_api) >= 3, what="checks repeated while no pod exists")
    assert not waiter.done()
    kube_api.set_job_running(NAMESPACE, handle.name)
    kube_api.set_job_succeeded(NAMESPACE, handle.name, log="ok\n")
    assert (await asyncio.wait_for(waiter, 10)).status == "succeeded"


async def test_a_job_that_ends_within_the_grace_costs_no_pod_read_before_its_end(
    kube_api: FakeKubeAPI, backend_factory: BackendFactory
) -> None:
    backend = backend_factory(pod_start_grace=60)
    await backend.start()
    _, handle, waiter = await submitted_and_waiting(backend, kube_api)
    kube_api.set_job_succeeded(NAMESPACE, handle.name, log="quick\n")
    assert (await asyncio.wait_for(waiter, 10)).status == "succeeded"
    assert pod_reads(kube_api) == 1  # the outcome's read only


async def test_grace_zero_waits_for_max_poll_duration_as_before(
    kube_api: FakeKubeAPI, backend_factory: BackendFactory
) -> None:
    backend = backend_factory(pod_start_grace=0)
    await backend.start()
    spec = make_spec(max_poll_duration=1)
    _, handle, waiter = await submitted_and_waiting(backend, kube_api, spec)
    kube_api.set_pod_waiting(NAMESPACE, handle.name, "ImagePullBackOff")
    outcome = await asyncio.wait_for(waiter, 10)
    assert outcome.status == "timed_out"
