"""A running Kubernetes task's output before it ends (the read API's logs and ?follow=1)."""

from __future__ import annotations

import asyncio

from executor.backends.kubernetes.backend import KubernetesBackend
from tests.kubeapi.server import FakeKubeAPI
from tests.kubernetes.conftest import NAMESPACE, eventually, submitted_and_waiting


async def test_the_output_so_far_of_a_running_job_then_its_kept_log(
    kube_api: FakeKubeAPI, backend: KubernetesBackend
) -> None:
    _spec, handle, waiter = await submitted_and_waiting(backend, kube_api)
    # Created but its pod not started: nothing to show yet (a real API server answers 400 for
    # the log of a container that never started; we must not ask).
    assert await backend.live_log(handle.name) == ""
    kube_api.set_job_running(NAMESPACE, handle.name)
    pod = kube_api.job_pod(NAMESPACE, handle.name)
    assert pod is not None
    kube_api.set_pod_log(NAMESPACE, pod["metadata"]["name"], handle.name, "step 1 of 3\n")
    await eventually(lambda: backend.tracker(NAMESPACE).latest(handle.name), what="the Job tracked")
    assert await backend.live_log(handle.name) == "step 1 of 3\n"
    kube_api.set_pod_log(NAMESPACE, pod["metadata"]["name"], handle.name, "step 1 of 3\nstep 2 of 3\n")
    assert await backend.live_log(handle.name) == "step 1 of 3\nstep 2 of 3\n"
    assert not waiter.done()
    kube_api.set_job_succeeded(NAMESPACE, handle.name, log="step 1 of 3\nstep 2 of 3\ndone\n")
    outcome = await asyncio.wait_for(waiter, 5)
    assert outcome.logs.endswith("done\n")


async def test_a_job_no_watch_knows_has_no_live_log(
    kube_api: FakeKubeAPI, backend: KubernetesBackend
) -> None:
    _spec, handle, waiter = await submitted_and_waiting(backend, kube_api)
    assert await backend.live_log(handle.name + "-other") is None
    assert await backend.live_log("") is None
    waiter.cancel()
