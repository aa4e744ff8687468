"""Admission that protects one cluster's API server: a token bucket on writes, a cap on pending Jobs.

Two limits, per cluster (each cluster of CLUSTERS_FILE has its own):

* KUBE_WRITE_QPS / KUBE_WRITE_BURST: every create, patch, replace and delete the backend sends
  takes a token first (KubeAPI.call). Tokens come back at QPS per second up to BURST; a caller
  without one waits, in arrival order. Reads, lists and watches are not limited: they are what
  tells the service that Jobs ended, and holding them back would only hold capacity longer. This
  is client-go's flowcontrol token bucket (k8s.io/client-go/util/flowcontrol/throttle.go), kept
  for writes alone.
* MAX_PENDING_JOBS: Jobs of ours created and not yet running (no ready pod, not ended). KEDA
  creating Jobs for ever while their pods are Pending (kedacore/keda#525) is what it prevents:
  a create waits while the cluster has this many. Running = `status.ready` >= 1 (or, from API
  servers older than 1.24 without that field, `status.active` >= 1), or ended.

While either makes a task wait, the service is *saturated*: `Admission.saturation()` says for
how long a sender should hold back (the backlog over the measured drain rate), and the sources
use it to pause (NATS) or answer 429 with Retry-After (HTTP).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import math
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import Any

WRITE_VERBS = ("create_", "patch_", "replace_", "delete_")
RATE_WINDOW = 30.0  # seconds of admissions the drain rate is measured over
RETRY_AFTER_MAX = 120
ENDINGS = ("Complete", "Failed", "FailureTarget")


def is_write(fn: Callable[..., Any]) -> bool:
    """Whether a kubernetes_asyncio API method changes objects (by its generated name)."""
    return getattr(fn, "__name__", "").startswith(WRITE_VERBS)


class _FairWait:
    """Waiters served strictly in arrival order by whoever frees room (`_grant`)."""

    def __init__(self) -> None:
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    @property
    def waiting(self) -> int:
        return sum(1 for f in self._waiters if not f.done())

    def _has_room(self) -> bool:
        raise NotImplementedError

    def _take(self) -> None:
        raise NotImplementedError

    async def _enter(self) -> None:
        if not self._waiters and self._has_room():
            self._take()
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        self._schedule()
        try:
            await future  # the granter took for us already
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self._give_back()
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(future)
            raise

    def _grant(self) -> None:
        while self._waiters:
            if self._waiters[0].done():
                self._waiters.popleft()
                continue
            if not self._has_room():
                self._schedule()
                return
            self._take()
            self._waiters.popleft().set_result(None)

    def _schedule(self) -> None:
        """Arrange a later _grant when room comes back by itself (time), not by a release."""

    def _give_back(self) -> None:
        raise NotImplementedError


class TokenBucket(_FairWait):
    """`rate` tokens a second, at most `burst` saved up; `rate` 0: no limit."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.rate = rate
        self.burst = max(1, burst)
        self._clock = clock
        self._tokens = float(self.burst)
        self._at = clock()
        self._timer: asyncio.TimerHandle | None = None

    async def take(self) -> None:
        if self.rate > 0:
            await self._enter()

    def seconds_for(self, count: int) -> float:
        """How long until `count` more tokens than are saved up now have come."""
        if self.rate <= 0:
            return 0.0
        self._refill()
        return max(0.0, (count - self._tokens) / self.rate)

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._at) * self.rate)
        self._at = now

    def _has_room(self) -> bool:
        self._refill()
        return self._tokens >= 1.0

    def _take(self) -> None:
        self._tokens -= 1.0

    def _give_back(self) -> None:
        self._tokens = min(float(self.burst), self._tokens + 1.0)
        self._grant()

    def _schedule(self) -> None:
        if self._timer is not None and not self._timer.cancelled():
            return
        delay = max(0.001, (1.0 - self._tokens) / self.rate)

        def fire() -> None:
            self._timer = None
            self._grant()

        self._timer = asyncio.get_running_loop().call_later(delay, fire)


class PendingCap(_FairWait):
    """At most `limit` Jobs created and not yet running; `limit` 0: no cap.

    A create holds a reservation from before its request until the backend has seen the
    created Job (`observed`), so concurrent creates cannot overshoot the cap between them."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit
        self.pending: set[str] = set()
        self._reserved = 0

    @property
    def count(self) -> int:
        return len(self.pending) + self._reserved

    @contextlib.asynccontextmanager
    async def creating(self) -> AsyncIterator[None]:
        if self.limit <= 0:
            yield
            return
        await self._enter()
        try:
            yield
        finally:
            self._give_back()  # the created Job is in `pending` by now (observed), or none was made

    def observed(self, job: Mapping[str, Any]) -> None:
        """A version of one of our Jobs (created, listed, watched): pending or not any more."""
        name = str((job.get("metadata") or {}).get("name") or "")
        if not name:
            return
        if is_pending(job):
            self.pending.add(name)
        elif name in self.pending:
            self.pending.discard(name)
            self._grant()

    def gone(self, name: str) -> None:
        if name in self.pending:
            self.pending.discard(name)
            self._grant()

    def _has_room(self) -> bool:
        return self.count < self.limit

    def _take(self) -> None:
        self._reserved += 1

    def _give_back(self) -> None:
        self._reserved -= 1
        self._grant()


def is_pending(job: Mapping[str, Any]) -> bool:
    """Created, not ended, and no pod of it ready (running) yet."""
    status = job.get("status") or {}
    for condition in status.get("conditions") or []:
        if condition.get("type") in ENDINGS and condition.get("status") == "True":
            return False
    if "ready" in status:
        return not status.get("ready")
    return not status.get("active")


class Admission:
    """One cluster's limits, and what they make wait (for /readyz, /metrics and the sources)."""

    def __init__(self, write_qps: float = 0.0, write_burst: int = 1, max_pending: int = 0) -> None:
        self.writes = TokenBucket(write_qps, write_burst)
        self.pending = PendingCap(max_pending)
        self._admitted: collections.deque[float] = collections.deque()

    @property
    def active(self) -> bool:
        return self.writes.rate > 0 or self.pending.limit > 0

    def waiting(self) -> int:
        return self.writes.waiting + self.pending.waiting

    def admitted(self) -> None:
        """A Job was created: counted for the drain rate."""
        now = time.monotonic()
        self._admitted.append(now)
        while self._admitted and self._admitted[0] < now - RATE_WINDOW:
            self._admitted.popleft()

    def drain_rate(self) -> float:
        """Jobs created a second lately; before any were, the write rate (or one a second)."""
        now = time.monotonic()
        recent = [t for t in self._admitted if t >= now - RATE_WINDOW]
        if len(recent) >= 2 and recent[-1] > recent[0]:
            return (len(recent) - 1) / (recent[-1] - recent[0])
        return self.writes.rate or 1.0

    def detail(self) -> dict[str, Any]:
        return {
            "pendingJobs": self.pending.count,
            "maxPendingJobs": self.pending.limit,
            "waitingForAdmission": self.waiting(),
        }


def saturation(admissions: Iterable[Admission], backlog_extra: int = 0) -> int | None:
    """None while nothing waits for admission; else the seconds a sender should wait before
    sending again: everything waiting (tasks held back plus `backlog_extra`, the events queued
    behind them) over the rate at which the clusters take Jobs, rounded up, 1 to 120."""
    held = [a for a in admissions if a.active]
    waiting = sum(a.waiting() for a in held)
    if not waiting:
        return None
    rate = sum(a.drain_rate() for a in held) or 1.0
    return max(1, min(RETRY_AFTER_MAX, math.ceil((waiting + backlog_extra) / rate)))
