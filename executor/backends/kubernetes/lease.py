"""Leader election on a coordination.k8s.io/v1 Lease: one replica creates Jobs, the others wait.

The rules are client-go's (k8s.io/client-go/tools/leaderelection/leaderelection.go,
tryAcquireOrRenew), kept small:

* The Lease names its holder (`holderIdentity`), how long a holder that stops renewing keeps it
  (`leaseDurationSeconds`) and when it last renewed (`renewTime`).
* A candidate takes the Lease when nobody holds it, or when the record has not changed for the
  lease duration *as measured by the candidate's own clock since it first saw that record*: no
  two clocks are compared, so skew between nodes cannot hand the Lease over early.
* Every write is an update with the resourceVersion read just before (optimistic concurrency):
  of two candidates writing at once the API server takes one and answers the other 409 Conflict.
* The leader renews every third of the duration; one that could not renew for two thirds of it
  (the renew deadline) stops leading *before* anyone else may take over, and the service then
  exits, so no two replicas ever create Jobs at the same time.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubernetes_asyncio import client

from executor.backends.kubernetes.api import ApiError, JSONBody, KubeAPI

log = logging.getLogger(__name__)


def default_identity() -> str:
    """The pod's name (its hostname) and a random suffix, as client-go's examples make it: a
    restarted container must not mistake the Lease its predecessor held for its own."""
    return f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}"


def micro_time(at: float | None = None) -> str:
    """A metav1.MicroTime: RFC 3339 with microseconds, UTC."""
    moment = datetime.fromtimestamp(time.time() if at is None else at, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class LeaseTiming:
    duration: float  # leaseDurationSeconds
    renew_deadline: float  # a leader that could not renew for this long stops leading
    retry_period: float  # how often candidates try and leaders renew

    @classmethod
    def of(cls, duration: int) -> LeaseTiming:
        return cls(float(duration), duration * 2 / 3, duration / 3)


class LostLease(RuntimeError):
    """This replica no longer leads: it must stop creating Jobs at once."""


class LeaderElector:
    def __init__(
        self,
        api: KubeAPI,
        namespace: str,
        name: str,
        identity: str,
        timing: LeaseTiming,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api = api
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.timing = timing
        self.clock = clock
        self.leading = False
        self.holder = ""  # who holds the Lease, as last read
        self._observed: tuple[str, str] = ("", "")  # (holder, renewTime) last seen
        self._observed_at = 0.0
        self._coordination = client.CoordinationV1Api(api.api_client)

    async def acquire(self) -> None:
        """Until this replica holds the Lease."""
        announced = ""
        while not await self.try_acquire_or_renew():
            if self.holder and self.holder != announced:
                announced = self.holder
                log.info("standing by: Lease %s/%s is held by %s", self.namespace, self.name, self.holder)
            await asyncio.sleep(self.timing.retry_period)
        self.leading = True
        log.info("leading: this replica (%s) holds Lease %s/%s", self.identity, self.namespace, self.name)

    async def keep(self) -> None:
        """Renew while leading; raises LostLease once a renewal has not succeeded for the renew
        deadline, or another replica holds the Lease."""
        renewed = self.clock()
        while True:
            await asyncio.sleep(self.timing.retry_period)
            try:
                async with asyncio.timeout(max(0.05, renewed + self.timing.renew_deadline - self.clock())):
                    ok = await self.try_acquire_or_renew()
            except TimeoutError:
                ok = False
            if ok:
                renewed = self.clock()
                continue
            taken = self.holder not in ("", self.identity)
            if taken or self.clock() >= renewed + self.timing.renew_deadline:
                self.leading = False
                raise LostLease(
                    f"Lease {self.namespace}/{self.name} not renewed for "
                    f"{self.clock() - renewed:.1f} s (renew deadline {self.timing.renew_deadline:g} s; "
                    f"held by {self.holder or 'nobody'})"
                )

    async def release(self) -> None:
        """A graceful stop hands the Lease on at once (client-go's ReleaseOnCancel)."""
        if not self.leading:
            return
        self.leading = False
        try:
            lease = await self._read()
            if lease is None or (lease.get("spec") or {}).get("holderIdentity") != self.identity:
                return
            lease["spec"].update(holderIdentity="", leaseDurationSeconds=1, renewTime=micro_time())
            await self._replace(lease)
        except ApiError as exc:
            log.warning("could not release Lease %s/%s: %s", self.namespace, self.name, exc)

    async def try_acquire_or_renew(self) -> bool:
        now = self.clock()
        try:
            lease = await self._read()
            if lease is None:
                return self._won(await self._create() is not None)
            spec = lease.setdefault("spec", {})
            holder = str(spec.get("holderIdentity") or "")
            record = (holder, str(spec.get("renewTime") or ""))
            if record != self._observed:
                self._observed, self._observed_at = record, now
            self.holder = holder
            duration = float(spec.get("leaseDurationSeconds") or self.timing.duration)
            if holder and holder != self.identity and now < self._observed_at + duration:
                return False
            stamp = micro_time()
            if holder != self.identity:
                spec["acquireTime"] = stamp
                spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + (1 if holder else 0)
            spec.update(
                holderIdentity=self.identity,
                leaseDurationSeconds=int(self.timing.duration),
                renewTime=stamp,
            )
            return self._won(await self._replace(lease))
        except ApiError as exc:
            log.warning("Lease %s/%s: %s", self.namespace, self.name, exc)
            return False

    def _won(self, written: bool) -> bool:
        if written:
            self.holder = self.identity
        return written

    async def _read(self) -> dict[str, Any] | None:
        try:
            lease: dict[str, Any] = await self.api.call(
                f"reading Lease {self.namespace}/{self.name}",
                self._coordination.read_namespaced_lease,
                self.name,
                self.namespace,
            )
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise
        return lease

    async def _create(self) -> dict[str, Any] | None:
        stamp = micro_time()
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": int(self.timing.duration),
                "acquireTime": stamp,
                "renewTime": stamp,
                "leaseTransitions": 0,
            },
        }
        try:
            created: dict[str, Any] = await self.api.call(
                f"creating Lease {self.namespace}/{self.name}",
                self._coordination.create_namespaced_lease,
                self.namespace,
                JSONBody(body),
            )
        except ApiError as exc:
            if exc.status == 409:  # another candidate created it first
                return None
            raise
        return created

    async def _replace(self, lease: dict[str, Any]) -> bool:
        """An update carrying the resourceVersion read: False when another writer came first."""
        lease.setdefault("apiVersion", "coordination.k8s.io/v1")
        lease.setdefault("kind", "Lease")
        try:
            await self.api.call(
                f"updating Lease {self.namespace}/{self.name}",
                self._coordination.replace_namespaced_lease,
                self.name,
                self.namespace,
                JSONBody(lease),
            )
        except ApiError as exc:
            if exc.status == 409:
                return False
            raise
        return True
