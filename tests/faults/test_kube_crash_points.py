"""kill -9 at each crash point of an event's life on the Kubernetes backend, against the fake API
server run as a process (it outlives the killed service), then a restart on the same state
(FEATURES.md, "Nothing lost, nothing run twice").

For every point: one Job was created for the task of the event the service died handling, and one
for an event sent after the restart (the fake's record of Job arrivals); exactly one started and
one finished report per event reached the sink, each quoting the output of its own event's Job
and no other's. A report arrives twice, with the same CloudEvent id, only when the crash cut its
delivery. The crash is the service's own os._exit at the point JOB_EXECUTOR_CRASH_AT names
(executor/support/crashpoints.py), so no timing decides where it lands.
"""

from __future__ import annotations

import pytest

from executor.backends.naming import job_name
from executor.support.crashpoints import KUBERNETES_POINTS
from tests.faults.conftest import FakeKubeProcess, OneTask, check_reports, crash_and_restart
from tests.kubernetes.conftest import serve_env

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("point", KUBERNETES_POINTS)
async def test_sigkill_at_each_point_creates_one_job_and_reports_once(
    one_task: OneTask, fake_kube: FakeKubeProcess, point: str
) -> None:
    env = serve_env(fake_kube.kubeconfig, ALLOWED_IMAGE_LIST="alpine:*")
    run = await crash_and_restart(one_task, point, env)
    events = (run.first, run.second)
    names = {e["id"]: job_name(e["id"], e["source"], 0, 1) for e in events}  # task indexes from 1, as JES
    assert sorted(fake_kube.control("job_arrivals")) == sorted(f"jobs/{n}" for n in names.values())
    check_reports(one_task.sink, {i: f"output of {n}" for i, n in names.items()}, run.cut)
    if point in ("kube.job_created", "kube.ended"):  # the Job existed: the restart adopted it
        name = names[run.first["id"]]
        assert f"Job jobs/{name} already exists for this event: adopting it" in run.restarted.log.read_text()
