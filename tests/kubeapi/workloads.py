"""What the API server and the Job controller add to objects: defaults, pods, status, events.

Pure functions over plain dicts. The server calls them and commits the results
(each commit is one resourceVersion and one watch event).
"""

from __future__ import annotations

import copy
import datetime
import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

from tests.kubeapi.resources import JOBS, Obj

JOB_NAME_LABELS = ("batch.kubernetes.io/job-name", "job-name")
CONTROLLER_UID_LABELS = ("batch.kubernetes.io/controller-uid", "controller-uid")
FAILURE_MESSAGES: Mapping[str, str] = {
    "BackoffLimitExceeded": "Job has reached the specified backoff limit",
    "DeadlineExceeded": "Job was active longer than specified deadline",
    "PodFailurePolicy": "Container main for pod failed with exit code 1 matching FailJob rule at index 0",
}


def timestamp(when: datetime.datetime | None = None) -> str:
    when = when or datetime.datetime.now(datetime.UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _pull_policy(image: str) -> str:
    if "@" in image:
        return "IfNotPresent"
    last = image.rsplit("/", 1)[-1]
    tag = last.split(":", 1)[1] if ":" in last else "latest"
    return "Always" if tag == "latest" else "IfNotPresent"


def default_pod_spec(spec: Obj) -> None:
    """SetDefaults_PodSpec and SetDefaults_Container, for the fields clients commonly see."""
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("securityContext", {})
    spec.setdefault("terminationGracePeriodSeconds", 30)
    for key in ("initContainers", "containers"):
        for c in spec.get(key) or []:
            c.setdefault("imagePullPolicy", _pull_policy(c.get("image", "")))
            c.setdefault("terminationMessagePath", "/dev/termination-log")
            c.setdefault("terminationMessagePolicy", "File")
            c.setdefault("resources", {})


def default_job(job: Obj) -> None:
    """Job defaults and the generated selector and pod labels (needs metadata.uid and name)."""
    meta = job["metadata"]
    uid, name = meta["uid"], meta["name"]
    meta["generation"] = 1
    spec = job.setdefault("spec", {})
    spec.setdefault("parallelism", 1)
    spec.setdefault("completions", 1)
    spec.setdefault("backoffLimit", 6)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    spec.setdefault("podReplacementPolicy", "TerminatingOrFailed")
    spec.setdefault("manualSelector", None)
    if spec.get("manualSelector") is None:
        del spec["manualSelector"]
        spec["selector"] = {"matchLabels": {CONTROLLER_UID_LABELS[0]: uid}}
    template = spec.setdefault("template", {})
    labels = template.setdefault("metadata", {}).setdefault("labels", {})
    for key in CONTROLLER_UID_LABELS:
        labels[key] = uid
    for key in JOB_NAME_LABELS:
        labels[key] = name
    default_pod_spec(template.setdefault("spec", {}))
    job["status"] = {}


def owner_reference(owner: Obj) -> Obj:
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def new_pod(job: Obj, name: str) -> Obj:
    """The pod the Job controller would create from the Job's template (no status yet)."""
    template = job["spec"]["template"]
    meta = copy.deepcopy(template.get("metadata") or {})
    meta.pop("name", None)
    meta.update(
        name=name,
        generateName=f"{job['metadata']['name']}-",
        namespace=job["metadata"]["namespace"],
        ownerReferences=[owner_reference(job)],
    )
    spec = copy.deepcopy(template["spec"])
    spec["nodeName"] = "fake-node"
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec, "status": {}}


def _cid(pod: Obj, container: str) -> str:
    return f"containerd://{abs(hash((pod['metadata']['uid'], container))):016x}"


def _image_id(image: str) -> str:
    """The image's reference with its digest, as the kubelet reports what the runtime pulled
    (ContainerStatus.imageID: kubernetes/kubernetes pkg/kubelet/kuberuntime/
    kuberuntime_container.go, toKubeContainerStatus, from the CRI status's ImageRef): one
    digest per image, in hex. Not a run of zeros: a digest's digits are what JSON readers of a
    pod meet."""
    digest = hashlib.sha256(image.encode()).hexdigest()
    return f"{image}@sha256:{digest}"


def _container_status(pod: Obj, c: Obj, state: Obj, *, ready: bool) -> Obj:
    return {
        "name": c["name"],
        "image": c.get("image", ""),
        "imageID": _image_id(c.get("image", "")),
        "containerID": _cid(pod, c["name"]),
        "ready": ready,
        "restartCount": 0,
        "started": "running" in state,
        "state": state,
    }


# The kubelet keeps at most 4 KiB of a container's termination message
# (pkg/kubelet/kuberuntime/kuberuntime_container.go, maxContainerTerminationMessageLength).
MAX_TERMINATION_MESSAGE = 4 * 1024


def _terminated(pod: Obj, c: Obj, code: int, started: str, finished: str, message: str = "") -> Obj:
    ended: Obj = {
        "exitCode": code,
        "reason": "Completed" if code == 0 else "Error",
        "startedAt": started,
        "finishedAt": finished,
        "containerID": _cid(pod, c["name"]),
    }
    if message:
        ended["message"] = message.encode()[:MAX_TERMINATION_MESSAGE].decode(errors="ignore")
    return {"terminated": ended}


def _conditions(now: str, **conditions: bool | str) -> list[Obj]:
    result = []
    for kind, value in conditions.items():
        condition: Obj = {"type": kind, "status": "True" if value is True else "False"}
        condition.update(lastProbeTime=None, lastTransitionTime=now)
        if isinstance(value, str):
            condition["reason"] = value
        result.append(condition)
    return result


def running_pod_status(pod: Obj, now: str) -> Obj:
    spec = pod["spec"]
    status: Obj = {
        "phase": "Running",
        "conditions": _conditions(now, Initialized=True, Ready=True, ContainersReady=True, PodScheduled=True),
        "hostIP": "10.0.0.1",
        "podIP": "10.244.0.10",
        "podIPs": [{"ip": "10.244.0.10"}],
        "qosClass": "BestEffort",
        "startTime": now,
    }
    if spec.get("initContainers"):
        status["initContainerStatuses"] = [
            _container_status(pod, c, _terminated(pod, c, 0, now, now), ready=True)
            for c in spec["initContainers"]
        ]
    status["containerStatuses"] = [
        _container_status(pod, c, {"running": {"startedAt": now}}, ready=True) for c in spec["containers"]
    ]
    return status


def terminated_pod_status(pod: Obj, exit_code: int, init_exit_code: int, now: str, result: str = "") -> Obj:
    """Status of a pod whose containers ended: init containers first, then the main ones.
    `result`: the first main container's termination message (its terminationMessagePath's
    text), set by the kubelet in the same update as the phase."""
    spec = pod["spec"]
    started = (pod.get("status") or {}).get("startTime") or now
    failed = exit_code != 0 or init_exit_code != 0
    phase_reason = "PodFailed" if failed else "PodCompleted"
    status: Obj = {
        "phase": "Failed" if failed else "Succeeded",
        "conditions": _conditions(
            now,
            Initialized=init_exit_code == 0 or "PodFailed",
            Ready=phase_reason,
            ContainersReady=phase_reason,
            PodScheduled=True,
        ),
        "hostIP": "10.0.0.1",
        "podIP": "10.244.0.10",
        "podIPs": [{"ip": "10.244.0.10"}],
        "qosClass": "BestEffort",
        "startTime": started,
    }
    inits = spec.get("initContainers") or []
    if inits:
        codes = [0] * (len(inits) - 1) + [init_exit_code]
        status["initContainerStatuses"] = [
            _container_status(pod, c, _terminated(pod, c, code, started, now), ready=code == 0)
            for c, code in zip(inits, codes, strict=True)
        ]
    if init_exit_code != 0:
        waiting = {"waiting": {"reason": "PodInitializing"}}
        status["containerStatuses"] = [
            _container_status(pod, c, waiting, ready=False) for c in spec["containers"]
        ]
    else:
        status["containerStatuses"] = [
            _container_status(
                pod, c, _terminated(pod, c, exit_code, started, now, result if i == 0 else ""), ready=False
            )
            for i, c in enumerate(spec["containers"])
        ]
    return status


def job_condition(kind: str, reason: str, message: str, now: str) -> Obj:
    return {
        "type": kind,
        "status": "True",
        "lastProbeTime": now,
        "lastTransitionTime": now,
        "reason": reason,
        "message": message,
    }


def event_object(
    name: str,
    involved: Obj,
    kind: str,
    reason: str,
    message: str,
    now: str,
    component: str,
    extra: Mapping[str, Any] | None = None,
) -> Obj:
    """A core/v1 Event about ``involved`` (a Job or a Pod)."""
    meta = involved["metadata"]
    event: Obj = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": meta["namespace"]},
        "involvedObject": {
            "kind": involved["kind"],
            "namespace": meta["namespace"],
            "name": meta["name"],
            "uid": meta["uid"],
            "apiVersion": involved["apiVersion"],
            "resourceVersion": meta.get("resourceVersion", ""),
        },
        "reason": reason,
        "message": message,
        "source": {"component": component},
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
        "type": kind,
        "eventTime": None,
        "reportingComponent": component,
        "reportingInstance": "",
    }
    if extra:
        event.update(extra)
    return event


def field_ref(pod: Obj, container: str) -> Obj:
    """An event's involvedObject naming one container of a pod, as the kubelet writes it."""
    meta = pod["metadata"]
    return {
        "kind": "Pod",
        "namespace": meta["namespace"],
        "name": meta["name"],
        "uid": meta["uid"],
        "apiVersion": "v1",
        "resourceVersion": meta["resourceVersion"],
        "fieldPath": f"spec.containers{{{container}}}",
    }


def is_job(obj: Obj) -> bool:
    return obj.get("kind") == JOBS.kind


# ---------------------------------------------------------------------------------------------
# Pods that cannot start. The kubelet leaves the container waiting with a reason and a message
# and records an event (kubernetes/kubernetes: pkg/kubelet/images/image_manager.go for the
# image pull, pkg/kubelet/kuberuntime/kuberuntime_container.go for the container config; event
# reasons in pkg/kubelet/events/event.go). The pod stays Pending and, with restartPolicy Never,
# the Job controller never counts it as failed: only activeDeadlineSeconds ends such a Job.

# waiting reason -> (event reason, default message; {image} is the container's image)
STUCK_REASONS: Mapping[str, tuple[str, str]] = {
    "ErrImagePull": (
        "Failed",
        'failed to pull and unpack image "{image}": failed to resolve reference "{image}": {image}: not found',
    ),
    "ImagePullBackOff": ("BackOff", 'Back-off pulling image "{image}"'),
    "InvalidImageName": (
        "InspectFailed",
        'Failed to apply default image tag "{image}": couldn\'t parse image name "{image}": invalid reference format',
    ),
    "CreateContainerConfigError": ("Failed", 'secret "job-secrets" not found'),
}
# The scheduler's FitError (pkg/scheduler/framework/types.go), on a one-node cluster.
UNSCHEDULABLE_MESSAGE = (
    "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available:"
    " 1 No preemption victims found for incoming pod."
)


def waiting_pod_status(pod: Obj, container: str, reason: str, message: str, now: str) -> Obj:
    """A scheduled pod whose ``container`` waits with ``reason``; the main containers wait in
    PodInitializing when an init container is the one stuck."""
    spec = pod["spec"]
    inits = [c["name"] for c in spec.get("initContainers") or []]
    stuck_init = container in inits
    not_ready = "ContainersNotReady"
    status: Obj = {
        "phase": "Pending",
        "conditions": _conditions(
            now,
            Initialized="ContainersNotInitialized" if stuck_init else True,
            Ready=not_ready,
            ContainersReady=not_ready,
            PodScheduled=True,
        ),
        "hostIP": "10.0.0.1",
        "podIP": "10.244.0.10",
        "podIPs": [{"ip": "10.244.0.10"}],
        "qosClass": "BestEffort",
        "startTime": now,
    }
    stuck = {"waiting": {"reason": reason, "message": message}}
    if inits:
        done = True
        statuses = []
        for c in spec["initContainers"]:
            if c["name"] == container:
                statuses.append(_container_status(pod, c, stuck, ready=False) | {"containerID": None})
                done = False
            elif done:
                statuses.append(_container_status(pod, c, _terminated(pod, c, 0, now, now), ready=True))
            else:
                statuses.append(
                    _container_status(pod, c, {"waiting": {"reason": "PodInitializing"}}, ready=False)
                )
        status["initContainerStatuses"] = statuses
    status["containerStatuses"] = [
        _container_status(
            pod,
            c,
            stuck if c["name"] == container else {"waiting": {"reason": "PodInitializing"}},
            ready=False,
        )
        | {"containerID": None}
        for c in spec["containers"]
    ]
    for statuses in (status.get("initContainerStatuses", []), status["containerStatuses"]):
        for s in statuses:
            if s["containerID"] is None:
                del s["containerID"]
                s["imageID"] = ""
    return status


def unschedulable_pod_status(message: str, now: str) -> Obj:
    """A pod the scheduler cannot place: Pending, PodScheduled False (reason Unschedulable)."""
    return {
        "phase": "Pending",
        "conditions": [
            {
                "type": "PodScheduled",
                "status": "False",
                "lastProbeTime": None,
                "lastTransitionTime": now,
                "reason": "Unschedulable",
                "message": message,
            }
        ],
        "qosClass": "BestEffort",
    }


def killed_pod_status(pod: Obj, exit_code: int, now: str) -> Obj:
    """A pod the kubelet stopped on deletion: Failed, running containers terminated with
    ``exit_code`` (143 for SIGTERM, 137 after the grace period's SIGKILL); waiting ones stay."""
    status = copy.deepcopy(pod.get("status") or {})
    status["phase"] = "Failed"
    for s in status.get("containerStatuses") or []:
        running = s.get("state", {}).get("running")
        if running is not None:
            started = running.get("startedAt") or now
            s["state"] = {
                "terminated": {
                    "exitCode": exit_code,
                    "reason": "Error",
                    "startedAt": started,
                    "finishedAt": now,
                    "containerID": s.get("containerID", ""),
                }
            }
            s["ready"] = False
            s["started"] = False
    return status


def stuck_reason(pod: Obj) -> str:
    """Why a Pending pod cannot start ("" when it is not stuck)."""
    status = pod.get("status") or {}
    if status.get("phase") != "Pending":
        return ""
    for condition in status.get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            return str(condition.get("reason", "Unschedulable"))
    for s in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
        reason = (s.get("state", {}).get("waiting") or {}).get("reason", "")
        if reason in STUCK_REASONS:
            return str(reason)
    return ""


def ready_pods(pods: Iterable[Obj]) -> int:
    """A Job's status.ready as the Job controller writes it on each sync (kubernetes/kubernetes:
    pkg/controller/job/job_controller.go, syncJob: ``ready: countReadyPods(activePods)``): its
    active pods (neither Succeeded nor Failed, no deletionTimestamp:
    pkg/controller/controller_utils.go, FilterActivePods and IsPodActive) whose Ready condition
    is True (pkg/api/v1/pod/util.go, IsPodReady). A pod is Ready once every container is; one
    without a readiness probe is once it runs, not before and not after it stopped."""
    count = 0
    for pod in pods:
        status = pod.get("status") or {}
        if pod["metadata"].get("deletionTimestamp") or status.get("phase") in ("Succeeded", "Failed"):
            continue
        conditions = status.get("conditions") or []
        count += any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
    return count
