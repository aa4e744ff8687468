"""An ended Job -> its TaskOutcome: the pod, its logs and events are read (the I/O half at the
end of this module) and interpreted by pure functions over the Job, its pod and events.

A failed Job's own condition usually says only "BackoffLimitExceeded"; the reason built here
leads with what the user needs: the exit code of the container that failed (and which one),
a waiting reason such as ImagePullBackOff, the Job's condition, then the pod's warning events.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

from executor.backends.base import MAX_LOG_EXCERPT, tail
from executor.backends.kubernetes.api import ApiError, KubeAPI
from executor.model.tasks import TaskOutcome

log = logging.getLogger(__name__)

Obj = Mapping[str, Any]

MAX_EVENTS = 5  # warning events quoted in a failure reason
MAX_EVENT_TEXT = 300
LOG_TAIL_LINES = 200
LOG_LIMIT_BYTES = 256 * 1024


def terminal_condition(job: Obj) -> Obj | None:
    """The condition that ends the Job, if it has ended: Complete or Failed (status True), else
    FailureTarget. Since Kubernetes 1.31 the Job controller sets FailureTarget when it decides
    the Job fails, deletes the running pod (on DeadlineExceeded), and sets Failed only once the
    pod is gone, its log and exit code with it (pkg/controller/job/job_controller.go,
    delayTerminalCondition). FailureTarget is the last moment the pod can still be read."""
    conditions: list[Obj] = (job.get("status") or {}).get("conditions") or []
    target = None
    for condition in conditions:
        if condition.get("status") != "True":
            continue
        if condition.get("type") in ("Complete", "Failed"):
            return condition
        if condition.get("type") == "FailureTarget":
            target = condition
    return target


def failed(job: Obj) -> bool:
    return (terminal_condition(job) or {}).get("type") in ("Failed", "FailureTarget")


def is_finished(job: Obj) -> bool:
    return terminal_condition(job) is not None


def newest_pod(pods: Iterable[dict[str, Any]], job_uid: str) -> dict[str, Any] | None:
    """The Job's latest pod (a Job with backoffLimit 0 has one, unless a pod was replaced)."""
    owned = [
        p
        for p in pods
        if not job_uid
        or any(ref.get("uid") == job_uid for ref in (p.get("metadata") or {}).get("ownerReferences") or [])
    ]
    owned.sort(key=lambda p: (p.get("metadata") or {}).get("creationTimestamp") or "")
    return owned[-1] if owned else None


def container_names(pod: Obj) -> tuple[str, str]:
    """(main container, last init container); "" when there is none."""
    spec = pod.get("spec") or {}
    containers = spec.get("containers") or []
    inits = spec.get("initContainers") or []
    return (containers[0]["name"] if containers else "", inits[-1]["name"] if inits else "")


def container_status(pod: Obj, name: str) -> Obj:
    status = pod.get("status") or {}
    entries: list[Obj] = (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or [])
    for entry in entries:
        if entry.get("name") == name:
            return entry
    return {}


def terminated(pod: Obj | None, name: str) -> Obj:
    if pod is None or not name:
        return {}
    return (container_status(pod, name).get("state") or {}).get("terminated") or {}


def result_of(pod: Obj | None, name: str) -> bytes | None:
    """The task's result file, as Kubernetes copied it into the termination message."""
    message = terminated(pod, name).get("message")
    return message.encode("utf-8") if message else None


def failure_reason(job: Obj, pod: Obj | None, events: Iterable[Obj], pod_error: str = "") -> str:
    parts: list[str] = []
    main, init = container_names(pod) if pod is not None else ("", "")
    init_end = terminated(pod, init)
    if init_end.get("exitCode"):
        parts.append(
            f"init container {init} (staging files) failed with exit code {init_end['exitCode']}"
            + _detail(init_end)
        )
    main_end = terminated(pod, main)
    if main_end.get("exitCode"):
        parts.append(f"exit code {main_end['exitCode']}" + _detail(main_end))
    elif pod is not None and not main_end:
        state = container_status(pod, main).get("state") or {}
        waiting = state.get("waiting") or {}
        if waiting.get("reason") and not init_end.get("exitCode"):
            parts.append(f"container did not start: {waiting['reason']}{_message(waiting)}")
        elif state.get("running") and (pod.get("metadata") or {}).get("deletionTimestamp"):
            parts.append("the Job controller was stopping it (no exit code yet)")
    condition = terminal_condition(job) or {}
    if condition.get("reason"):
        parts.append(f"Job {condition['reason']}{_message(condition)}")
    elif pod is None:
        parts.append("Job failed")
    if pod is None:
        parts.append(f"its pod could not be read: {pod_error}" if pod_error else "no pod was found")
    quoted = warning_events(events)
    if quoted:
        parts.append("events: " + "; ".join(quoted))
    return "; ".join(parts) or "Job failed"


def warning_events(events: Iterable[Obj]) -> list[str]:
    """The last few distinct Warning events, oldest first, as "Reason: message"."""
    warnings = [e for e in events if e.get("type") == "Warning"]
    warnings.sort(key=_event_time)
    seen: list[str] = []
    for event in warnings:
        text = f"{event.get('reason') or 'Warning'}: {event.get('message') or ''}".strip().rstrip(":")
        text = text[:MAX_EVENT_TEXT]
        if text not in seen:
            seen.append(text)
    return seen[-MAX_EVENTS:]


def combine_logs(sections: Iterable[tuple[str, str]]) -> str:
    """Log excerpts of several containers in one bounded text; a single one gets no header."""
    present = [(title, text) for title, text in sections if text.strip()]
    if not present:
        return ""
    if len(present) == 1:
        return tail(present[0][1])
    share = MAX_LOG_EXCERPT // len(present)
    return "\n".join(f"--- {title} ---\n{tail(text, share).rstrip()}" for title, text in present)


def started_at(job: Obj, pod: Obj | None, main: str) -> str:
    status = job.get("status") or {}
    return str(status.get("startTime") or terminated(pod, main).get("startedAt") or "")


def finished_at(job: Obj, pod: Obj | None, main: str) -> str:
    status = job.get("status") or {}
    condition = terminal_condition(job) or {}
    return str(
        status.get("completionTime")
        or condition.get("lastTransitionTime")
        or terminated(pod, main).get("finishedAt")
        or ""
    )


def _detail(end: Obj) -> str:
    # Not the termination message: for the main container that is its result file.
    reason = end.get("reason")
    return f" ({reason})" if reason and reason != "Error" else ""


def _message(entry: Obj) -> str:
    message = entry.get("message")
    return f" ({str(message)[:MAX_EVENT_TEXT]})" if message else ""


def _event_time(event: Obj) -> str:
    return str(
        event.get("lastTimestamp")
        or event.get("eventTime")
        or (event.get("metadata") or {}).get("creationTimestamp")
        or ""
    )


# ---- reading an ended Job (I/O) ----


async def outcome(api: KubeAPI, job: Obj, pod: Obj | None = None) -> TaskOutcome:
    """Read an ended Job's outcome: its pod's log and result, and on failure why. `pod`: the
    Job's succeeded pod as the pod watch keeps it (podwatch.py: by the uid of the Job that owns
    it, phase Succeeded), which saves listing the pods of a Job that completed; a failed Job's
    pods are listed whatever is given."""
    meta = job["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    ended_failing = failed(job)
    pod_error = ""
    if ended_failing or pod is None:
        try:
            pod = await pod_of(api, job)
        except ApiError as exc:
            # The Job's condition has decided the outcome; only the details are missing.
            log.warning("%s", exc)
            pod, pod_error = None, str(exc)
    main, init = container_names(pod) if pod is not None else ("", "")
    main_log = await read_log(api, pod, main)
    if not ended_failing:
        return TaskOutcome(
            status="succeeded",
            logs=tail(main_log) if not pod_error else f"(logs unavailable: {pod_error})",
            result=result_of(pod, main),
            exit_code=terminated(pod, main).get("exitCode"),
            started_at=started_at(job, pod, main),
            finished_at=finished_at(job, pod, main),
        )
    init_log = await read_log(api, pod, init)
    about = pod["metadata"]["name"] if pod is not None else name
    events = await events_of(api, namespace, about)
    return TaskOutcome(
        status="failed",
        reason=failure_reason(job, pod, events, pod_error),
        logs=combine_logs([(f"init container {init}", init_log), (f"container {main}", main_log)]),
        result=result_of(pod, main),
        exit_code=terminated(pod, main).get("exitCode"),
        started_at=started_at(job, pod, main),
        finished_at=finished_at(job, pod, main),
    )


async def never_started(api: KubeAPI, job: Obj, pod: Obj, why: str) -> TaskOutcome:
    """A Job whose pod cannot start: `why`, then the pod's warning events (the kubelet's pull or
    config errors, the scheduler's FailedScheduling). Read before the caller deletes the Job."""
    meta = pod.get("metadata") or {}
    events = await events_of(
        api, str(meta.get("namespace") or job["metadata"]["namespace"]), str(meta.get("name"))
    )
    quoted = warning_events(events)
    _, init = container_names(pod)
    return TaskOutcome(
        status="failed",
        reason=why + ("; events: " + "; ".join(quoted) if quoted else ""),
        logs=tail(await read_log(api, pod, init)),  # an init container that did run
        started_at=started_at(job, pod, ""),
        finished_at=now(),
    )


async def timed_out(api: KubeAPI, job: Obj, limit: int) -> TaskOutcome:
    """What a Job past maxPollDuration leaves to report (read before the caller deletes it)."""
    logs = ""
    pod = None
    with contextlib.suppress(ApiError):
        pod = await pod_of(api, job)
        if pod is not None:
            logs = await read_log(api, pod, container_names(pod)[0])
    return TaskOutcome(
        status="timed_out",
        reason=f"timed out after {limit} s (maxPollDuration)",
        logs=tail(logs),
        started_at=started_at(job, pod, ""),
        finished_at=now(),
    )


async def pod_of(api: KubeAPI, job: Obj, *, fallbacks: bool = True) -> Obj | None:
    """The Job's latest pod; without `fallbacks`, looked for by the Job's own selector only (one
    request, for repeated checks of a Job that may have no pod yet)."""
    meta = job["metadata"]
    match = ((job.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    # The Job's own selector finds exactly its pods (the controller-uid label); without one,
    # the job-name label (set by Kubernetes since 1.27; older clusters set `job-name`).
    selector = ",".join(f"{k}={v}" for k, v in sorted(match.items()))
    selectors = [selector] if selector else []
    if fallbacks or not selectors:
        selectors += [f"batch.kubernetes.io/job-name={meta['name']}", f"job-name={meta['name']}"]
    for label_selector in selectors:
        pods = await api.call(
            f"listing the pods of Job {meta['namespace']}/{meta['name']}",
            api.core.list_namespaced_pod,
            meta["namespace"],
            label_selector=label_selector,
        )
        pod = newest_pod(pods.get("items") or [], meta.get("uid", ""))
        if pod is not None:
            return pod
    return None


async def read_log(api: KubeAPI, pod: Obj | None, container: str) -> str:
    if pod is None or not container:
        return ""
    state = container_status(pod, container).get("state") or {}
    if not state.get("terminated") and not state.get("running"):
        return ""  # never started: the API would answer 400
    meta = pod["metadata"]
    try:
        return await api.text(
            f"reading the log of {meta['name']}/{container}",
            api.core.read_namespaced_pod_log,
            meta["name"],
            meta["namespace"],
            container=container,
            tail_lines=LOG_TAIL_LINES,
            limit_bytes=LOG_LIMIT_BYTES,
        )
    except ApiError as exc:
        log.warning("%s", exc)
        return f"(log unavailable: {exc})"


async def running_log(api: KubeAPI, job: Obj) -> str:
    """The output so far of a Job's task ("" while its pod has not started)."""
    try:
        pod = await pod_of(api, job, fallbacks=False)
    except ApiError as exc:
        return f"(log unavailable: {exc})"
    return await read_log(api, pod, job["metadata"]["name"])  # the container has the Job's name


async def events_of(api: KubeAPI, namespace: str, involved: str) -> list[Obj]:
    try:
        answer = await api.call(
            f"listing the events of {namespace}/{involved}",
            api.core.list_namespaced_event,
            namespace,
            field_selector=f"involvedObject.name={involved}",
        )
    except ApiError as exc:
        log.warning("%s", exc)
        return []
    return list(answer.get("items") or [])


def lost(namespace: str, name: str) -> TaskOutcome:
    return TaskOutcome(
        status="lost", reason=f"Job {namespace}/{name} was deleted before it finished", finished_at=now()
    )


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
