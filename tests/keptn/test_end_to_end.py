"""End to end through real nginx and the strict Keptn double (issue 11): one Keptn sequence task,
two matching actions, a result file, and `job-executor serve` killed (-9) between the POST of a
finished event and its answer. Keptn must close the task exactly once with both results."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.keptn.conftest import PROJECT, SERVICE, STAGE
from tests.keptn.fake_keptn import FakeKeptn
from tests.keptn.test_remote_plane import remote

pytestmark = pytest.mark.slow

CONFIG = """\
apiVersion: v2
actions:
  - name: "Load test"
    events: [{name: "sh.keptn.event.test.triggered"}]
    tasks:
      - name: "Run"
        image: "alpine:3.20"
        cmd: ["sh", "-c", "echo first action ran"]
  - name: "Score"
    events: [{name: "sh.keptn.event.test.triggered"}]
    tasks:
      - name: "Write result"
        image: "alpine:3.20"
        cmd: ["sh", "-c", "echo '{\\"evaluation\\": {\\"score\\": \\"97\\"}}' > \\"$JOB_RESULT_FILE\\""]
"""


async def test_two_actions_and_a_crash_mid_delivery_close_the_task_once(
    tmp_path: Path, keptn: FakeKeptn
) -> None:
    commit = keptn.put(PROJECT, "job/config.yaml", CONFIG, stage=STAGE, service=SERVICE)
    triggered = keptn.trigger("sh.keptn.event.test.triggered", PROJECT, STAGE, SERVICE, gitcommitid=commit)
    task = keptn.tasks[triggered["id"]]
    held = asyncio.Event()
    release = asyncio.Event()

    async def hold_first_finished(event: dict[str, Any]) -> None:
        if str(event["type"]).endswith(".finished") and not held.is_set():
            held.set()
            await release.wait()  # the client is killed while waiting for this answer

    keptn.after_accept = hold_first_finished
    serve = remote(tmp_path, keptn)
    await serve.start()
    await asyncio.wait_for(held.wait(), timeout=30)
    # Both started reports reached Keptn before the first finished one (issue 11 item 3).
    assert len(task.started) == 2 and len(task.finished) == 1 and not task.closed
    serve.kill()  # kill -9: the finished event is in Keptn, the outbox never heard so
    release.set()
    keptn.after_accept = None

    await serve.start()  # the restart resumes the run and the outbox
    await keptn.wait_for(lambda: task.closed, timeout=30)
    # The positive signal that nothing more comes: the restarted outbox has nothing left.
    await keptn.wait_for(lambda: "outbox_pending 0" in _metrics(serve), timeout=30)
    await serve.stop()

    assert len(task.started) == 2 and len(task.finished) == 2 and task.late == []
    results = {str(e["data"]["message"]).splitlines()[0]: e["data"] for e in task.finished}
    assert set(results) == {"Task 'Run' finished successfully!", "Task 'Write result' finished successfully!"}
    assert results["Task 'Write result' finished successfully!"]["evaluation"] == {"score": "97"}
    assert all(d["status"] == "succeeded" and d["result"] == "pass" for d in results.values())
    assert not task.failed and keptn.refused == []
    # The crash was seen and Keptn asked, instead of a blind second POST.
    assert keptn.requests_to("/mongodb-datastore/event/type/", "GET")
    assert "not sent again" in serve.log.read_text()


def _metrics(serve: Any) -> str:
    import urllib.request

    with urllib.request.urlopen(serve.url + "metrics", timeout=5) as response:
        return str(response.read().decode())
