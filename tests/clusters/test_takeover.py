"""Two `serve` replicas with LEADER_ELECTION against the fake API server run as a process: one
leads, the other stands by unready; kill -9 the leader while its Job runs, and the other takes
the Lease within its duration, adopts the running Job (no second Job) and reports its finished
event exactly once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from executor.backends.naming import job_name
from tests.faults.conftest import FakeKubeProcess, OneTask, start_fake_kube
from tests.kubernetes.conftest import serve_env
from tests.service.conftest import Serve, make_event

pytestmark = pytest.mark.slow

LEASE_SECONDS = 2
JOB_SECONDS = 6.0  # long enough to be running still when the standby has taken over


@pytest.fixture
def slow_kube(tmp_path: Path) -> Iterator[FakeKubeProcess]:
    with start_fake_kube(tmp_path, delay=str(JOB_SECONDS)) as fake:
        yield fake


async def readiness(replica: Serve) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as session, session.get(replica.url + "readyz") as answer:
        return answer.status, await answer.json()


async def until_ready(replica: Serve, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if (await readiness(replica))[0] == 200:
            return time.monotonic() - started
        await asyncio.sleep(0.05)
    raise AssertionError(f"the standby did not take over in {timeout} s:\n{replica.log.read_text()}")


async def test_the_standby_takes_over_adopts_and_reports_once(
    one_task: OneTask, slow_kube: FakeKubeProcess
) -> None:
    env = serve_env(
        slow_kube.kubeconfig,
        ALLOWED_IMAGE_LIST="alpine:*",
        LEADER_ELECTION="true",
        LEADER_ELECTION_LEASE_SECONDS=str(LEASE_SECONDS),
    )
    replicas = [one_task.serve(env, home=one_task.tmp / name) for name in ("a", "b")]
    leader, standby = replicas
    try:
        await leader.start()  # ready: it holds the Lease
        await standby.start(ready=False)
        status, body = await readiness(standby)
        assert status == 503 and "standing by" in body["reason"], body
        holder = slow_kube.lease()["spec"]["holderIdentity"]
        assert holder in body["reason"]
        # events sent to the standby are refused (503): only the leader takes work
        event = make_event(event_id="takeover-1")
        assert (await standby.post(event))[0] == 503

        assert (await leader.post(event))[0] == 202
        name = job_name(event["id"], event["source"], 0, 1)
        deadline = time.monotonic() + 20
        while f"jobs/{name}" not in slow_kube.control("job_arrivals"):
            assert time.monotonic() < deadline, leader.log.read_text()
            await asyncio.sleep(0.05)
        await one_task.sink.wait_for(".started")
        leader.kill()  # kill -9 mid-run: the Lease is not released
        took = await until_ready(standby, timeout=LEASE_SECONDS * 3 + 5)
        assert slow_kube.lease()["spec"]["holderIdentity"] != holder
        assert slow_kube.lease()["spec"]["leaseTransitions"] == 1

        finished = await one_task.sink.wait_for(".finished", timeout=JOB_SECONDS + 15)
        assert [e["triggeredid"] for e in finished] == [event["id"]]
        assert finished[0]["data"]["status"] == "succeeded", finished
        # the Job the dead leader created was adopted, not created again
        assert list(slow_kube.control("job_arrivals")) == [f"jobs/{name}"]
        # the standby's outbox is empty: nothing more is on its way to the sink
        deadline = time.monotonic() + 10
        async with aiohttp.ClientSession() as session:
            while True:
                async with session.get(standby.url + "metrics") as answer:
                    text = await answer.text()
                if "job_executor_outbox_pending 0.0" in text and "job_executor_runs_in_flight 0.0" in text:
                    break
                assert time.monotonic() < deadline, text
                await asyncio.sleep(0.1)
        assert len(one_task.sink.of_type(".finished")) == 1
        # An HTTP sink cannot be asked whether it has a report, so the adopted task's .started may
        # come again, with the same id (receivers dedup by id); the Keptn sink is asked first
        # (tests/service/test_outbox.py).
        assert {e["triggeredid"] for e in one_task.sink.of_type(".started")} == {event["id"]}
        assert len({e["id"] for e in one_task.sink.of_type(".started")}) == 1
        print(f"takeover took {took:.2f} s after the kill (lease {LEASE_SECONDS} s)")
    finally:
        for replica in replicas:
            await replica.stop()
