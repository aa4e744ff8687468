"""A Job still running after the service lost its state (a pod moved, its emptyDir gone) is
found on start from the event it carries, adopted, and reported once when it ends."""

from __future__ import annotations

import json
import shutil
import signal
from pathlib import Path

import pytest

from executor.backends.naming import A_EVENT, job_name
from tests.kubeapi.server import FakeKubeAPI
from tests.kubernetes.conftest import eventually, no_validation_errors, serve_env
from tests.service.conftest import EventSink, Serve, make_event, write_config

pytestmark = pytest.mark.slow

EVENT_ID = "9d0c1b2a-3e4f-4a5b-8c6d-7e8f9a0b1c2d"
CONFIG = """\
apiVersion: v2
actions:
  - name: "Test"
    events: [{name: "sh.keptn.event.test.triggered"}]
    tasks: [{name: "Slow", image: "alpine:3.20", cmd: ["sleep", "600"]}]
"""


async def test_running_job_is_adopted_after_the_state_is_lost(
    tmp_path: Path, kube_api: FakeKubeAPI, kube_config_file: Path, sink: EventSink
) -> None:
    write_config(tmp_path, CONFIG)
    env = serve_env(kube_config_file)
    serve = Serve(tmp_path, sink.url, env)
    await serve.start()
    assert (await serve.post(make_event(event_id=EVENT_ID)))[0] == 202
    name = job_name(EVENT_ID, "tests", 0, 1)
    (job,) = await eventually(lambda: kube_api.objects("jobs", "jobs"), timeout=10, what="the Job")
    assert json.loads(job["metadata"]["annotations"][A_EVENT])["id"] == EVENT_ID
    kube_api.set_job_running("jobs", name)
    serve.signal(signal.SIGKILL)
    await serve.wait_exit()
    shutil.rmtree(tmp_path / "state")  # the state is gone with the pod

    restarted = Serve(tmp_path, sink.url, env)
    try:
        await restarted.start()
        await eventually(
            lambda: "adopted running task" in restarted.log.read_text(), timeout=10, what="adoption"
        )
        assert len(kube_api.objects("jobs", "jobs")) == 1  # adopted, not created again
        kube_api.set_job_succeeded("jobs", name, log="done after a move\n")
        finished = await sink.wait_for(".finished")
        assert finished[0]["triggeredid"] == EVENT_ID
        assert "done after a move" in finished[0]["data"]["message"]
        no_validation_errors(kube_api)
    finally:
        await restarted.stop()
    assert len(sink.of_type(".finished")) == 1
