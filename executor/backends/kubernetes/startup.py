"""Pods that can never start: found once a Job has been active longer than a grace period.

With restartPolicy Never and backoffLimit 0, a pod stuck in ErrImagePull/ImagePullBackOff,
InvalidImageName, CreateContainerConfigError (a Secret or key that does not exist) or
Unschedulable fails no Job: the kubelet and the scheduler keep retrying, and only the task's
maxPollDuration would end it, saying just "timed out" (keptn-contrib/job-executor-service
issues 235 and 402). The grace lets a transient pull failure or a Secret created moments later
resolve through the kubelet's own back-off.

Cost: none for a Job that ends within the grace (counted from the Job's creation), nor for one
whose status the namespace's watch has shown counting a ready pod (`status.ready`, tracker.py):
a pod is Ready only once its containers run, so it started. Only a Job still active after the
grace with no ready pod seen has its pod read, then every `interval` until the pod has started
or the watch shows it ready: a pod still initialising, one whose Job status lags behind it, or,
on an API server older than 1.24, every pod. A second shared watch on our pods would notice
sooner but decode every pod status change of every task (several per task) for the few that
never start.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from executor.backends.kubernetes.api import ApiError, KubeAPI
from executor.backends.kubernetes.harvest import container_names, pod_of

log = logging.getLogger(__name__)

Obj = Mapping[str, Any]

# Waiting reasons no amount of waiting fixes by itself (kubernetes/kubernetes:
# pkg/kubelet/images/types.go, pkg/kubelet/kuberuntime/kuberuntime_container.go).
NEVER_STARTS = frozenset(
    {
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "ErrImageNeverPull",
        "CreateContainerConfigError",
    }
)


@dataclass(frozen=True)
class Stuck:
    """Why the Job's pod cannot start: the kubelet's or the scheduler's reason and message."""

    pod: Mapping[str, Any]
    reason: str
    message: str
    container: str = ""  # "" when the pod was never scheduled

    def describe(self, grace: float) -> str:
        where = f"container {self.container} " if self.container else ""
        message = f" ({self.message})" if self.message else ""
        return (
            f"the pod could not start: {where}{self.reason}{message}, still so {grace:g} s after the "
            "Job was created (POD_START_GRACE_SECONDS); the Job was deleted"
        )


STARTED = "started"


def verdict(pod: Obj | None) -> Stuck | str | None:
    """Stuck, STARTED (its main container runs or ran: nothing more to check), or None (not yet
    known: no pod yet, or still being scheduled, pulled, initialised)."""
    if pod is None:
        return None
    status = pod.get("status") or {}
    if status.get("phase") in ("Running", "Succeeded", "Failed"):
        return STARTED
    for condition in status.get("conditions") or []:
        if (
            condition.get("type") == "PodScheduled"
            and condition.get("status") == "False"
            and condition.get("reason") == "Unschedulable"
        ):
            return Stuck(pod, "Unschedulable", str(condition.get("message") or ""))
    main, _ = container_names(pod)
    for entry in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
        state = entry.get("state") or {}
        if entry.get("name") == main and (state.get("running") or state.get("terminated")):
            return STARTED
        waiting = state.get("waiting") or {}
        if waiting.get("reason") in NEVER_STARTS:
            return Stuck(
                pod, str(waiting["reason"]), str(waiting.get("message") or ""), str(entry.get("name"))
            )
    return None


def _never() -> bool:
    return False


async def never_started(
    api: KubeAPI,
    job: Obj,
    created: float,
    grace: float,
    interval: float,
    started: Callable[[], bool] = _never,
) -> Stuck | None:
    """Once `grace` seconds after `created` (epoch seconds), read the Job's pod every `interval`
    until it has started (None) or is found stuck (Stuck). `started()` says whether the Job's
    own status has shown its pod ready; then nothing is read. Runs until then, or
    until cancelled."""
    meta = job.get("metadata") or {}
    await asyncio.sleep(max(0.0, created + grace - time.time()))
    while True:
        if started():
            return None
        try:
            found = verdict(await pod_of(api, job, fallbacks=False))
        except ApiError as exc:  # unreadable for now: the Job's own end still decides
            log.warning(
                "checking whether the pod of Job %s/%s started: %s",
                meta.get("namespace"),
                meta.get("name"),
                exc,
            )
            found = None
        if isinstance(found, Stuck):
            return found
        if found == STARTED:
            return None
        await asyncio.sleep(interval)
