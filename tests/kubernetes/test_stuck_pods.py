"""Pods that can never start fail their task once the start grace has passed: the Job deleted,
the kubelet's or the scheduler's reason and message in the outcome (issue 13 item 12;
keptn-contrib/job-executor-service#235, #402). The pod is read only for Jobs still active after
the grace whose watch has shown no ready pod (issue 18), once for a pod that started."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime

import pytest

from executor.backends.kubernetes import podwatch
from executor.backends.kubernetes.backend import KubernetesBackend
from tests.kubeapi.server import FakeKubeAPI
from tests.kubernetes.conftest import NAMESPACE, BackendFactory, eventually, make_spec, submitted_and_waiting

GRACE = 0.5


@pytest.fixture
async def graced(backend_factory: BackendFactory) -> KubernetesBackend:
    backend = backend_factory(pod_start_grace=GRACE, pod_check_interval=0.05)
    await backend.start()
    return backend


@pytest.fixture(autouse=True)
def patient(monkeypatch: pytest.MonkeyPatch) -> None:
    # The counts below expect the outcome's pod from the pod watch: on a loaded machine its line
    # could come later than the service waits for it by default (it would then list the pods).
    monkeypatch.setattr(podwatch, "LATE_POD_SECONDS", 5.0)


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


def pod_lists_of(api: FakeKubeAPI, uid: str) -> int:
    """Lists of one Job's pods: every selector the backend uses for them names its uid first."""
    return sum(
        uid in r.query.get("labelSelector", "")
        for r in api.requests("GET", f"/namespaces/{NAMESPACE}/pods", watch=False)
    )


def job_uid(api: FakeKubeAPI, name: str) -> str:
    job = api.get("jobs", NAMESPACE, name)
    assert job is not None
    return str(job["metadata"]["uid"])


async def test_a_job_the_watch_showed_ready_costs_no_pod_list_after_the_grace(
    kube_api: FakeKubeAPI, backend_factory: BackendFactory
) -> None:
    # A grace of 2 s from a creation time in whole seconds leaves at least 1 s for the watch to
    # bring the ready count before the check is due.
    backend = backend_factory(pod_start_grace=2.0, pod_check_interval=0.05)
    await backend.start()
    _, ready, ready_waiter = await submitted_and_waiting(backend, kube_api)
    ready_uid = job_uid(kube_api, ready.name)
    kube_api.set_job_running(NAMESPACE, ready.name)
    tracker = backend.tracker(NAMESPACE)
    await eventually(lambda: tracker.started(ready.name, ready_uid), what="the watch's ready count")
    # A Job created after it, with no pod: its checks, due no sooner, are the later signal.
    _, stuck, stuck_waiter = await submitted_and_waiting(backend)
    stuck_uid = job_uid(kube_api, stuck.name)
    await eventually(lambda: pod_lists_of(kube_api, stuck_uid) >= 3, what="checks of the Job without a pod")
    assert pod_lists_of(kube_api, ready_uid) == 0
    assert not ready_waiter.done()
    kube_api.set_job_succeeded(NAMESPACE, ready.name, log="done\n")
    assert (await asyncio.wait_for(ready_waiter, 10)).status == "succeeded"
    assert pod_lists_of(kube_api, ready_uid) == 0  # none: the outcome's pod came from the pod watch
    # The one whose watch showed no ready pod is still read, and failed once found stuck.
    kube_api.set_pod_waiting(NAMESPACE, stuck.name, "ErrImagePull")
    outcome = await asyncio.wait_for(stuck_waiter, 10)
    assert outcome.status == "failed"
    assert outcome.reason.startswith(f"the pod could not start: container {stuck.name} ErrImagePull")
    assert kube_api.get("jobs", NAMESPACE, stuck.name) is None


async def test_a_job_listed_ready_after_a_restart_costs_no_pod_list_either(
    kube_api: FakeKubeAPI, backend_factory: BackendFactory
) -> None:
    before = backend_factory(pod_start_grace=2.0)
    await before.start()
    spec = make_spec()
    running = await before.submit(spec, {})
    kube_api.set_job_running(NAMESPACE, running.name)
    await before.close()
    after = backend_factory(pod_start_grace=2.0, pod_check_interval=0.05)
    await after.start()  # its first list shows the Job counting a ready pod
    (adopted,) = await after.adopt()
    waiter = asyncio.create_task(after.wait(adopted.handle, spec))
    _, other, _ = await submitted_and_waiting(after)
    other_uid = job_uid(kube_api, other.name)
    await eventually(lambda: pod_lists_of(kube_api, other_uid) >= 3, what="checks of the Job without a pod")
    assert pod_lists_of(kube_api, job_uid(kube_api, running.name)) == 0
    kube_api.set_job_succeeded(NAMESPACE, running.name)
    assert (await asyncio.wait_for(waiter, 10)).status == "succeeded"


async def test_a_pod_that_started_before_its_job_says_so_is_read_once_after_the_grace(
    kube_api: FakeKubeAPI, graced: KubernetesBackend
) -> None:
    spec = make_spec()
    handle = await graced.submit(spec, {})
    kube_api.set_pod_waiting(NAMESPACE, handle.name, "ImagePullBackOff")
    # The next pull worked, before any check; the Job controller has not counted it ready yet.
    kube_api.set_pod_running(NAMESPACE, handle.name)
    waiter = asyncio.create_task(graced.wait(handle, spec))
    await eventually(lambda: pod_reads(kube_api) == 1, what="the one check after the grace")
    kube_api.set_job_succeeded(NAMESPACE, handle.name, log="pulled at last\n")
    outcome = await asyncio.wait_for(waiter, 10)
    assert (outcome.status, outcome.logs) == ("succeeded", "pulled at last\n")
    assert pod_reads(kube_api) == 1  # that check (the outcome's pod came from the pod watch)


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
    assert pod_reads(kube_api) == 0  # none (the outcome's pod came from the pod watch)


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
