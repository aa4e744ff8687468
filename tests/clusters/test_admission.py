"""Admission that protects the API server: MAX_PENDING_JOBS, the write token bucket, and what
saturation does to intake (NATS stops pulling, HTTP answers 429 with Retry-After)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession, web
from nats.aio.client import Client as NatsClient

from executor.backends.kubernetes.admission import Admission, TokenBucket, saturation
from executor.backends.kubernetes.backend import KubernetesBackend
from executor.backends.naming import spec_job_name
from executor.model.events import Event, Offer
from executor.settings.serving import ReceiverSettings
from executor.sources.http import HttpSource
from executor.sources.nats import NatsSource
from executor.support.metrics import Metrics
from tests.kubeapi.server import FakeKubeAPI
from tests.kubernetes.conftest import FAST, FAST_WATCH, OPTIONS, eventually, make_spec
from tests.nats.conftest import NatsServer, nats_server  # noqa: F401
from tests.service.conftest import free_port, make_event

NAMESPACE = "jobs"


async def started_backend(api: FakeKubeAPI, admission: Admission, tmp_path: Path) -> KubernetesBackend:
    config = api.write_kubeconfig(tmp_path / "kubeconfig")
    backend = KubernetesBackend(
        OPTIONS,
        (NAMESPACE,),
        backoff=FAST,
        watch_backoff=FAST_WATCH,
        sync_timeout=1.0,
        pod_start_grace=0,
        kubeconfig=str(config),
        admission=admission,
    )
    await backend.start()
    return backend


def spec(n: int) -> Any:
    return make_spec(f"admit-{n}", namespace=NAMESPACE)


async def test_max_pending_jobs_holds_creates_until_a_pod_runs(kube_api_factory: Any, tmp_path: Path) -> None:
    api: FakeKubeAPI = await kube_api_factory()
    admission = Admission(max_pending=2)
    backend = await started_backend(api, admission, tmp_path)
    try:
        submits = [asyncio.create_task(backend.submit(spec(i), {})) for i in range(3)]
        # Admitted is not arrived: wait for the first two creates to reach the API server too.
        await eventually(
            lambda: admission.waiting() == 1 and len(api.job_arrivals) == 2,
            what="two Jobs created and the third create waiting",
        )
        assert saturation([admission]) is not None
        first = await submits[0]
        released = time.time()  # the fake stamps arrivals with time.time()
        api.set_job_running(NAMESPACE, first.name)  # its pod runs: one pending less
        await asyncio.wait_for(submits[2], timeout=5)
        assert len(api.job_arrivals) == 3
        third = api.job_arrivals[(NAMESPACE, spec_job_name(spec(2)))]
        assert third >= released  # the cap held the third create until a pod ran
        assert admission.pending.count == 2 and admission.waiting() == 0
        assert saturation([admission]) is None
        # an ended Job is not pending either
        second = await submits[1]
        api.set_job_succeeded(NAMESPACE, second.name)
        await eventually(lambda: admission.pending.count == 1, what="the ended Job leaving the count")
    finally:
        await backend.close()


async def test_write_qps_spreads_creates_over_time(kube_api_factory: Any, tmp_path: Path) -> None:
    api: FakeKubeAPI = await kube_api_factory()
    began = time.time()  # before the bucket fills (at its making); the fake stamps with time.time()
    qps, burst = 10, 2
    admission = Admission(write_qps=qps, write_burst=burst)
    backend = await started_backend(api, admission, tmp_path)
    try:
        await asyncio.gather(*(backend.submit(spec(i), {}) for i in range(8)))
    finally:
        await backend.close()
    arrivals = sorted(api.job_arrivals.values())
    assert len(arrivals) == 8
    # The bucket's promise: by any moment t, at most burst + qps * (t - its making) writes took a
    # token, and a create arrives only after it took one. So the (i+1)th arrival is no sooner
    # than (i + 1 - burst) / qps after `began` (the 8th: 0.6 s). A loaded machine only delays
    # arrivals, which keeps this true; the tolerance covers the two clocks (monotonic, time).
    for i, arrived in enumerate(arrivals):
        assert i + 1 <= burst + qps * (arrived - began) + 0.01, (i, arrived - began, arrivals)
    # reads (the watch, the lists) took no tokens: only the 8 creates did
    assert len(api.requests("POST", "/jobs")) == 8


async def test_token_bucket_lets_the_burst_through_at_once_then_one_per_interval() -> None:
    now = [0.0]
    bucket = TokenBucket(rate=8, burst=2, clock=lambda: now[0])  # 1/8 s: exact in binary
    takes = [asyncio.ensure_future(bucket.take()) for _ in range(3)]
    await asyncio.sleep(0)  # one loop turn, and the clock stands still
    assert [t.done() for t in takes] == [True, True, False]  # the burst at once, no time passed
    assert bucket.waiting == 1
    now[0] += 0.125  # one interval: the timer the bucket set finds a token
    await asyncio.wait_for(takes[2], timeout=5)
    assert bucket.waiting == 0


async def test_token_bucket_serves_waiters_in_order() -> None:
    bucket = TokenBucket(rate=50, burst=1)
    order: list[int] = []

    async def take(i: int) -> None:
        await bucket.take()
        order.append(i)

    await asyncio.gather(*(take(i) for i in range(5)))
    assert order == [0, 1, 2, 3, 4]


def test_retry_after_is_the_backlog_over_the_drain_rate() -> None:
    admission = Admission(write_qps=2, write_burst=1)
    assert saturation([admission]) is None  # nothing waits
    admission.writes._waiters.extend(asyncio.Future(loop=asyncio.new_event_loop()) for _ in range(3))
    # 3 tasks held back and 7 events queued, taken at 2 a second (no creates measured yet): 5 s
    assert saturation([admission], backlog_extra=7) == 5
    assert saturation([admission], backlog_extra=10_000) == 120  # capped


class OpenIntake:
    def __init__(self) -> None:
        self.offered: list[Event] = []
        self.queue_size = 10

    @property
    def accepting(self) -> bool:
        return True

    def room(self) -> int:
        return 10

    def offer(self, event: Event) -> Offer:
        self.offered.append(event)
        return Offer.ACCEPTED

    async def offer_all(self, events: list[Event]) -> list[Offer]:
        return [self.offer(event) for event in events]


async def test_http_answers_429_with_retry_after_while_saturated() -> None:
    intake = OpenIntake()
    held: list[int | None] = [7]
    source = HttpSource(
        intake, Metrics(), ReceiverSettings(), not_ready=lambda: None, saturated=lambda: held[0]
    )
    runner = source.runner()
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    headers = {"Content-Type": "application/cloudevents+json"}
    try:
        async with ClientSession() as http:
            url = f"http://127.0.0.1:{port}/"
            async with http.post(url, data=json.dumps(make_event(event_id="a")), headers=headers) as answer:
                assert answer.status == 429
                assert answer.headers["Retry-After"] == "7"
                assert "MAX_PENDING_JOBS" in (await answer.json())["error"]
            assert intake.offered == []
            held[0] = None
            async with http.post(url, data=json.dumps(make_event(event_id="b")), headers=headers) as answer:
                assert answer.status == 202
            assert [e.id for e in intake.offered] == ["b"]
    finally:
        await runner.cleanup()


@pytest.mark.slow
async def test_nats_intake_stops_pulling_while_saturated(nats_server: NatsServer) -> None:  # noqa: F811
    client = NatsClient()
    await client.connect(nats_server.url)
    offered: list[Event] = []
    held: list[int | None] = [3]

    def offer(event: Event) -> Offer:
        offered.append(event)
        return Offer.ACCEPTED

    subject = "sh.keptn.event.test.triggered"
    source = NatsSource(client, offer, (subject,), jetstream=True, paused=lambda: held[0])
    try:
        await source.start()
        await eventually(lambda: source.pausing, what="the pull loop pausing")
        js = client.jetstream()
        for i in range(3):
            await js.publish(subject, json.dumps(make_event(event_id=f"held-{i}")).encode())
        stream = await js.find_stream_name_by_subject(subject)

        async def pending() -> Any:
            return await js.consumer_info(stream, "job-executor")

        # JetStream keeps them: pending for the consumer, none delivered (none awaits an ack)
        for _ in range(100):
            info = await pending()
            if info.num_pending == 3:
                break
            await asyncio.sleep(0.05)
        assert info.num_pending == 3 and info.num_ack_pending == 0, info
        assert offered == [] and source.pausing
        held[0] = None
        await eventually(lambda: len(offered) == 3, timeout=10, what="the held events taken")
        assert not source.pausing
    finally:
        await source.stop()
        await client.close()


def test_a_job_name_is_what_the_cap_counts() -> None:
    admission = Admission(max_pending=1)
    job = {"metadata": {"name": spec_job_name(spec(1))}, "status": {"active": 1, "ready": 0}}
    admission.pending.observed(job)
    assert admission.pending.count == 1
    admission.pending.observed({**job, "status": {"active": 1, "ready": 1}})
    assert admission.pending.count == 0
    # an API server without `ready` (before 1.24): active counts as running
    admission.pending.observed({**job, "status": {}})
    admission.pending.observed({**job, "status": {"active": 1}})
    assert admission.pending.count == 0
