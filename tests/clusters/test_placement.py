"""Tasks spread over fake clusters: free capacity first, never above a cluster's max, waiting in
order, failover when a cluster stops, the same cluster again after a restart."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from executor.backends.kubernetes.clusters import WAITING_GAUGE, MultiClusterBackend
from executor.backends.naming import spec_job_name
from executor.model.errors import Permanent, Temporary
from executor.model.tasks import TaskOutcome, TaskSpec
from executor.state import StateStore
from tests.clusters.conftest import NAMESPACE, Fleet, eventually, make_spec


def spec(n: int = 0, **changes: Any) -> TaskSpec:
    return make_spec(f"event-{n}", namespace=NAMESPACE, **changes)


async def run(backend: MultiClusterBackend, task: TaskSpec) -> TaskOutcome:
    handle = await backend.submit(task, {})
    return await backend.wait(handle, task)


@pytest.mark.parametrize("auto", [(0.05, "succeeded")])
async def test_tasks_go_where_most_room_is_and_never_above_the_max(fleet_factory: Any, auto: Any) -> None:
    fleet: Fleet = await fleet_factory({"a": 2, "b": 3, "c": 1}, auto_complete=auto)
    backend = await fleet.backend()
    outcomes = await asyncio.gather(*(run(backend, spec(i)) for i in range(24)))
    assert all(o.ok for o in outcomes)
    peaks = {name: api.peak_active_jobs for name, api in fleet.servers.items()}
    assert peaks == {"a": 2, "b": 3, "c": 1}, peaks  # each filled, none beyond its max
    counts = {name: len(fleet.jobs(name)) for name in fleet.servers}
    assert sum(counts.values()) == 24 and min(counts.values()) > 0, counts
    # every task's cluster is in the state, and holds its Job
    for i in range(24):
        job = spec_job_name(spec(i))
        assert job in fleet.jobs(fleet.store.placement(job) or "")


async def test_free_capacity_then_priority_decides(fleet_factory: Any) -> None:
    fleet: Fleet = await fleet_factory({"a": 4, "b": 2})
    fleet.write(
        [
            {"name": "a", "kubeconfig": str(fleet.file.parent / "a.kubeconfig"), "maxConcurrentJobs": 4},
            {
                "name": "b",
                "kubeconfig": str(fleet.file.parent / "b.kubeconfig"),
                "maxConcurrentJobs": 2,
                "priority": -1,
            },
        ]
    )
    backend = await fleet.backend()
    await backend.submit(spec(1), {})  # both empty: b by priority
    await backend.submit(spec(2), {})  # a 0/4 vs b 1/2: a
    await backend.submit(spec(3), {})  # a 1/4 vs b 1/2: a
    assert fleet.jobs("b") == [spec_job_name(spec(1))]
    assert sorted(fleet.jobs("a")) == sorted([spec_job_name(spec(2)), spec_job_name(spec(3))])


async def test_a_full_fleet_makes_tasks_wait_in_order(fleet_factory: Any) -> None:
    fleet: Fleet = await fleet_factory({"a": 1, "b": 1})
    backend = await fleet.backend()
    first = [await backend.submit(spec(i), {}) for i in (1, 2)]
    later = [asyncio.create_task(backend.submit(spec(i), {})) for i in (3, 4)]
    await eventually(lambda: fleet.metrics.read_gauge(WAITING_GAUGE) == 2, what="two waiting")
    assert "job_executor_tasks_waiting_for_cluster 2" in fleet.metrics.render()
    assert sum(len(fleet.jobs(n)) for n in fleet.servers) == 2  # no Job piles up meanwhile
    # the first task on a ends: the first waiter (3) takes its place there, 4 still waits
    where = fleet.store.placement(first[0].name)
    assert where is not None
    fleet.servers[where].set_job_succeeded(NAMESPACE, first[0].name)
    assert (await backend.wait(first[0], spec(1))).ok
    third = await later[0]
    assert fleet.store.placement(third.name) == where and not later[1].done()
    assert fleet.metrics.read_gauge(WAITING_GAUGE) == 1
    backend.stop_waiting()
    with pytest.raises(Temporary):
        await later[1]


async def test_a_stopped_cluster_is_skipped_and_reported_but_the_service_stays_ready(
    fleet_factory: Any,
) -> None:
    fleet: Fleet = await fleet_factory({"a": 5, "b": 5})
    backend = await fleet.backend()
    before = await backend.submit(spec(1), {})
    stopped = fleet.store.placement(before.name)
    assert stopped is not None
    other = "b" if stopped == "a" else "a"
    await fleet.servers[stopped].stop()  # mid-run: it holds a running Job
    moved = [await backend.submit(spec(i), {}) for i in (2, 3, 4)]
    assert all(fleet.store.placement(h.name) == other for h in moved)
    detail = backend.detail()["clusters"]
    assert detail[stopped]["state"] == "failing" and "connect" in detail[stopped]["error"]
    assert detail[other]["state"] == "ok"
    assert backend.not_ready() is None
    assert 'job_executor_cluster_failing{cluster="' + stopped + '"} 1' in fleet.metrics.render()
    # the cluster comes back: its Job is still there, and is reported from there
    await fleet.servers[stopped].start()
    fleet.servers[stopped].set_job_succeeded(NAMESPACE, before.name)
    assert (await asyncio.wait_for(backend.wait(before, spec(1)), 10)).ok


async def test_unready_only_when_no_cluster_can_take_jobs(fleet_factory: Any) -> None:
    fleet: Fleet = await fleet_factory({"a": 5, "b": 5})
    backend = await fleet.backend()
    for api in fleet.servers.values():
        await api.stop()
    with pytest.raises(Temporary, match="every eligible cluster"):
        await backend.submit(spec(1), {})
    reason = backend.not_ready()
    assert reason is not None and "a:" in reason and "b:" in reason


async def test_5xx_and_quota_403_move_the_task_to_the_next_cluster(fleet_factory: Any) -> None:
    fleet: Fleet = await fleet_factory({"a": 5, "b": 5})
    fleet.write(
        [
            {"name": "a", "kubeconfig": str(fleet.file.parent / "a.kubeconfig"), "priority": 0},
            {"name": "b", "kubeconfig": str(fleet.file.parent / "b.kubeconfig"), "priority": 1},
        ]
    )
    backend = await fleet.backend()
    fleet.servers["a"].fail_next(
        1,
        403,
        "POST",
        "/jobs",
        reason="Forbidden",
        message='jobs "x" is forbidden: exceeded quota: compute, requested: count/jobs.batch=1',
    )
    first = await backend.submit(spec(1), {})
    assert fleet.store.placement(first.name) == "b"
    await asyncio.sleep(0.6)  # a's back-off (0.2 to 0.5 s in tests) passes
    fleet.servers["a"].fail_next(10, 503, "POST", "/jobs")
    second = await backend.submit(spec(2), {})
    assert fleet.store.placement(second.name) == "b"
    assert fleet.jobs("a") == []


async def test_an_rbac_403_is_not_a_reason_to_move(fleet_factory: Any) -> None:
    fleet: Fleet = await fleet_factory({"a": 5, "b": 5})
    backend = await fleet.backend()
    for api in fleet.servers.values():
        api.fail_next(
            1, 403, "POST", "/jobs", reason="Forbidden", message="jobs is forbidden: User cannot create"
        )
    with pytest.raises(Exception, match="outside its RBAC"):
        await backend.submit(spec(1), {})
    assert sum(len(fleet.jobs(n)) for n in fleet.servers) == 0


async def test_after_a_restart_each_task_is_found_in_its_own_cluster(fleet_factory: Any) -> None:
    fleet: Fleet = await fleet_factory({"a": 1, "b": 1})
    first = await fleet.backend()
    handles = [await first.submit(spec(i), {}) for i in (1, 2)]
    placed = {h.name: fleet.store.placement(h.name) for h in handles}
    assert set(placed.values()) == {"a", "b"}
    await first.close()
    # a new process, the same state: adoption lists every cluster, resubmits adopt (409) where
    # the Job is, and the capacity they hold counts from the start
    again = await fleet.backend()
    adopted = await again.adopt()
    assert sorted(a.handle.name for a in adopted) == sorted(placed)
    assert backend_jobs(again) == {"a": 1, "b": 1}
    for i, handle in zip((1, 2), handles, strict=True):
        resubmitted = await again.submit(spec(i), {})
        assert resubmitted.adopted and fleet.store.placement(resubmitted.name) == placed[handle.name]
    assert sorted(len(fleet.jobs(n)) for n in fleet.servers) == [1, 1]
    for name, api in fleet.servers.items():
        for job in fleet.jobs(name):
            api.set_job_succeeded(NAMESPACE, job)
    outcomes = [await again.wait(h, spec(i)) for i, h in zip((1, 2), handles, strict=True)]
    assert all(o.ok for o in outcomes)


async def test_placements_survive_in_the_state_and_old_databases_get_the_table(tmp_path: Any) -> None:
    import sqlite3

    path = tmp_path / "old.db"
    old = sqlite3.connect(path)
    old.execute(
        "CREATE TABLE runs (source TEXT, id TEXT, event TEXT, state TEXT, received_at REAL,"
        " config_digest TEXT, PRIMARY KEY (source, id))"
    )
    old.commit()
    old.close()
    store = StateStore(path)
    store.place("job-1", "east", "src", "id-1")
    store.close()
    again = StateStore(path)
    assert again.placement("job-1") == "east" and again.placement("job-2") is None
    again.close()


def backend_jobs(backend: MultiClusterBackend) -> dict[str, int]:
    return {name: entry["jobs"] for name, entry in backend.detail()["clusters"].items()}


async def test_a_cluster_selector_routes_the_task_and_an_unmatched_one_fails_it(fleet_factory: Any) -> None:
    fleet: Fleet = await fleet_factory({"x86": 5, "arm": 1})
    fleet.write(
        [
            {
                "name": "x86",
                "kubeconfig": str(fleet.file.parent / "x86.kubeconfig"),
                "labels": {"platform": "x86_64"},
            },
            {
                "name": "arm",
                "kubeconfig": str(fleet.file.parent / "arm.kubeconfig"),
                "maxConcurrentJobs": 1,
                "labels": {"platform": "arm64"},
            },
        ]
    )
    backend = await fleet.backend()
    arm = await backend.submit(spec(1, cluster_selector={"platform": "arm64"}), {})
    assert fleet.store.placement(arm.name) == "arm"
    # arm is full: the next arm64 task waits rather than go to the emptier x86 cluster
    waiting = asyncio.create_task(backend.submit(spec(2, cluster_selector={"platform": "arm64"}), {}))
    anywhere = await backend.submit(spec(3), {})
    assert fleet.store.placement(anywhere.name) == "x86" and not waiting.done()
    with pytest.raises(Permanent, match="platform=s390x"):
        await backend.submit(spec(4, cluster_selector={"platform": "s390x"}), {})
    backend.stop_waiting()
    with pytest.raises(Temporary):
        await waiting
