"""A completed Job's outcome is read with one request, its log: its pod (name, exit code, result
file) comes from the namespace's watch on pods (executor/backends/kubernetes/podwatch.py). A
failed Job is read in full as before, and without the watch (refused, dropped, expired) pods are
listed as before."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import config as kube_config
from kubernetes_asyncio.client import ApiClient, Configuration

from executor.backends.kubernetes import podwatch
from executor.backends.kubernetes.backend import KubernetesBackend
from executor.backends.kubernetes.podwatch import SucceededPods
from tests.kubeapi.access import READ
from tests.kubeapi.server import FakeKubeAPI, Role
from tests.kubernetes.conftest import (
    NAMESPACE,
    BackendFactory,
    eventually,
    no_validation_errors,
    submitted_and_waiting,
)


def pod_lists(kube_api: FakeKubeAPI) -> list[Any]:
    return [r for r in kube_api.requests("GET", "/pods", watch=False) if not r.path.endswith("/log")]


@pytest.fixture(autouse=True)
def patient(monkeypatch: pytest.MonkeyPatch) -> None:
    # A loaded test machine can hold the pod's line back longer than the service waits for it
    # (it then lists, which is right but is not what these tests look at).
    monkeypatch.setattr(podwatch, "LATE_POD_SECONDS", 5.0)


async def test_a_succeeded_task_is_read_with_its_log_alone(
    kube_api: FakeKubeAPI, backend: KubernetesBackend
) -> None:
    _, handle, waiter = await submitted_and_waiting(backend, kube_api)
    await eventually(lambda: kube_api.watching("pods") == 1, what="the pod watch")
    result = json.dumps({"score": 97})
    kube_api.set_job_running(NAMESPACE, handle.name)
    kube_api.set_job_succeeded(NAMESPACE, handle.name, log="hello cart\n", result=result)
    outcome = await asyncio.wait_for(waiter, 10)
    assert (outcome.status, outcome.logs, outcome.exit_code) == ("succeeded", "hello cart\n", 0)
    assert outcome.result == result.encode()
    assert outcome.started_at and outcome.finished_at
    assert pod_lists(kube_api) == []  # the pod came from the watch
    assert len(kube_api.requests("GET", "/log")) == 1
    assert backend.pod_watch(NAMESPACE) is not None and backend.pod_watch(NAMESPACE).count() == 0
    no_validation_errors(kube_api)


async def test_a_failed_task_is_still_read_in_full(kube_api: FakeKubeAPI, backend: KubernetesBackend) -> None:
    _, handle, waiter = await submitted_and_waiting(backend, kube_api)
    kube_api.set_job_running(NAMESPACE, handle.name)
    kube_api.set_job_failed(NAMESPACE, handle.name, log="boom\n", exit_code=3, events=["disk full"])
    outcome = await asyncio.wait_for(waiter, 10)
    assert (outcome.status, outcome.exit_code, outcome.logs) == ("failed", 3, "boom\n")
    assert "exit code 3" in outcome.reason and "disk full" in outcome.reason
    assert len(pod_lists(kube_api)) == 1
    assert kube_api.requests("GET", "/events")


async def test_after_the_watch_is_dropped_and_its_history_expires_it_starts_again(
    kube_api: FakeKubeAPI, backend: KubernetesBackend
) -> None:
    _, first, waiter = await submitted_and_waiting(backend, kube_api)
    await eventually(lambda: kube_api.watching("pods") == 1, what="the pod watch")
    watch = backend.pod_watch(NAMESPACE)
    assert watch is not None
    kube_api.set_job_succeeded(NAMESPACE, first.name, log="one\n")
    assert (await asyncio.wait_for(waiter, 10)).logs == "one\n"
    opened = watch.watches
    kube_api.compact()  # the resourceVersion it resumes from is gone: 410, then from the start
    kube_api.drop_watches(abort=True)
    await eventually(lambda: watch.watches >= opened + 2 and watch.open, what="the pod watch again")
    _, second, waiter = await submitted_and_waiting(backend, kube_api)
    kube_api.set_job_succeeded(NAMESPACE, second.name, log="two\n")
    assert (await asyncio.wait_for(waiter, 10)).logs == "two\n"
    assert pod_lists(kube_api) == []


# The chart's Role without `watch` on pods (an older or hand-made Role).
NO_POD_WATCH = Role.of(
    {
        "jobs.batch": ["create", "get", "list", "watch", "delete"],
        "configmaps": ["create", "get", "list", "patch", "delete"],
        "pods": ["get", "list"],
        "pods/log": ["get"],
        "events": READ,
    }
)


@pytest.fixture
async def listing_backend(
    kube_api: FakeKubeAPI, tmp_path: Path, backend_factory: BackendFactory
) -> AsyncIterator[KubernetesBackend]:
    kube_api.add_user("t0ken", "system:serviceaccount:keptn:job-executor", {NAMESPACE: NO_POD_WATCH})
    path = kube_api.write_kubeconfig(tmp_path / "kubeconfig", token="t0ken")
    configuration = Configuration()
    await kube_config.load_kube_config(config_file=str(path), client_configuration=configuration)
    async with ApiClient(configuration=configuration) as api_client:
        backend = backend_factory(api_client=api_client)
        await backend.start()
        yield backend
        await backend.close()


async def test_a_role_without_watch_on_pods_lists_them_and_is_told_once(
    kube_api: FakeKubeAPI, listing_backend: KubernetesBackend, caplog: pytest.LogCaptureFixture
) -> None:
    outcomes = []
    for text in ("one\n", "two\n"):
        _, handle, waiter = await submitted_and_waiting(listing_backend, kube_api)
        kube_api.set_job_succeeded(NAMESPACE, handle.name, log=text)
        outcomes.append(await asyncio.wait_for(waiter, 10))
    assert [(o.status, o.logs) for o in outcomes] == [("succeeded", "one\n"), ("succeeded", "two\n")]
    assert len(pod_lists(kube_api)) == 2  # listed, as before the watch
    watch = listing_backend.pod_watch(NAMESPACE)
    assert watch is not None and watch.forbidden
    assert len(kube_api.requests("GET", "/pods", watch=True)) == 1  # refused once, not retried
    logged = caplog.get_records("setup") + caplog.records  # the watch starts with the backend
    refusals = [r for r in logged if "pod watch" in r.getMessage()]
    assert len(refusals) == 1 and "grant `watch` on pods" in refusals[0].getMessage()


def line(kind: str, name: str, owner: str, created: str, phase: str = "Succeeded") -> bytes:
    pod = {
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "uid": f"uid-{name}",
            "resourceVersion": "7",
            "creationTimestamp": created,
            "ownerReferences": [{"kind": "Job", "uid": owner, "controller": True, "name": "j"}],
            "labels": {"team": "x" * 20},
        },
        "spec": {"containers": [{"name": "main", "env": [{"name": "TOKEN", "value": "s3cret"}]}]},
        "status": {"phase": phase, "containerStatuses": [{"name": "main", "state": {"terminated": {}}}]},
    }
    return json.dumps({"type": kind, "object": pod}).encode()


async def test_what_is_kept_is_bounded_slim_and_the_newest_pod_of_each_job() -> None:
    watch = SucceededPods(None, NAMESPACE, "sel", capacity=3)  # type: ignore[arg-type]
    for i in range(5):
        watch._event(line("MODIFIED", f"p{i}", f"job-{i}", "2026-12-03T00:00:00Z"))
    assert watch.count() == 3  # the two oldest were dropped: their outcomes list pods
    assert await watch.take("job-0", within=0) is None
    kept = await watch.take("job-4", within=0)
    assert kept is not None and kept["metadata"]["name"] == "p4"
    assert "s3cret" not in json.dumps(kept) and "labels" not in kept["metadata"]
    assert await watch.take("job-4", within=0) is None  # taken once
    # A later pod of the same Job replaces an earlier one; an earlier one arriving late does not.
    watch._event(line("MODIFIED", "new", "job-9", "2026-12-03T00:00:09Z"))
    watch._event(line("MODIFIED", "old", "job-9", "2026-12-03T00:00:01Z"))
    watch._event(line("MODIFIED", "running", "job-8", "2026-12-03T00:00:01Z", phase="Running"))
    watch._event(line("DELETED", "p3", "job-3", "2026-12-03T00:00:00Z"))
    kept = await watch.take("job-9", within=0)
    assert kept is not None and kept["metadata"]["name"] == "new"
    assert await watch.take("job-8", within=0) is None and await watch.take("job-3", within=0) is None


async def test_a_pod_that_never_came_is_listed(kube_api: FakeKubeAPI, backend: KubernetesBackend) -> None:
    _, handle, waiter = await submitted_and_waiting(backend, kube_api)
    watch = backend.pod_watch(NAMESPACE)
    assert watch is not None
    await watch.close()  # as if its line had not come in time
    kube_api.set_job_succeeded(NAMESPACE, handle.name, log="listed\n")
    outcome = await asyncio.wait_for(waiter, 10)
    assert (outcome.status, outcome.logs) == ("succeeded", "listed\n")
    assert len(pod_lists(kube_api)) == 1
