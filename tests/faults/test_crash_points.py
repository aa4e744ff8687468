"""kill -9 at each wired crash point of an event's life, then a restart on the same state.

For every point: the task ran exactly once (it appends a line to a file), exactly one started
and one finished event reached the sink, and the finished event carries this event's own
output. The crash is the service's own os._exit at the point JOB_EXECUTOR_CRASH_AT names
(executor/support/crashpoints.py), so no timing decides where it lands.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from executor.support.crashpoints import CRASH_ENV, LOCAL_POINTS
from tests.service.conftest import EventSink, make_event, write_config

CONFIG = """\
apiVersion: v2
actions:
  - name: "Run once"
    events:
      - name: "sh.keptn.event.test.triggered"
    tasks:
      - name: "count"
        image: "alpine:3.20"
        cmd: ["sh", "-c", "echo ran >> {runs}; echo output-of-$(KEPTN_SERVICE)-{tag}"]
"""


@pytest.mark.parametrize("point", LOCAL_POINTS)
async def test_sigkill_at_each_point_runs_once_and_reports_once(
    tmp_path: Path, sink: EventSink, serve_factory: Any, point: str
) -> None:
    runs = tmp_path / "runs"
    write_config(tmp_path, CONFIG.format(runs=runs, tag=point))
    crashing = serve_factory({CRASH_ENV: point})
    await crashing.start()
    event = make_event(event_id=f"fault-{point}")
    with contextlib.suppress(aiohttp.ClientError):  # at "accepted" the answer dies with it
        await crashing.post(event)
    assert await crashing.wait_exit(timeout=20) == 137, crashing.log.read_text()

    restarted = serve_factory()
    await restarted.start()
    finished = await sink.wait_for(".finished")
    await restarted.stop()
    assert runs.read_text() == "ran\n", f"the task ran {runs.read_text().count('ran')} times"
    assert [e["triggeredid"] for e in sink.of_type(".started")] == [event["id"]]
    assert [e["triggeredid"] for e in finished] == [event["id"]]
    data = finished[0]["data"]
    assert data["status"] == "succeeded", data["message"]
    assert f"output-of-cart-{point}" in data["message"]
