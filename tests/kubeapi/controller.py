"""The simulated Job controller (and kubelet): the pods of a Job, their states, logs, events,
and the Job's status and conditions, driven by test controls or ``auto_complete``."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from tests.kubeapi.protocol import AutoComplete, EventSpec, LogText, clone
from tests.kubeapi.resources import JOBS, PODS, Obj, ResourceType, resolve
from tests.kubeapi.workloads import (
    FAILURE_MESSAGES,
    STUCK_REASONS,
    UNSCHEDULABLE_MESSAGE,
    event_object,
    field_ref,
    job_condition,
    killed_pod_status,
    new_pod,
    ready_pods,
    running_pod_status,
    stuck_reason,
    terminated_pod_status,
    timestamp,
    unschedulable_pod_status,
    waiting_pod_status,
)
from tests.kubeapi.writes import Writes


class JobController(Writes):
    """What kube-controller-manager's Job controller and the kubelet would write."""

    auto_complete: AutoComplete | None
    # Jobs past their deadline whose pod is still terminating: (ns, job) -> (pod, exit code)
    _terminating: dict[tuple[str, str], tuple[str, int]]

    def set_job_running(self, namespace: str, name: str) -> Obj:
        """The Job's pod runs: pod phase Running and Ready, then the Job controller's sync
        counts it: Job status active=1, ready=1, startTime."""
        return clone(self._run(namespace, name))

    def set_pod_running(self, namespace: str, name: str) -> Obj:
        """The kubelet runs the Job's pod (phase Running, Ready), and the Job controller has not
        synced the Job since: its status still says ready=0 (or nothing). The controller batches
        a Job's pod updates for syncJobBatchPeriod, 1 s (kubernetes/kubernetes:
        pkg/controller/job/job_controller.go, enqueueSyncJobBatched), longer when it is busy;
        ``set_job_running`` completes that sync. Returns the pod."""
        self._ensure_pod(self._require(JOBS, namespace, name), running=False)
        self._mark_active(namespace, name)  # the sync after the pod's creation: not ready yet
        return clone(self._ensure_pod(self._require(JOBS, namespace, name), running=True))

    def set_job_succeeded(
        self,
        namespace: str,
        name: str,
        *,
        log: LogText = "",
        init_log: LogText = "",
        events: Sequence[EventSpec] = (),
        result: str = "",
    ) -> Obj:
        """The Job completes: its pod (created if need be) Succeeded, every container exit 0,
        the first main container's termination message ``result`` (the task's result file);
        conditions SuccessCriteriaMet then Complete (two updates, as the Job controller makes
        them), succeeded=1, completionTime; a Normal "Completed" event on the Job.

        ``log``/``init_log``: the text of the (first) main / the (last) init container, or a
        mapping container name -> text. ``events``: more events, strings (Normal, on the pod)
        or mappings (``reason``, ``message``, ``type``, ``involvedObject``: "pod" or "job").
        Returns the Job."""
        return clone(
            self._finish(
                namespace,
                name,
                failed=False,
                reason="CompletionsReached",
                message="Reached expected number of completions",
                log=log,
                init_log=init_log,
                exit_code=0,
                init_exit_code=0,
                events=events,
                result=result,
            )
        )

    def set_job_failed(
        self,
        namespace: str,
        name: str,
        *,
        reason: str = "BackoffLimitExceeded",
        message: str | None = None,
        log: LogText = "",
        init_log: LogText = "",
        exit_code: int = 1,
        init_exit_code: int = 0,
        events: Sequence[EventSpec] = (),
    ) -> Obj:
        """The Job fails: its pod Failed (main containers exit ``exit_code``; or, when
        ``init_exit_code`` is non-zero, the last init container exits with it and the main
        ones stay waiting in PodInitializing, so reading their log is a 400), conditions
        FailureTarget then Failed with ``reason``/``message`` (the controller's message for
        BackoffLimitExceeded/DeadlineExceeded by default), failed=1, a Warning event
        ``reason`` on the Job. ``log``/``init_log``/``events`` as for ``set_job_succeeded``,
        except that string events are Warnings with ``reason``. Returns the Job.

        Only what a cluster produces (restartPolicy Never, backoffLimit 0): a container that
        ran and exited non-zero (BackoffLimitExceeded, or PodFailurePolicy), or the deadline
        (``reason="DeadlineExceeded"`` runs ``set_job_deadline_exceeded``). A pod that never
        started (``set_pod_waiting``, ``set_pod_unschedulable``) fails no Job: ValueError."""
        if reason == "DeadlineExceeded":
            return self.set_job_deadline_exceeded(namespace, name, log=log, init_log=init_log, events=events)
        if reason not in ("BackoffLimitExceeded", "PodFailurePolicy"):
            raise ValueError(f"a Job with backoffLimit 0 does not fail with reason {reason!r}")
        if exit_code == 0 and init_exit_code == 0:
            raise ValueError(
                "a failed pod has a container that exited non-zero (exit_code or init_exit_code)"
            )
        return clone(
            self._finish(
                namespace,
                name,
                failed=True,
                reason=reason,
                message=message or FAILURE_MESSAGES.get(reason, reason),
                log=log,
                init_log=init_log,
                exit_code=exit_code,
                init_exit_code=init_exit_code,
                events=events,
            )
        )

    def set_pod_waiting(
        self,
        namespace: str,
        name: str,
        reason: str,
        message: str | None = None,
        *,
        container: str | None = None,
    ) -> Obj:
        """The Job's pod is scheduled but ``container`` (default: the main one) cannot start:
        it waits with ``reason`` (ErrImagePull, ImagePullBackOff, InvalidImageName,
        CreateContainerConfigError) and ``message`` (the kubelet's by default), with the
        kubelet's Warning event on the pod. The Job stays active: nothing fails it but its
        deadline. Returns the pod."""
        if reason not in STUCK_REASONS:
            raise ValueError(f"unknown waiting reason {reason!r}; one of {sorted(STUCK_REASONS)}")
        job = self._require(JOBS, namespace, name)
        pod = self._ensure_pod(job, running=False)
        names = [c["name"] for c in (pod["spec"].get("initContainers") or []) + pod["spec"]["containers"]]
        container = container or pod["spec"]["containers"][0]["name"]
        if container not in names:
            raise ValueError(f"pod {pod['metadata']['name']} has no container {container!r}: {names}")
        image = next(
            c.get("image", "")
            for c in (pod["spec"].get("initContainers") or []) + pod["spec"]["containers"]
            if c["name"] == container
        )
        event_reason, template = STUCK_REASONS[reason]
        message = message if message is not None else template.format(image=image)
        if not pod["spec"].get("nodeName"):
            pod = clone(pod)
            pod["spec"]["nodeName"] = "fake-node"
        pod = self._set_status(PODS, pod, waiting_pod_status(pod, container, reason, message, timestamp()))
        text = {"ImagePullBackOff": message, "ErrImagePull": f'Failed to pull image "{image}": {message}'}
        text = text.get(reason, f"Error: {message}")
        self._emit_event(
            pod, "Warning", event_reason, text, "kubelet", {"involvedObject": field_ref(pod, container)}
        )
        self._mark_active(namespace, name)
        return clone(pod)

    def set_pod_unschedulable(self, namespace: str, name: str, message: str = UNSCHEDULABLE_MESSAGE) -> Obj:
        """The scheduler cannot place the Job's pod: Pending, PodScheduled False (reason
        Unschedulable), a FailedScheduling event from default-scheduler. Returns the pod."""
        job = self._require(JOBS, namespace, name)
        pod = self._ensure_pod(job, running=False)
        if pod["status"].get("phase") != "Pending":
            raise ValueError(f"pod {pod['metadata']['name']} already runs on a node")
        pod = clone(pod)
        pod["spec"].pop("nodeName", None)
        pod = self._set_status(PODS, pod, unschedulable_pod_status(message, timestamp()))
        self._emit_event(pod, "Warning", "FailedScheduling", message, "default-scheduler")
        self._mark_active(namespace, name)
        return clone(pod)

    def set_job_deadline_exceeded(
        self,
        namespace: str,
        name: str,
        *,
        log: LogText = "",
        init_log: LogText = "",
        events: Sequence[EventSpec] = (),
        exit_code: int = 143,
        finish: bool = True,
    ) -> Obj:
        """activeDeadlineSeconds passed, as the Job controller of Kubernetes >= 1.31 handles it
        (kubernetes/kubernetes: pkg/controller/job/job_controller.go, ``syncJob`` with
        ``pastActiveDeadline``, ``newFailureCondition`` under ``delayTerminalCondition``,
        ``deleteActivePods``): first the Job gets FailureTarget (reason DeadlineExceeded),
        active 0, terminating 1, and a Warning event, and its pod a deletionTimestamp (the pod
        and its log are still there). With ``finish`` the kubelet then stops the pod (running
        containers exit ``exit_code``), the pod is deleted (its log goes with it), and only
        then the Job gets Failed and failed=1 (``finish_job_termination``). Each step is its own
        watch event. Returns the Job."""
        job = self._require(JOBS, namespace, name)
        if not (job.get("spec") or {}).get("activeDeadlineSeconds"):
            raise ValueError(f"job {namespace}/{name} has no activeDeadlineSeconds: no deadline can pass")
        if self._condition(job, "FailureTarget") or self._condition(job, "Failed"):
            raise ValueError(f"job {namespace}/{name} is already failing")
        pod = self._ensure_pod(job, running=False)
        self._store_logs(pod, "containers", log)
        self._store_logs(pod, "initContainers", init_log)
        reason, message = "DeadlineExceeded", FAILURE_MESSAGES["DeadlineExceeded"]
        now = timestamp()
        status = clone(self._require(JOBS, namespace, name).get("status") or {})
        status.setdefault("startTime", now)
        # deleteActivePods: the pods it deletes no longer count, ready ones included
        # (``jobCtx.ready -= deletedReady`` in syncJob).
        status.update(active=0, ready=0, terminating=1, uncountedTerminatedPods={})
        status["conditions"] = [
            *status.get("conditions", []),
            job_condition("FailureTarget", reason, message, now),
        ]
        job = self._set_status(JOBS, self._require(JOBS, namespace, name), status)
        self._emit_event(job, "Warning", reason, message, "job-controller")
        doomed = clone(pod)
        doomed["metadata"].update(deletionTimestamp=now, deletionGracePeriodSeconds=30)
        pod = self._commit(PODS, namespace, pod["metadata"]["name"], doomed)
        for spec in events:
            self._custom_event(job, pod, spec, True, reason)
        self._terminating[(namespace, name)] = (pod["metadata"]["name"], exit_code)
        if finish:
            job = self.finish_job_termination(namespace, name)
        return clone(job)

    def finish_job_termination(self, namespace: str, name: str) -> Obj:
        """The second half of ``set_job_deadline_exceeded``: the pod stops and is deleted,
        then the Job is Failed. Returns the Job."""
        pod_name, exit_code = self._terminating.pop((namespace, name))
        pod = self._lookup(PODS, namespace, pod_name)
        now = timestamp()
        if pod is not None:
            pod = self._set_status(PODS, pod, killed_pod_status(pod, exit_code, now))
            self._remove(PODS, namespace, pod_name)
        job = self._require(JOBS, namespace, name)
        status = clone(job.get("status") or {})
        status.update(terminating=0, failed=status.get("failed", 0) + 1)
        message = FAILURE_MESSAGES["DeadlineExceeded"]
        status["conditions"].append(job_condition("Failed", "DeadlineExceeded", message, now))
        return clone(self._set_status(JOBS, job, status))

    @staticmethod
    def _condition(job: Obj, kind: str) -> bool:
        conditions = (job.get("status") or {}).get("conditions") or []
        return any(c["type"] == kind and c["status"] == "True" for c in conditions)

    def _mark_active(self, namespace: str, name: str) -> None:
        job = self._require(JOBS, namespace, name)
        status = clone(job.get("status") or {})
        status.setdefault("startTime", timestamp())
        status.update(
            active=1, ready=ready_pods(self._pods_of(job)), terminating=0, uncountedTerminatedPods={}
        )
        if status != job.get("status"):
            self._set_status(JOBS, job, status)

    def _set_status(self, rt: ResourceType, obj: Obj, status: Obj) -> Obj:
        new = copy.copy(obj)
        new["metadata"] = dict(obj["metadata"])  # _commit only sets its resourceVersion
        new["status"] = status
        return self._commit(rt, obj["metadata"]["namespace"], obj["metadata"]["name"], new)

    def _pods_of(self, job: Obj) -> list[Obj]:
        found = (
            self._lookup(PODS, ns, name)
            for plural, ns, name in self._owned.get(job["metadata"]["uid"], set())
            if plural == PODS.plural
        )
        return sorted(
            (p for p in found if p is not None), key=lambda p: int(p["metadata"]["resourceVersion"])
        )

    def _pod_of(self, job: Obj) -> Obj | None:
        pods = self._pods_of(job)
        return pods[-1] if pods else None

    def _ensure_pod(self, job: Obj, *, running: bool) -> Obj:
        pod = self._pod_of(job)
        ns = job["metadata"]["namespace"]
        if pod is None:
            name = f"{job['metadata']['name']}-{self._suffix()}"
            while self._lookup(PODS, ns, name) is not None:
                name = f"{job['metadata']['name']}-{self._suffix()}"
            pod = new_pod(job, name)
            pod["metadata"].update(uid=self._new_uid(), creationTimestamp=timestamp())
            pod["status"] = {"phase": "Pending", "qosClass": "BestEffort"}
            pod = self._commit(PODS, ns, name, pod)
            self._emit_event(job, "Normal", "SuccessfulCreate", f"Created pod: {name}", "job-controller")
        if running and pod["status"].get("phase") == "Pending":
            if not pod["spec"].get("nodeName"):  # the scheduler binds it at last
                pod = clone(pod)
                pod["spec"]["nodeName"] = "fake-node"
            pod = self._set_status(PODS, pod, running_pod_status(pod, timestamp()))
        return pod

    def _emit_event(
        self,
        involved: Obj,
        kind: str,
        reason: str,
        message: str,
        component: str,
        extra: Mapping[str, Any] | None = None,
    ) -> Obj:
        self._names += 1
        name = f"{involved['metadata']['name']}.{self._rv:x}{self._names:06x}"
        ns = involved["metadata"]["namespace"]
        event = event_object(name, involved, kind, reason, message, timestamp(), component, extra)
        event["metadata"].update(uid=self._new_uid(), creationTimestamp=timestamp())
        return self._commit(resolve("events"), ns, name, event)

    def _store_logs(self, pod: Obj, key: str, text: LogText) -> None:
        containers = [c["name"] for c in pod["spec"].get(key) or []]
        meta = pod["metadata"]
        texts = (
            dict(text)
            if isinstance(text, Mapping)
            else ({containers[-1 if key == "initContainers" else 0]: text} if containers and text else {})
        )
        for container, value in texts.items():
            if container not in containers:
                raise ValueError(f"pod {meta['name']} has no {key} entry named {container!r}: {containers}")
            self._logs[(meta["namespace"], meta["name"], container)] = value

    def _run(self, namespace: str, name: str) -> Obj:
        job = self._require(JOBS, namespace, name)
        self._ensure_pod(job, running=True)
        job = self._require(JOBS, namespace, name)
        status = clone(job.get("status") or {})
        status.setdefault("startTime", timestamp())
        status.update(
            active=1, ready=ready_pods(self._pods_of(job)), terminating=0, uncountedTerminatedPods={}
        )
        return self._set_status(JOBS, job, status)

    def _finish(
        self,
        namespace: str,
        name: str,
        *,
        failed: bool,
        reason: str,
        message: str,
        log: LogText,
        init_log: LogText,
        exit_code: int,
        init_exit_code: int,
        events: Sequence[EventSpec],
        result: str = "",
    ) -> Obj:
        job = self._require(JOBS, namespace, name)
        for condition in (job.get("status") or {}).get("conditions") or []:
            if condition["type"] in ("Complete", "Failed") and condition["status"] == "True":
                raise ValueError(f"job {namespace}/{name} already finished ({condition['type']})")
        if not failed:
            exit_code = init_exit_code = 0
        now = timestamp()
        pod = self._ensure_pod(job, running=False)
        stuck = stuck_reason(pod)
        if stuck:
            raise ValueError(
                f"the pod of job {namespace}/{name} never started ({stuck}): with restartPolicy Never"
                " only the deadline ends its Job (set_job_deadline_exceeded), or set_job_running first"
            )
        self._store_logs(pod, "containers", log)
        self._store_logs(pod, "initContainers", init_log)
        pod = self._set_status(PODS, pod, terminated_pod_status(pod, exit_code, init_exit_code, now, result))
        job = self._require(JOBS, namespace, name)
        status = clone(job.get("status") or {})
        status.setdefault("startTime", now)
        status.pop("active", None)
        status.update(ready=ready_pods(self._pods_of(job)), terminating=0, uncountedTerminatedPods={})
        status["failed" if failed else "succeeded"] = status.get("failed" if failed else "succeeded", 0) + 1
        interim = "FailureTarget" if failed else "SuccessCriteriaMet"
        status["conditions"] = [*status.get("conditions", []), job_condition(interim, reason, message, now)]
        job = self._set_status(JOBS, job, status)
        status = clone(status)
        status["conditions"].append(job_condition("Failed" if failed else "Complete", reason, message, now))
        if not failed:
            status["completionTime"] = now
        job = self._set_status(JOBS, job, status)
        if failed:
            self._emit_event(job, "Warning", reason, message, "job-controller")
        else:
            self._emit_event(job, "Normal", "Completed", "Job completed", "job-controller")
        for spec in events:
            self._custom_event(job, pod, spec, failed, reason)
        return job

    def _custom_event(self, job: Obj, pod: Obj, spec: EventSpec, failed: bool, reason: str) -> None:
        if isinstance(spec, str):
            spec = {"message": spec}
        involved = job if spec.get("involvedObject") == "job" else pod
        self._emit_event(
            involved,
            spec.get("type", "Warning" if failed else "Normal"),
            spec.get("reason", reason if failed else "Started"),
            spec.get("message", ""),
            "kubelet" if involved is pod else "job-controller",
        )

    def _schedule_auto_complete(self, job: Obj) -> None:
        assert self.auto_complete is not None
        if self._loop is None:
            return
        auto = self.auto_complete
        meta = job["metadata"]
        ns, name, uid = meta["namespace"], meta["name"], meta["uid"]

        def current() -> Obj | None:
            found = self._lookup(JOBS, ns, name)
            if found is None or found["metadata"]["uid"] != uid or found["metadata"].get("deletionTimestamp"):
                return None
            return found

        def run() -> None:
            if current() is not None:
                self._run(ns, name)

        def finish() -> None:
            self._timers.pop(uid, None)
            if current() is None:
                return
            log = auto.log.replace("{job}", name)  # each Job's own output, for the fault tests
            if auto.draw_failure(self._rng):
                self.set_job_failed(ns, name, log=log)
            else:
                self.set_job_succeeded(ns, name, log=log)

        handles = [self._loop.call_later(auto.draw_delay(self._rng), self._guard, finish)]
        if auto.running:
            handles.append(self._loop.call_soon(self._guard, run))
        self._timers[uid] = handles
