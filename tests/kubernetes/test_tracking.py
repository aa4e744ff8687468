"""The shared Job watch: one per namespace, resumes after drops, re-lists after 410 Gone, and
keeps the API traffic per job small."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest

from executor.backends.kubernetes import backend as kube_backend
from executor.backends.kubernetes import harvest, watchstream
from executor.backends.kubernetes import tracker as kube_tracker
from executor.backends.kubernetes.api import ApiError
from executor.backends.kubernetes.backend import KubernetesBackend
from executor.backends.kubernetes.tracker import JobTracker
from executor.backends.kubernetes.watchstream import watch_lines
from executor.backends.naming import SELECTOR
from tests.kubeapi.server import FakeKubeAPI
from tests.kubernetes.conftest import (
    FAST_WATCH,
    NAMESPACE,
    eventually,
    make_spec,
    no_validation_errors,
    submitted_and_waiting,
)


async def watching(kube_api: FakeKubeAPI, count: int = 1) -> None:
    await eventually(lambda: kube_api.watching("jobs") == count, what=f"{count} open watch(es)")


async def test_completion_during_410_gone_is_seen_after_a_relist(
    kube_api: FakeKubeAPI, backend: KubernetesBackend
) -> None:
    _, handle, waiter = await submitted_and_waiting(backend, kube_api)
    tracker = backend.tracker(NAMESPACE)
    assert (tracker.stats.lists, tracker.stats.expired) == (1, 0)
    # The watch drops, the Job ends while nobody watches, and the server forgets that history:
    # resuming from the last resourceVersion is answered 410 Expired.
    kube_api.drop_watches()
    kube_api.set_job_succeeded(NAMESPACE, handle.name, log="finished while unwatched\n")
    compacted = kube_api.compact()
    outcome = await asyncio.wait_for(waiter, 5)
    assert (outcome.status, outcome.logs) == ("succeeded", "finished while unwatched\n")
    assert tracker.stats.expired == 1 and tracker.stats.lists == 2
    relist = kube_api.requests("GET", "/jobs", watch=False)[-1]
    assert "resourceVersion" not in relist.query
    await watching(kube_api)  # and it watches again, from the new list's resourceVersion
    watches = kube_api.requests("GET", "/jobs", watch=True)
    assert int(watches[-1].query["resourceVersion"]) >= compacted


async def test_a_job_deleted_while_unwatched_ends_its_wait_at_the_relist(
    kube_api: FakeKubeAPI, backend: KubernetesBackend
) -> None:
    _, handle, waiter = await submitted_and_waiting(backend, kube_api)
    kube_api.drop_watches()
    kube_api.delete("jobs", NAMESPACE, handle.name)
    kube_api.compact()  # the deletion is not in any history the watch can resume from
    # The re-list no longer shows it and reading it answers 404: the task is lost now, not
    # timed out once maxPollDuration has passed.
    outcome = await asyncio.wait_for(waiter, 5)
    assert outcome.status == "lost"
    assert backend.tracker(NAMESPACE).waiting() == []


async def test_dropped_watch_resumes_from_its_resource_version(
    kube_api: FakeKubeAPI, backend: KubernetesBackend
) -> None:
    _, handle, waiter = await submitted_and_waiting(backend, kube_api)
    tracker = backend.tracker(NAMESPACE)
    seen = tracker.resource_version
    kube_api.drop_watches(abort=True)  # connection reset
    kube_api.set_job_failed(NAMESPACE, handle.name, exit_code=4, log="boom\n")
    outcome = await asyncio.wait_for(waiter, 5)
    assert (outcome.status, outcome.exit_code) == ("failed", 4)
    # The events in between were replayed from history: no second list was needed.
    assert tracker.stats.lists == 1
    resumed = kube_api.requests("GET", "/jobs", watch=True)[1]
    assert resumed.query["resourceVersion"] == seen


async def test_watch_errors_are_retried_with_backoff(
    kube_api: FakeKubeAPI, backend: KubernetesBackend
) -> None:
    spec = make_spec()
    handle = await backend.submit(spec, {})
    tracker = backend.tracker(NAMESPACE)
    waiter = asyncio.create_task(backend.wait(handle, spec))
    await watching(kube_api)
    kube_api.fail_next(3, 500, path_contains="/jobs", watch=True)
    kube_api.drop_watches()
    kube_api.set_job_succeeded(NAMESPACE, handle.name)
    outcome = await asyncio.wait_for(waiter, 5)
    assert outcome.status == "succeeded"
    assert tracker.stats.errors == 3
    assert [r.status for r in kube_api.requests("GET", "/jobs", watch=True)][1:4] == [500, 500, 500]


async def test_list_errors_at_start_are_retried(kube_api: FakeKubeAPI, backend_factory) -> None:
    kube_api.fail_next(2, 503, method="GET", path_contains="/jobs", watch=False)
    backend = backend_factory()
    await backend.start()
    tracker = backend.tracker(NAMESPACE)
    assert await tracker.synced(1)
    assert [r.status for r in kube_api.requests("GET", "/jobs", watch=False)] == [503, 503, 200]


async def test_one_watch_for_many_jobs_and_few_requests_per_job(
    kube_api: FakeKubeAPI, backend: KubernetesBackend
) -> None:
    await watching(kube_api)
    before = len(kube_api.request_log)
    jobs = 20
    specs = [make_spec() for _ in range(jobs)]
    handles = [await backend.submit(spec, {}) for spec in specs]
    waits = [asyncio.create_task(backend.wait(h, s)) for h, s in zip(handles, specs, strict=True)]
    tracker = backend.tracker(NAMESPACE)
    await eventually(lambda: len(tracker.waiting()) == jobs)
    for i, handle in enumerate(handles):
        kube_api.set_job_running(NAMESPACE, handle.name)
        await asyncio.sleep(0.01)  # let a few watch events through in between
        if i % 2:
            kube_api.set_job_failed(NAMESPACE, handle.name, log=f"job {i}\n")
        else:
            kube_api.set_job_succeeded(NAMESPACE, handle.name, log=f"job {i}\n")
    outcomes = await asyncio.wait_for(asyncio.gather(*waits), 10)
    assert [o.logs.strip() for o in outcomes] == [f"job {i}" for i in range(jobs)]
    assert [o.status for o in outcomes] == ["succeeded", "failed"] * (jobs // 2)

    made = kube_api.request_log[before:]
    assert not [r for r in made if r.watch]  # no new watch, no per-job watch
    assert kube_api.watching("jobs") == 1
    # A job that succeeds: create, find its pod, read its log (3 requests). One that fails
    # adds its init container's log (none here: nothing staged) and its pod's events (4).
    assert len(made) <= 3 * jobs + jobs // 2
    assert not kube_api.requests("GET", f"/jobs/{handles[0].name}")  # never read one by one
    print(f"API requests per job: {len(made) / jobs:.1f} ({len(made)} for {jobs} jobs)")
    no_validation_errors(kube_api)


async def test_each_namespace_gets_one_watch(kube_api: FakeKubeAPI, backend: KubernetesBackend) -> None:
    specs = [make_spec(namespace=ns) for ns in ("default", "team-a", "team-a", "team-b")]
    handles = [await backend.submit(spec, {}) for spec in specs]
    await watching(kube_api, 3)
    waits = [asyncio.create_task(backend.wait(h, s)) for h, s in zip(handles, specs, strict=True)]
    for handle in handles:
        kube_api.set_job_succeeded(handle.namespace, handle.name)
    outcomes = await asyncio.wait_for(asyncio.gather(*waits), 5)
    assert {o.status for o in outcomes} == {"succeeded"}
    assert kube_api.watching("jobs") == 3 and kube_api.watching("pods") == 3
    assert len(kube_api.requests("GET", "/jobs", watch=True)) == 3


class Chunks:
    """A response body that arrives in the given pieces."""

    def __init__(self, *chunks: bytes) -> None:
        self.chunks = list(chunks)

    async def readany(self) -> bytes:
        return self.chunks.pop(0) if self.chunks else b""

    def at_eof(self) -> bool:
        return False  # the end is known only once readany hands out nothing


async def lines_of(*chunks: bytes) -> list[bytes]:
    return [line async for line in watch_lines(Chunks(*chunks))]


async def test_watch_lines_are_whole_events_whatever_the_chunks() -> None:
    assert await lines_of(b'{"a":1}\n{"b"', b":2}\n", b"\n", b'{"c"', b":", b"3}") == [
        b'{"a":1}',
        b'{"b":2}',
        b'{"c":3}',
    ]
    assert await lines_of(b'{"a":1}\n{"b":2}\n') == [b'{"a":1}', b'{"b":2}']
    assert await lines_of() == []


async def test_a_watch_event_without_end_is_refused_past_a_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(watchstream, "MAX_EVENT_BYTES", 10)
    assert await lines_of(b"0123456", b"789\n") == [b"0123456789"]
    with pytest.raises(ApiError, match="larger than 10 bytes"):
        await lines_of(b"0123456", b"78901")


async def test_unreadable_and_error_events_end_the_watch(backend: KubernetesBackend) -> None:
    tracker = backend.tracker(NAMESPACE)
    with pytest.raises(ApiError, match="unreadable watch event") as unreadable:
        tracker._event(b"{not json")
    assert unreadable.value.status == 0
    gone = {"kind": "Status", "code": 410, "reason": "Expired", "message": "too old resource version"}
    with pytest.raises(ApiError, match="HTTP 410 Expired: too old") as expired:
        tracker._event(json.dumps({"type": "ERROR", "object": gone}).encode())
    assert expired.value.status == 410  # what makes the tracker list again


async def test_tracked_jobs_keep_what_the_backend_reads(backend: KubernetesBackend) -> None:
    tracker = backend.tracker(NAMESPACE)
    job = {
        "metadata": {"name": "j1", "uid": "u1", "resourceVersion": "7", "managedFields": [{"manager": "x"}]},
        "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"spec": {"containers": []}}},
        "status": {"active": 1},
    }
    tracker.observe(job)
    kept = tracker.latest("j1")
    assert kept is not None and kept is not job
    assert kept["spec"] == {"selector": {"matchLabels": {"a": "b"}}} and kept["status"] == {"active": 1}
    assert "managedFields" not in kept["metadata"] and kept["metadata"]["uid"] == "u1"
    # The caller's object is left as it was.
    assert "template" in job["spec"] and "managedFields" in job["metadata"]
    # The status is held as its JSON: each reader gets its own, equal to what the API sent
    # (a 20-digit number included), and changing it changes nothing held.
    ended = {
        "succeeded": 1,
        "big": 12345678901234567890,
        "conditions": [{"type": "Complete", "status": "True"}],
    }
    tracker.observe({**job, "metadata": {**job["metadata"], "resourceVersion": "8"}, "status": ended})
    first = tracker.latest("j1")
    assert first is not None and first["status"] == ended and first["status"] is not ended
    first["status"]["conditions"].clear()
    again = tracker.latest("j1")
    assert again is not None and again["status"] == ended


def event_line(
    kind: str, conditions: list[dict[str, str]] | None = None, separators: tuple[str, str] = (",", ":")
) -> bytes:
    """A watch event as the API server writes it: compact JSON, type first."""
    job = {"kind": "Job", "metadata": {"name": "j", "uid": "u"}, "status": {"conditions": conditions or []}}
    return json.dumps({"type": kind, "object": job}, separators=separators).encode()


def test_only_progress_of_unfinished_jobs_is_passed_over_undecoded() -> None:
    met = [{"type": "SuccessCriteriaMet", "status": "True"}]
    assert kube_tracker._is_progress(event_line("ADDED"))
    assert kube_tracker._is_progress(event_line("MODIFIED", met))
    for ended in ("Complete", "Failed"):
        assert not kube_tracker._is_progress(
            event_line("MODIFIED", [*met, {"type": ended, "status": "True"}])
        )
        assert not kube_tracker._is_progress(event_line("ADDED", [{"type": ended, "status": "True"}]))
    # Deletions, bookmarks, errors and any other shape are always decoded.
    assert not kube_tracker._is_progress(event_line("DELETED"))
    assert not kube_tracker._is_progress(event_line("BOOKMARK"))
    assert not kube_tracker._is_progress(event_line("ERROR"))
    assert not kube_tracker._is_progress(event_line("MODIFIED", separators=(", ", ": ")))


class Reading:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.paused = False

    def pause_reading(self) -> None:
        self.calls.append("pause")
        self.paused = True

    def resume_reading(self) -> None:
        self.calls.append("resume")
        self.paused = False

    def is_reading(self) -> bool:
        return not self.paused

    def is_closing(self) -> bool:
        return False


async def test_a_resting_connection_is_resumed_even_when_the_watch_is_cancelled() -> None:
    reading = Reading()
    await watchstream.Pacer(reading, 0.01).rest()
    assert reading.calls == ["pause", "resume"]
    resting = asyncio.create_task(watchstream.Pacer(reading, 30).rest())
    await asyncio.sleep(0.01)
    resting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await resting
    assert reading.calls == ["pause", "resume"] * 2
    # No pausing without a moment to rest or without a connection that can pause.
    await watchstream.Pacer(reading, 0).rest()
    await watchstream.Pacer(None, 1).rest()
    await watchstream.Pacer(object(), 1).rest()  # type: ignore[arg-type]
    assert len(reading.calls) == 4


class Chunked:
    """A watch response's content that hands out the given chunks, then the end."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    async def readany(self) -> bytes:
        return self.chunks.pop(0) if self.chunks else b""

    def at_eof(self) -> bool:
        return False  # the end is known only once readany hands out nothing


async def test_a_stream_that_fills_each_read_is_read_without_resting() -> None:
    # Resting after every chunk capped the watch at one read per rest: at 200 events/s the
    # endings queued in the socket and tasks finished seconds late (bench/latency.py).
    line = b'{"type": "MODIFIED", "object": {"metadata": {"name": "j"}, "pad": "' + b"x" * 900 + b'"}}\n'
    busy = line * (watchstream.BUSY_CHUNK // len(line) + 1)
    reading = Reading()
    pacer = watchstream.Pacer(reading, 30)  # a rest would outlast the test's timeout
    lines = [item async for item in watchstream.watch_lines(Chunked([busy, busy, busy]), pacer)]
    assert len(lines) == 3 * busy.count(b"\n")
    assert reading.calls == []
    # A small chunk (a burst beginning) still rests, so what follows it is read together.
    quick = watchstream.Pacer(reading, 0.01)
    assert [item async for item in watchstream.watch_lines(Chunked([line, busy]), quick)][:1] == [line[:-1]]
    assert reading.calls == ["pause", "resume"]


async def test_a_burst_of_endings_is_read_in_one_go_and_progress_is_not_decoded(
    kube_api: FakeKubeAPI, backend: KubernetesBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    jobs = 12
    handles = [await backend.submit(make_spec(), {}) for _ in range(jobs)]
    tracker = JobTracker(await backend._ready(), NAMESPACE, SELECTOR, backoff=FAST_WATCH, coalesce=0.5)
    decoded: list[dict[str, object]] = []
    decode = tracker._event

    def counting(line: bytes) -> None:
        decoded.append(json.loads(line))
        decode(line)

    rests = 0
    rest = watchstream.Pacer.rest

    async def counting_rest(pacer: watchstream.Pacer, received: int = 0) -> None:
        nonlocal rests
        if pacer.seconds == 0.5:  # this tracker's, not the backend's own
            assert pacer.reading is not None, "the watch's connection cannot pause"
            rests += 1
        await rest(pacer, received)

    monkeypatch.setattr(tracker, "_event", counting)
    monkeypatch.setattr(watchstream.Pacer, "rest", counting_rest)
    tracker.start()
    try:
        await watching(kube_api, 2)  # the backend's own watch, and this one
        uids = {h.name: (kube_api.get("jobs", NAMESPACE, h.name) or {})["metadata"]["uid"] for h in handles}
        ends = [tracker.ending(h.name, uids[h.name]) for h in handles]
        # The first ending is read as soon as it comes; the others come one by one while the
        # connection rests after it, and are read together once it wakes.
        kube_api.set_job_succeeded(NAMESPACE, handles[0].name)
        await eventually(lambda: rests == 1, what="the first ending read")
        for handle in handles[1:]:
            kube_api.set_job_running(NAMESPACE, handle.name)
            kube_api.set_job_succeeded(NAMESPACE, handle.name)
            await asyncio.sleep(0.02)
        ended = await asyncio.wait_for(asyncio.gather(*ends), 5)
    finally:
        await tracker.close()
    assert [job["metadata"]["name"] for job in ended if job] == [h.name for h in handles]
    assert rests <= 3, f"{jobs} endings 20 ms apart took {rests} reads"
    # Each Job went through running and SuccessCriteriaMet before Complete: only the endings
    # (and any bookmark) were decoded.
    kinds = [event["type"] for event in decoded]
    assert kinds.count("MODIFIED") == jobs and set(kinds) <= {"MODIFIED", "BOOKMARK"}


async def test_jobs_that_end_together_have_their_outcomes_read_a_few_at_a_time(
    kube_api: FakeKubeAPI, backend: KubernetesBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    jobs = 3 * kube_backend.OUTCOME_READS
    specs = [make_spec() for _ in range(jobs)]
    handles = [await backend.submit(spec, {}) for spec in specs]
    reading, most = 0, 0
    read = harvest.outcome

    async def counted(api: Any, job: Any, pod: Any = None) -> Any:
        nonlocal reading, most
        reading += 1
        most = max(most, reading)
        try:
            await asyncio.sleep(0.02)  # a slow API server: the reads overlap if allowed to
            return await read(api, job, pod)
        finally:
            reading -= 1

    monkeypatch.setattr(harvest, "outcome", counted)
    waits = [asyncio.create_task(backend.wait(h, s)) for h, s in zip(handles, specs, strict=True)]
    await eventually(lambda: len(backend.tracker(NAMESPACE).waiting()) == jobs)
    for handle in handles:
        kube_api.set_job_succeeded(NAMESPACE, handle.name)
    outcomes = await asyncio.wait_for(asyncio.gather(*waits), 10)
    assert {o.status for o in outcomes} == {"succeeded"}
    assert most == kube_backend.OUTCOME_READS  # in parallel, but bounded


async def test_jobs_in_flight_cost_the_tracker_no_task_and_only_what_it_reads(
    kube_api: FakeKubeAPI, backend_factory: Any
) -> None:
    # 50,000 Jobs in flight must fit in the memory of a small pod (bench/tracking.py): a wait
    # holds a future whose deadline the tracker keeps, no task of its own, and the tracker keeps a
    # slim copy of the Job.
    backend = backend_factory(pod_start_grace=60)
    await backend.start()
    jobs = 20
    specs = [make_spec() for _ in range(jobs)]
    handles = [await backend.submit(spec, {}) for spec in specs]
    before = len(asyncio.all_tasks())
    waits = [asyncio.create_task(backend.wait(h, s)) for h, s in zip(handles, specs, strict=True)]
    tracker = backend.tracker(NAMESPACE)
    await eventually(lambda: len(tracker.waiting()) == jobs, what="every waiter")
    assert len(asyncio.all_tasks()) == before + jobs  # the waits themselves, nothing more
    kept = tracker.latest(handles[0].name)
    assert kept is not None
    assert set(kept["metadata"]) <= {"name", "namespace", "uid", "resourceVersion", "creationTimestamp"}
    assert set(kept.get("spec") or {}) <= {"selector"}
    # What was dropped is not what the outcome needs: every wait still ends with its log.
    for handle in handles:
        kube_api.set_job_succeeded(NAMESPACE, handle.name, log=f"{handle.name}\n")
    outcomes = await asyncio.wait_for(asyncio.gather(*waits), 10)
    assert [o.logs for o in outcomes] == [f"{h.name}\n" for h in handles]
    assert tracker.waiting() == []


async def test_the_lines_that_end_a_response_are_rested_after_without_an_error() -> None:
    # A watch's last lines arrive with the end of its response (here in one write, as they do
    # when the server ends a busy watch). Resting then paused aiohttp's parser, which asserted
    # that a response was still arriving: every watch's end counted as an error, and the retry's
    # backoff grew with each, until endings were read a backoff late (seen at 50,000 Jobs).
    first = b'{"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"7"}}}\n'
    last = b'{"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"8"}}}\n'

    def chunk(data: bytes) -> bytes:
        return f"{len(data):x}\r\n".encode() + data + b"\r\n"

    async def ending_watch(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        writer.write(head + chunk(first))
        await writer.drain()
        await asyncio.sleep(0.2)
        writer.write(chunk(last) + b"0\r\n\r\n")  # the last lines and the end, in one write
        await writer.drain()
        await reader.read()  # until the client closes
        writer.close()

    server = await asyncio.start_server(ending_watch, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/") as response:
            # Taken as the tracker takes it, once the headers are in.
            pacer = watchstream.Pacer(getattr(response.connection, "transport", None), 0.01)
            assert pacer.reading is not None
            lines = [line async for line in watchstream.watch_lines(response.content, pacer)]
    finally:
        server.close()
        await server.wait_closed()
    assert lines == [first.strip(), last.strip()]
