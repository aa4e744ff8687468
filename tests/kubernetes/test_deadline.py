"""DeadlineExceeded as Kubernetes >= 1.31 runs it: FailureTarget first (the pod being deleted,
its log still there), Failed only once the pod is gone. The backend reacts to FailureTarget
and reads the pod while it exists (issue 13 item 14)."""

from __future__ import annotations

import asyncio

from executor.backends.kubernetes.backend import KubernetesBackend
from tests.kubeapi.server import FakeKubeAPI
from tests.kubernetes.conftest import NAMESPACE, make_spec, submitted_and_waiting


async def test_the_log_of_a_job_past_its_deadline_is_read_before_its_pod_is_deleted(
    kube_api: FakeKubeAPI, backend: KubernetesBackend
) -> None:
    spec = make_spec(active_deadline_seconds=30)
    _, handle, waiter = await submitted_and_waiting(backend, kube_api, spec)
    kube_api.set_job_running(NAMESPACE, handle.name)
    kube_api.set_job_deadline_exceeded(NAMESPACE, handle.name, log="step 1 done\nstep 2 ...\n", finish=False)
    outcome = await asyncio.wait_for(waiter, 5)  # not waiting for Failed: the pod would be gone
    assert outcome.status == "failed"
    assert outcome.logs == "step 1 done\nstep 2 ...\n"
    assert outcome.reason.startswith(
        "the Job controller was stopping it (no exit code yet); "
        "Job DeadlineExceeded (Job was active longer than specified deadline)"
    ), outcome.reason
    assert outcome.finished_at
    kube_api.finish_job_termination(NAMESPACE, handle.name)  # what follows changes nothing
    assert kube_api.job_pod(NAMESPACE, handle.name) is None


async def test_a_job_already_failing_when_waited_for_is_read_at_once(
    kube_api: FakeKubeAPI, backend: KubernetesBackend
) -> None:
    spec = make_spec(active_deadline_seconds=30)
    handle = await backend.submit(spec, {})
    kube_api.set_job_running(NAMESPACE, handle.name)
    kube_api.set_job_deadline_exceeded(NAMESPACE, handle.name, log="partial\n", finish=False)
    # A Job read (not watched) in FailureTarget, as a restarted service finds it.
    backend.tracker(NAMESPACE).observe(kube_api.get("jobs", NAMESPACE, handle.name) or {})
    outcome = await asyncio.wait_for(backend.wait(handle, spec), 5)
    assert (outcome.status, outcome.logs) == ("failed", "partial\n")
