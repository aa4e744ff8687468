"""Several clusters behind one Backend: capacity limits, choice by free capacity, failover.

Each cluster of CLUSTERS_FILE (clusterfile.py) gets its own KubernetesBackend (client, watches).
A task is placed on the eligible cluster with the most free capacity (fewest held Jobs for its
`maxConcurrentJobs`), ties by `priority`, then by the file's order, as atomic-reactor's
orchestrator chooses among a platform's clusters (osbs-client's cluster config and
atomic-reactor's orchestrate_build plugin: load = running / max_concurrent_builds). Eligible:
enabled, labels matching the task's clusterSelector, and not in a failure back-off. When every
eligible cluster is full the task waits in order (the gauge job_executor_tasks_waiting_for_cluster)
rather than creating Jobs that pile up Pending.

Where a task went is written to the state (`Placements`) before its Job is created, so a submit
after a restart or a redelivery goes to the same cluster and is answered 409 there (adopt), never
creates a second Job elsewhere. A create that fails without the request having reached the
server (connection refused), with a 5xx after the client's retries, or with a quota 403 moves to
the next eligible cluster and puts the failing one in a back-off. A timeout does not move the
task: the Job may exist, so the event is tried again later on the same cluster.

"Held" counts the Jobs of ours this process placed or adopted and has not seen end: exact for the
one active replica, which is the only one that creates Jobs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from executor.backends.base import BackendError
from executor.backends.kubernetes.admission import Admission
from executor.backends.kubernetes.api import (
    ApiError,
    ApiOverQuota,
    ApiRefused,
    ApiUnavailable,
    ApiUnreachable,
)
from executor.backends.kubernetes.backend import KubernetesBackend
from executor.backends.kubernetes.clusterfile import Clusters, ClusterSpec
from executor.backends.naming import A_EVENT_ID, A_EVENT_SOURCE, spec_job_name
from executor.model.tasks import Adopted, TaskHandle, TaskOutcome, TaskSpec
from executor.support.backoff import CLUSTER_RETRY, Backoff
from executor.support.metrics import Metrics

log = logging.getLogger(__name__)

WAITING_GAUGE = "job_executor_tasks_waiting_for_cluster"


class Placements(Protocol):
    """Which cluster holds each task (its Job name), kept across restarts (StateStore)."""

    def placement(self, job: str) -> str | None: ...

    def place(self, job: str, cluster: str, source: str, event_id: str) -> None: ...


class NoCluster(ApiRefused):
    """No cluster of CLUSTERS_FILE can ever take this task (none enabled matches its selector)."""


@dataclass
class Member:
    spec: ClusterSpec
    backend: KubernetesBackend
    held: set[str] = field(default_factory=set)
    failures: int = 0
    failing_until: float = 0.0  # monotonic
    last_error: str = ""

    @property
    def name(self) -> str:
        return self.spec.name

    def failing(self, now: float) -> bool:
        return now < self.failing_until

    def free(self) -> int:
        return self.spec.max_concurrent_jobs - len(self.held)

    def load(self) -> float:
        limit = self.spec.max_concurrent_jobs
        return len(self.held) / limit if limit else 1.0


@dataclass
class _Waiter:
    selector: Mapping[str, str]
    skip: frozenset[str]
    job: str
    future: asyncio.Future[Member]


def selector_of(spec: TaskSpec) -> Mapping[str, str]:
    return spec.cluster_selector


class MultiClusterBackend:
    name = "kubernetes"

    def __init__(
        self,
        clusters: Clusters,
        make_member: Callable[[ClusterSpec], KubernetesBackend],
        placements: Placements,
        *,
        default_namespace: str = "",
        metrics: Metrics | None = None,
        failure_backoff: Backoff = CLUSTER_RETRY,
    ) -> None:
        self.clusters = clusters  # the current view; a reload swaps it whole
        self._make_member = make_member
        self.placements = placements
        self.default_namespace = default_namespace
        self.metrics = metrics or Metrics()
        self.failure_backoff = failure_backoff
        self._members: dict[str, Member] = {c.name: Member(c, make_member(c)) for c in clusters.members}
        self._where: dict[str, str] = {}  # job name -> cluster, for wait and cancel
        self._waiters: list[_Waiter] = []
        self._wakeups: list[asyncio.TimerHandle] = []
        self._closed = False
        self.metrics.gauge(WAITING_GAUGE, lambda: float(len(self._waiters)))
        for member in self._members.values():
            self._gauges(member)

    # ---- lifecycle ----

    async def start(self) -> None:
        results = await asyncio.gather(
            *(m.backend.start() for m in self._members.values()), return_exceptions=True
        )
        for member, result in zip(list(self._members.values()), results, strict=True):
            if isinstance(result, BaseException):
                if not isinstance(result, Exception):
                    raise result
                self._failed(member, result)
        log.info("clusters: %s", ", ".join(self._describe(m) for m in self._members.values()))
        if all(m.failing(time.monotonic()) for m in self._members.values()):
            raise ApiError("no cluster of CLUSTERS_FILE could be reached: " + self._problems())

    async def close(self) -> None:
        self.stop_waiting()
        for handle in self._wakeups:
            handle.cancel()
        await asyncio.gather(*(m.backend.close() for m in self._members.values()), return_exceptions=True)

    def stop_waiting(self) -> None:
        """Stopping: tasks still waiting for room are not submitted (their events resume on the next
        start), so a graceful stop does not wait for capacity that may never come."""
        self._closed = True
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.future.done():
                waiter.future.set_exception(ApiUnavailable("stopping: the task was not submitted"))

    def reload(self, clusters: Clusters) -> None:
        """Take a new reading of the file. A known name must keep its kubeconfig and context (the
        client is built once); new names are added (started by the caller: `start_new`), removed
        ones take no new tasks but are still waited on for what they hold."""
        for spec in clusters.members:
            old = self._members.get(spec.name)
            if old is not None and old.spec.where() != spec.where():
                raise ValueError(
                    f"{clusters.source}: cluster {spec.name!r} changed its kubeconfig or context; "
                    "that needs a restart (or a new name)"
                )
        for spec in clusters.members:
            member = self._members.get(spec.name)
            if member is None:
                member = self._members[spec.name] = Member(spec, self._make_member(spec))
                self._gauges(member)
            member.spec = spec
        self.clusters = clusters
        self._wake()

    async def start_new(self) -> None:
        for member in self._members.values():
            if not member.backend.watched_namespaces() and member.name in self.clusters.names():
                try:
                    await member.backend.start()
                except Exception as exc:
                    self._failed(member, exc)

    # ---- the Backend protocol ----

    async def submit(self, spec: TaskSpec, files: Mapping[str, bytes]) -> TaskHandle:
        job = spec_job_name(spec)
        known = self.placements.placement(job)
        if known is not None and known in self._members:
            # Placed before (a restart, a redelivery): only there can its Job exist.
            member = self._members[known]
            self._hold(member, job)
            return await member.backend.submit(self._local(spec, member), files)
        tried: set[str] = set()
        while True:
            member = await self._choose(spec, job, frozenset(tried))
            self.placements.place(job, member.name, spec.trigger.event_source, spec.trigger.event_id)
            try:
                handle = await member.backend.submit(self._local(spec, member), files)
            except ApiError as exc:
                if not _moves(exc):
                    self._release(member, job)
                    raise
                self._failed(member, exc)
                self._release(member, job)
                tried.add(member.name)
                log.warning(
                    "cluster %s could not take Job %s (%s); trying the next one", member.name, job, exc
                )
                continue
            self._recovered(member)
            return handle

    async def wait(self, handle: TaskHandle, spec: TaskSpec) -> TaskOutcome:
        member = self._member_of(handle.name)
        try:
            outcome = await member.backend.wait(handle, self._local(spec, member))
        except BackendError as exc:
            if not isinstance(exc, ApiUnavailable):  # a failure for good: the pipeline records it
                self._release(member, handle.name)
            raise
        self._release(member, handle.name)
        return outcome

    async def cancel(self, handle: TaskHandle) -> None:
        member = self._member_of(handle.name)
        await member.backend.cancel(handle)
        self._release(member, handle.name)

    async def live_log(self, job: str) -> str | None:
        try:
            member = self._member_of(job)
        except ApiError:
            return None
        return await member.backend.live_log(job)

    async def adopt(self) -> list[Adopted]:
        """Every cluster's Jobs of ours; an unreachable one is skipped (and backed off) and its
        tasks are taken up when their events resume."""
        members = list(self._members.values())
        results = await asyncio.gather(*(m.backend.adopt() for m in members), return_exceptions=True)
        found: list[Adopted] = []
        for member, result in zip(members, results, strict=True):
            if isinstance(result, BaseException):
                if not isinstance(result, Exception):
                    raise result
                self._failed(member, result)
                log.error("cluster %s: cannot list its Jobs to adopt them: %s", member.name, result)
                continue
            self._recovered(member)
            for adopted in result:
                job = adopted.handle.name
                placed = self.placements.placement(job)
                if placed is not None and placed != member.name:
                    log.warning("Job %s found in cluster %s but placed in %s", job, member.name, placed)
                    continue
                if placed is None:
                    notes = adopted.annotations
                    self.placements.place(
                        job, member.name, notes.get(A_EVENT_SOURCE, ""), notes.get(A_EVENT_ID, "")
                    )
                if adopted.running:
                    self._hold(member, job)
                found.append(adopted)
        return found

    async def discard(self, names: Sequence[str]) -> None:
        """Nothing to do: a Job goes by its ttlSecondsAfterFinished."""

    # ---- what /readyz and /metrics show ----

    def admissions(self) -> list[Admission]:
        return [m.backend.admission for m in self._members.values()]

    def not_ready(self) -> str | None:
        """Unready only when no enabled cluster is usable: one failing while another serves is detail."""
        now = time.monotonic()
        usable = [
            m
            for m in self._members.values()
            if m.spec.enabled and m.name in self.clusters.names() and not m.failing(now)
        ]
        return None if usable else "no cluster can take Jobs: " + self._problems()

    def detail(self) -> dict[str, Any]:
        now = time.monotonic()
        clusters = {}
        for member in self._members.values():
            entry: dict[str, Any] = {
                "enabled": member.spec.enabled and member.name in self.clusters.names(),
                "jobs": len(member.held),
                "maxConcurrentJobs": member.spec.max_concurrent_jobs,
                # failing from its last failed call until one succeeds again; it is tried again
                # (by the next task that may go there) once retryInSeconds has passed
                "state": "failing" if member.failures else "ok",
            }
            if member.backend.admission.active:
                entry.update(member.backend.admission.detail())
            if member.failures:
                entry["retryInSeconds"] = round(max(0.0, member.failing_until - now), 1)
                entry["error"] = member.last_error
            clusters[member.name] = entry
        return {"clusters": clusters, "waiting": len(self._waiters)}

    # ---- choosing ----

    async def _choose(self, spec: TaskSpec, job: str, skip: frozenset[str]) -> Member:
        selector = selector_of(spec)
        eligible = self._eligible(selector, skip)
        if not eligible:
            if skip:
                raise ApiUnavailable(
                    "every eligible cluster failed: " + self._problems(), 0, "ClustersFailing"
                )
            wanted = ", ".join(f"{k}={v}" for k, v in selector.items()) or "(any)"
            raise NoCluster(
                f"no enabled cluster in {self.clusters.source or 'CLUSTERS_FILE'} has the labels "
                f"{wanted} this task's clusterSelector asks for; add one or change the selector",
                0,
                "NoCluster",
            )
        now = time.monotonic()
        if all(m.failing(now) for m in eligible):
            delay = min(m.failing_until for m in eligible) - now
            error = ApiUnavailable(
                "every eligible cluster is failing: " + self._problems(), 0, "ClustersFailing"
            )
            error.delay = max(1.0, delay)
            raise error
        if self._closed:
            raise ApiUnavailable("stopping: the task was not submitted")
        waiter = _Waiter(selector, skip, job, asyncio.get_running_loop().create_future())
        self._waiters.append(waiter)
        self._wake()
        return await waiter.future

    def _eligible(self, selector: Mapping[str, str], skip: frozenset[str]) -> list[Member]:
        return [
            self._members[c.name]
            for c in self.clusters.members
            if c.enabled and c.matches(selector) and c.name not in skip
        ]

    def _pick(self, waiter: _Waiter, now: float) -> Member | None:
        room = [
            m for m in self._eligible(waiter.selector, waiter.skip) if not m.failing(now) and m.free() > 0
        ]
        if not room:
            return None
        order = {name: i for i, name in enumerate(self.clusters.names())}
        return min(room, key=lambda m: (m.load(), m.spec.priority, order[m.name]))

    def _wake(self) -> None:
        """Hand free room to the waiters in arrival order; one that fits nowhere yet keeps its place
        without holding back a later one that asks for other clusters."""
        now = time.monotonic()
        keep: list[_Waiter] = []
        for waiter in self._waiters:
            if waiter.future.done():
                continue
            member = self._pick(waiter, now)
            if member is None:
                keep.append(waiter)
                continue
            self._hold(member, waiter.job)
            waiter.future.set_result(member)
        self._waiters = keep

    # ---- bookkeeping ----

    def _hold(self, member: Member, job: str) -> None:
        self._where[job] = member.name
        member.held.add(job)

    def _release(self, member: Member, job: str) -> None:
        member.held.discard(job)
        self._wake()

    def _member_of(self, job: str) -> Member:
        name = self._where.get(job) or self.placements.placement(job)
        if name is None or name not in self._members:
            raise ApiError(f"Job {job} was placed in no known cluster (was it removed from CLUSTERS_FILE?)")
        return self._members[name]

    def _failed(self, member: Member, exc: BaseException) -> None:
        delay = self.failure_backoff.delay(member.failures)
        member.failures += 1
        member.failing_until = time.monotonic() + delay
        member.last_error = str(exc)
        self.metrics.inc("job_executor_cluster_failures_total", cluster=member.name)
        log.warning("cluster %s fails (%s); skipped for %.1f s", member.name, exc, delay)
        self._wakeups.append(asyncio.get_running_loop().call_later(delay, self._wake))

    def _recovered(self, member: Member) -> None:
        if member.failures:
            log.info("cluster %s takes Jobs again", member.name)
        member.failures, member.failing_until, member.last_error = 0, 0.0, ""

    def _local(self, spec: TaskSpec, member: Member) -> TaskSpec:
        """Tasks that name no namespace (JOB_NAMESPACE) run in the cluster's own namespace."""
        if member.spec.namespace and spec.namespace == self.default_namespace:
            return replace(spec, namespace=member.spec.namespace)
        return spec

    def _gauges(self, member: Member) -> None:
        name = member.name
        self.metrics.gauge("job_executor_cluster_jobs", lambda: float(len(member.held)), cluster=name)
        self.metrics.gauge(
            "job_executor_cluster_failing",
            lambda: 1.0 if member.failures else 0.0,
            cluster=name,
        )

    def _problems(self) -> str:
        now = time.monotonic()
        failing = [f"{m.name}: {m.last_error}" for m in self._members.values() if m.failing(now)]
        return "; ".join(failing) or "none enabled"

    def _describe(self, m: Member) -> str:
        state = "failing" if m.failing(time.monotonic()) else "ok"
        return f"{m.name} (max {m.spec.max_concurrent_jobs}, {state})"


def _moves(exc: ApiError) -> bool:
    """Whether a failed create may go to another cluster: surely not created here (no connection,
    a quota 403) or the server broken (5xx after the client's own retries)."""
    return isinstance(exc, ApiUnreachable | ApiOverQuota) or exc.status >= 500
