"""SIGTERM while a submit is in flight, and SHUTDOWN_GRACE_SECONDS runs out before it ends; then
a restart on the same state (FEATURES.md, "Nothing lost, nothing run twice").

The fake API server holds the Job's create request (neither acted on nor answered) until the
service has exited. Then it either completes it, as an API server completes a write whose client
went away, and the restarted service resumes the event, finds the Job and adopts it; or it drops
it, and the restarted service creates the Job. Either way: one Job for the task, one started and
one finished report, quoting that Job's output and not that of an event sent after the restart.
"""

from __future__ import annotations

import asyncio
import signal
import time

import pytest

from executor.backends.naming import job_name
from tests.faults.conftest import FakeKubeProcess, OneTask, check_reports, cut_deliveries, pending_reports
from tests.kubernetes.conftest import serve_env

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("write", ["completed", "dropped"])
async def test_grace_expiring_mid_submit_creates_one_job_and_reports_once(
    one_task: OneTask, fake_kube: FakeKubeProcess, write: str
) -> None:
    completed = write == "completed"
    env = serve_env(fake_kube.kubeconfig, ALLOWED_IMAGE_LIST="alpine:*", SHUTDOWN_GRACE_SECONDS="1")
    fake_kube.control(
        "hold_next", {"n": 1, "method": "POST", "path_contains": "/apis/batch/v1/", "complete": completed}
    )
    stopping = one_task.serve(env)
    await stopping.start()
    first = one_task.event("sigterm-mid-submit")
    assert (await stopping.post(first))[0] == 202
    deadline = time.monotonic() + 20
    while fake_kube.control("stats")["held"] != 1:  # the create request has reached the API server
        assert time.monotonic() < deadline, stopping.log.read_text()[-5000:]
        await asyncio.sleep(0.05)
    stopping.signal(signal.SIGTERM)
    await stopping.wait_exit(timeout=30)
    log = stopping.log.read_text()
    assert "SHUTDOWN_GRACE_SECONDS ran out with a submit under way" in log, log[-5000:]
    # the grace ran out with the submit still waiting for its answer: nothing created yet
    assert fake_kube.control("job_arrivals") == {}
    # the API server completes the create after all, or it had dropped it with its client
    assert fake_kube.control("release", {}) == {"released": 1 if completed else 0}
    cut = cut_deliveries(stopping.tmp / "state")

    restarted = one_task.serve(env)
    await restarted.start()
    second = one_task.event("after-sigterm")
    assert (await restarted.post(second))[0] == 202
    for event in (first, second):
        await one_task.sink.wait_until(
            lambda e, wanted=event["id"]: e.get("triggeredid") == wanted and e["type"].endswith(".finished"),
            timeout=30,
        )
    await restarted.stop()
    assert pending_reports(restarted.tmp / "state") == 0
    names = {e["id"]: job_name(e["id"], e["source"], 0, 1) for e in (first, second)}
    assert sorted(fake_kube.control("job_arrivals")) == sorted(f"jobs/{n}" for n in names.values())
    check_reports(one_task.sink, {i: f"output of {n}" for i, n in names.items()}, cut)
    adopted = f"Job jobs/{names[first['id']]} already exists for this event: adopting it"
    assert (adopted in restarted.log.read_text()) == completed
