"""kill -9 at each crash point of an event's life on the Kubernetes backend, against the fake API
server run as a process (it outlives the killed service), then a restart on the same state.

For every point: one Job was created for the task (the fake's record of Job arrivals), exactly
one started and one finished event reached the sink, and the finished event carries the output
of this event's own Job. The crash is the service's own os._exit at the point
JOB_EXECUTOR_CRASH_AT names (executor/support/crashpoints.py), so no timing decides where it lands.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from executor.backends.naming import job_name
from executor.support.crashpoints import CRASH_ENV, KUBERNETES_POINTS
from tests.faults.conftest import FakeKubeProcess
from tests.kubernetes.conftest import serve_env
from tests.service.conftest import EventSink, make_event, write_config

pytestmark = pytest.mark.slow

CONFIG = """\
apiVersion: v2
actions:
  - name: "Run once"
    events:
      - name: "sh.keptn.event.test.triggered"
    tasks:
      - name: "count"
        image: "alpine:3.20"
        cmd: ["sh", "-c", "echo ran"]
"""


@pytest.mark.parametrize("point", KUBERNETES_POINTS)
async def test_sigkill_at_each_point_creates_one_job_and_reports_once(
    tmp_path: Path, sink: EventSink, serve_factory: Any, fake_kube: FakeKubeProcess, point: str
) -> None:
    write_config(tmp_path, CONFIG)
    env = serve_env(fake_kube.kubeconfig, ALLOWED_IMAGE_LIST="alpine:*")
    crashing = serve_factory({**env, CRASH_ENV: point})
    await crashing.start()
    event = make_event(event_id=f"kube-fault-{point}")
    with contextlib.suppress(aiohttp.ClientError):  # at "accepted" the answer dies with it
        await crashing.post(event)
    assert await crashing.wait_exit(timeout=20) == 137, crashing.log.read_text()

    restarted = serve_factory(env)
    await restarted.start()
    finished = await sink.wait_for(".finished")
    await restarted.stop()
    name = job_name(event["id"], event["source"], 0, 1)  # task indexes count from 1, as in JES
    assert list(fake_kube.control("job_arrivals")) == [f"jobs/{name}"]
    assert [e["triggeredid"] for e in sink.of_type(".started")] == [event["id"]]
    assert [e["triggeredid"] for e in finished] == [event["id"]]
    data = finished[0]["data"]
    assert data["status"] == "succeeded", data["message"]
    assert f"output of {name}" in data["message"]
    if point != "accepted":  # the Job existed: the restart found it and adopted it
        assert f"Job jobs/{name} already exists for this event: adopting it" in restarted.log.read_text()
