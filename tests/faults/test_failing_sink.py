"""A sink that refuses (HTTP 500 or 503) at each step of an event's reports, then recovers:
nothing is lost and each report arrives once (FEATURES.md, "Nothing lost, nothing run twice").

The sink answers 500/503 to the started report, to the finished report, to the first attempts
of each report, and to every report across a kill -9 of the service (at "finished.queued") and
its restart. The outbox retries each (a 5xx may pass); a refused attempt is not a delivery, so
the receiver sees each report exactly once, and the task runs once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import aiohttp
import pytest

from executor.backends.naming import job_name
from executor.support.crashpoints import CRASH_ENV
from tests.faults.conftest import FakeKubeProcess, OneTask, check_reports, cut_deliveries, pending_reports
from tests.kubernetes.conftest import serve_env

# step -> the refusals: (type suffix, how many in all) or ("each", attempts refused per report)
STEPS = {"started": (".started", 2), "finished": (".finished", 2), "each report": ("each", 2)}


async def _refused_then_recovered(one: OneTask, env: dict[str, str], step: str, status: int) -> str:
    sink = one.sink
    suffix, times = STEPS[step]
    sink.fail_status = status
    if suffix == "each":
        sink.fail_each = times
    else:
        sink.fail_type, sink.fail_next = suffix, times
    served = one.serve(env)
    await served.start()
    event = one.event(f"refused-{step.replace(' ', '-')}-{status}")
    assert (await served.post(event))[0] == 202
    await sink.wait_for(".finished", timeout=30)
    await served.stop()
    assert pending_reports(served.tmp / "state") == 0
    refused = sorted(e["type"].rpartition(".")[2] for e in sink.refused)
    expected = ["finished"] * times + ["started"] * times if suffix == "each" else [suffix[1:]] * times
    assert refused == expected, "the sink did not refuse what the test meant it to"
    return str(event["id"])


@pytest.mark.parametrize("status", [500, 503])
@pytest.mark.parametrize("step", list(STEPS))
async def test_local_reports_survive_a_refusing_sink(one_task: OneTask, step: str, status: int) -> None:
    event_id = await _refused_then_recovered(one_task, {}, step, status)
    assert one_task.runs_of(event_id) == 1
    check_reports(one_task.sink, {event_id: one_task.output(event_id)})


@pytest.mark.slow
async def test_kubernetes_reports_survive_a_refusing_sink(
    one_task: OneTask, fake_kube: FakeKubeProcess
) -> None:
    env = serve_env(fake_kube.kubeconfig, ALLOWED_IMAGE_LIST="alpine:*")
    event_id = await _refused_then_recovered(one_task, env, "each report", 500)
    name = job_name(event_id, "tests", 0, 1)
    assert list(fake_kube.control("job_arrivals")) == [f"jobs/{name}"]
    check_reports(one_task.sink, {event_id: f"output of {name}"})


@pytest.mark.parametrize("status", [500, 503])
async def test_a_sink_refusing_across_a_crash_and_restart_loses_nothing(
    one_task: OneTask, status: int
) -> None:
    sink = one_task.sink
    sink.fail_status, sink.fail_next = status, 1_000_000  # down until the test says otherwise
    crashing = one_task.serve({CRASH_ENV: "finished.queued"})
    await crashing.start()
    event = one_task.event(f"refused-across-restart-{status}")
    with contextlib.suppress(aiohttp.ClientError):
        await crashing.post(event)
    assert await crashing.wait_exit(timeout=30) == 137
    cut = cut_deliveries(crashing.tmp / "state")
    refused_before = len(sink.refused)

    restarted = one_task.serve()
    await restarted.start()
    deadline = time.monotonic() + 30
    while len(sink.refused) <= refused_before:  # the restarted service tried, and was refused too
        assert time.monotonic() < deadline, "the restarted service never tried to deliver"
        await asyncio.sleep(0.05)
    sink.fail_next = 0  # the receiver recovers
    await sink.wait_for(".finished", timeout=60)
    await restarted.stop()
    assert pending_reports(restarted.tmp / "state") == 0
    assert one_task.runs_of(event["id"]) == 1
    check_reports(sink, {event["id"]: one_task.output(event["id"])}, cut)
