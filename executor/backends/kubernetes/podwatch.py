"""The succeeded pods of our Jobs, from one watch on pods per namespace, so that a Job that
completes has its outcome read with one request (its log) instead of two (a pod list first).

The Job controller marks a Job Complete after it has seen its pod succeed, so by the time the
tracker hands over a completed Job, this watch has usually brought the pod's last version: its
name (for the log), its containers' exit codes and its termination message (the result file).
It is a shortcut, never the only way: a pod not here (its line not read yet, the watch down,
forbidden or restarted, the entry evicted) is listed as before (harvest.pod_of). Failed Jobs are
always read in full (pod list, both logs, warning events), so only succeeded pods are kept.

Cost: each pod changes about five times in its life (scheduled, init container, running, ended,
deleted). Only lines that say "Succeeded", and deletions, are decoded; the rest are passed over
as bytes, like the Job tracker's progress lines. What is kept is bounded (CAPACITY pods, the
oldest dropped first), each a slim copy held as its JSON text until it is taken.

History need not be complete here, so there is no list: a watch without a resourceVersion
starts with the namespace's current pods (as ADDED events), and after a 410 it starts so again.
A 401 or 403 (a Role without `watch` on pods) ends the watch for the life of the process: the
service then lists pods as it did before, and says so once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Mapping
from typing import Any

from executor.backends.kubernetes.api import KubeAPI
from executor.backends.kubernetes.tracker import COALESCE_SECONDS
from executor.backends.kubernetes.watchstream import PROGRESS_PREFIXES, watch_event, watching
from executor.support import fastjson
from executor.support.backoff import KUBE_WATCH, Backoff

log = logging.getLogger(__name__)

Obj = Mapping[str, Any]
CAPACITY = 4096  # succeeded pods kept until their Job's outcome takes them
# How long an outcome waits for a pod whose Job's completion came first (both streams rest up to
# the tracker's COALESCE_SECONDS between reads); then the pods are listed.
LATE_POD_SECONDS = 3 * COALESCE_SECONDS
# A line without it is progress passed over; one with it by chance (a label's value) is decoded
# and then passed over on its phase.
_SUCCEEDED = b'"Succeeded"'


class SucceededPods:
    def __init__(
        self,
        api: KubeAPI,
        namespace: str,
        selector: str,
        *,
        backoff: Backoff | None = None,
        watch_timeout: tuple[int, int] = (240, 360),
        coalesce: float = COALESCE_SECONDS,
        capacity: int = CAPACITY,
    ) -> None:
        self.api = api
        self.namespace = namespace
        self.selector = selector
        self.backoff = backoff or KUBE_WATCH
        self.watch_timeout = watch_timeout
        self.coalesce = coalesce
        self.capacity = capacity
        self.resource_version = ""
        self.forbidden = False  # the watch was refused (401/403): pods are listed instead
        self.watches = 0  # watch requests opened
        # Job uid -> (pod uid, pod creationTimestamp, the slim pod's JSON)
        self._pods: dict[str, tuple[str, str, bytes]] = {}
        self._awaited: dict[str, asyncio.Future[None]] = {}  # Job uid -> a take waiting for its pod
        self.open = False  # a watch response is being read
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"pod-watch-{self.namespace}")

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for awaited in self._awaited.values():  # nothing more will come: they list the pods
            if not awaited.done():
                awaited.set_result(None)

    async def take(self, job_uid: str, within: float | None = None) -> dict[str, Any] | None:
        """The succeeded pod of the Job with this uid, once (a second take finds none). While the
        watch is open, a pod not here yet is waited for up to `within` seconds: the Job's line
        can come first, read from its own stream (on the test's fake API, about one in four).
        `within` defaults to LATE_POD_SECONDS."""
        within = LATE_POD_SECONDS if within is None else within
        pod = self._pop(job_uid)
        if pod is not None or within <= 0 or not self.open or not job_uid:
            return pod
        arrived = asyncio.get_running_loop().create_future()
        self._awaited[job_uid] = arrived
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(within):
                    await arrived
        finally:
            if self._awaited.get(job_uid) is arrived:
                del self._awaited[job_uid]
        return self._pop(job_uid)

    def _pop(self, job_uid: str) -> dict[str, Any] | None:
        entry = self._pods.pop(job_uid, None) if job_uid else None
        if entry is None:
            return None
        pod: dict[str, Any] = fastjson.loads(entry[2])
        return pod

    def count(self) -> int:
        return len(self._pods)

    # ---- the watch ----

    async def _run(self) -> None:
        failures = 0
        while True:
            began = time.monotonic()
            try:
                await self._watch()
                if time.monotonic() - began >= 1.0:
                    failures = 0
                    continue
                failures += 1  # ended at once without an error: no spinning
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                status = int(getattr(exc, "status", 0) or 0)  # ApiError's, or the client's
                if status in (401, 403):
                    self.forbidden = True
                    self._pods.clear()
                    log.warning(
                        "pod watch in %s refused (%s): each succeeded task's pod is listed instead "
                        "(grant `watch` on pods to save that request)",
                        self.namespace,
                        exc,
                    )
                    return
                if status == 410:
                    self.resource_version = ""  # start again from the current pods
                else:
                    log.info("pod watch in %s ended (%s); starting again", self.namespace, exc)
                failures += 1
            await asyncio.sleep(self.backoff.delay(failures - 1))

    async def _watch(self) -> None:
        self.watches += 1
        timeout = random.randint(*self.watch_timeout)
        async with watching(
            self.api.core.list_namespaced_pod,
            self.namespace,
            self.selector,
            self.resource_version,
            timeout,
            self.coalesce,
        ) as lines:
            self.open = True
            try:
                async for line in lines:
                    if not line.startswith(PROGRESS_PREFIXES) or _SUCCEEDED in line:
                        self._event(line)
            finally:
                self.open = False

    def _event(self, line: bytes) -> None:
        kind, obj = watch_event(line)
        meta = obj.get("metadata") or {}
        if meta.get("resourceVersion"):
            self.resource_version = str(meta["resourceVersion"])
        owner = _job_uid(meta)
        if not owner:
            return  # a bookmark, or a pod no Job owns
        if kind == "DELETED":
            kept = self._pods.get(owner)
            if kept is not None and kept[0] == meta.get("uid"):
                del self._pods[owner]
        elif kind in ("ADDED", "MODIFIED") and (obj.get("status") or {}).get("phase") == "Succeeded":
            self._keep(owner, obj)

    def _keep(self, owner: str, pod: Obj) -> None:
        meta = pod.get("metadata") or {}
        created = str(meta.get("creationTimestamp") or "")
        kept = self._pods.get(owner)
        if kept is not None and kept[0] != meta.get("uid") and kept[1] > created:
            return  # a later pod of the same Job is already here
        self._pods.pop(owner, None)
        while len(self._pods) >= self.capacity:
            del self._pods[next(iter(self._pods))]  # the oldest: its Job's outcome lists pods
        self._pods[owner] = (str(meta.get("uid") or ""), created, fastjson.dumps(slim(pod)))
        awaited = self._awaited.get(owner)
        if awaited is not None and not awaited.done():
            awaited.set_result(None)


def _job_uid(meta: Obj) -> str:
    for ref in meta.get("ownerReferences") or []:
        if ref.get("kind") == "Job" and ref.get("controller"):
            return str(ref.get("uid") or "")
    return ""


def slim(pod: Obj) -> dict[str, Any]:
    """What an outcome reads of a pod (harvest.py): its names, its containers' names and their
    statuses; the rest (the spec's env, volumes, the conditions) is dropped."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    return {
        "metadata": {
            k: meta[k]
            for k in ("name", "namespace", "uid", "creationTimestamp", "ownerReferences")
            if k in meta
        },
        "spec": {
            key: [{"name": c.get("name")} for c in spec.get(key) or []]
            for key in ("initContainers", "containers")
            if key in spec
        },
        "status": {
            k: status[k] for k in ("phase", "initContainerStatuses", "containerStatuses") if k in status
        },
    }
