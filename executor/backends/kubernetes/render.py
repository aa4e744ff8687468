"""TaskSpec -> Kubernetes objects (a batch/v1 Job, plus a ConfigMap of staged files and of an
event too large for the Job's annotation).

Pure functions: the same spec always renders the same manifests, which is what makes Job names
an idempotency key and lets `job-executor render` show exactly what `serve` would create.
"""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from executor.backends.kubernetes import context
from executor.backends.kubernetes.staging import configmap_key
from executor.backends.naming import MANAGED_BY, job_annotations, job_labels, spec_job_name
from executor.config.images import pull_policy_for
from executor.config.paths import STAGING_ROOT
from executor.model.tasks import RESULT_FILE_ENV, RESULT_FILE_PATH, TaskSpec
from executor.policy import RESTRICTED_SECURITY_CONTEXT

VOLUME = "job-volume"
FILES_VOLUME = "job-files"
FILES_MOUNT = "/job-files"


@dataclass(frozen=True)
class RenderOptions:
    init_image: str
    # Where the init container gets files: "configmap" (rendered beside the Job from the local
    # tree) or "keptn" (fetched from the Keptn resource service at run time).
    files_source: str = "configmap"
    keptn_api_url: str = ""
    keptn_token_secret: str = ""
    # FULL_DEPLOYMENT_NAME: the `app.kubernetes.io/managed-by` label, and the backend's selector.
    managed_by: str = MANAGED_BY


def render_task(
    spec: TaskSpec, options: RenderOptions, files: Mapping[str, bytes] | None = None
) -> list[dict[str, Any]]:
    """The objects to create for one task, in creation order."""
    objects: list[dict[str, Any]] = []
    staged = sorted(files) if files else []
    carried = files if options.files_source == "configmap" and files else {}
    if carried or context.event_in_configmap(spec):
        objects.append(render_files_configmap(spec, carried, options))
    objects.append(render_job(spec, options, staged))
    return objects


def render_files_configmap(
    spec: TaskSpec, files: Mapping[str, bytes], options: RenderOptions | None = None
) -> dict[str, Any]:
    name = spec_job_name(spec)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": spec.namespace,
            "labels": job_labels(spec, options.managed_by if options else MANAGED_BY),
            "annotations": job_annotations(spec),
        },
        "binaryData": {
            configmap_key(i): base64.b64encode(files[path]).decode("ascii")
            for i, path in enumerate(sorted(files))
        },
        **({"data": data} if (data := context.configmap_data(spec)) else {}),
    }


def render_job(spec: TaskSpec, options: RenderOptions, staged: list[str] | None = None) -> dict[str, Any]:
    name = spec_job_name(spec)
    labels = job_labels(spec, options.managed_by)
    annotations = job_annotations(spec)
    mounts = [{"name": VOLUME, "mountPath": STAGING_ROOT}]
    volumes: list[dict[str, Any]] = [{"name": VOLUME, "emptyDir": {}}]

    container: dict[str, Any] = {"name": name, "image": spec.image}
    if spec.cmd:
        container["command"] = list(spec.cmd)
    if spec.args:
        container["args"] = list(spec.args)
    # The task writes its result to RESULT_FILE_PATH; as the termination message file, Kubernetes
    # copies it (up to 4 KiB) into the pod's containerStatuses, where the backend reads it.
    container["env"] = [
        *({"name": e.name, "value": e.value} for e in spec.env if e.name != RESULT_FILE_ENV),
        {"name": RESULT_FILE_ENV, "value": RESULT_FILE_PATH},
    ]
    if spec.secret_refs:
        container["envFrom"] = [{"secretRef": {"name": s}} for s in spec.secret_refs]
    if spec.working_dir:
        container["workingDir"] = spec.working_dir
    container["resources"] = _resources(spec.limits, spec.requests)
    container["securityContext"] = dict(spec.security_context)
    if spec.image_pull_policy:
        container["imagePullPolicy"] = spec.image_pull_policy
    given, given_mounts = context.volumes(spec, name)
    volumes += given
    container["volumeMounts"] = mounts + given_mounts
    container["terminationMessagePath"] = RESULT_FILE_PATH
    container["terminationMessagePolicy"] = "File"

    pod_spec: dict[str, Any] = {"restartPolicy": "Never"}
    wants_files = bool(staged) or (options.files_source == "keptn" and bool(spec.files))
    if wants_files:
        pod_spec["initContainers"] = [_init_container(spec, options, name, staged or [], volumes)]
    pod_spec["containers"] = [container]
    pod_spec["volumes"] = volumes
    if spec.service_account:
        pod_spec["serviceAccountName"] = spec.service_account
    if not spec.automount_service_account_token:
        pod_spec["automountServiceAccountToken"] = False

    job_spec: dict[str, Any] = {"backoffLimit": 0, "ttlSecondsAfterFinished": spec.ttl_seconds_after_finished}
    if spec.active_deadline_seconds:
        job_spec["activeDeadlineSeconds"] = spec.active_deadline_seconds
    job_spec["template"] = {"metadata": {"labels": labels, "annotations": annotations}, "spec": pod_spec}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": spec.namespace,
            "labels": labels,
            "annotations": {**annotations, **context.job_annotations(spec)},
        },
        "spec": job_spec,
    }


def _init_container(
    spec: TaskSpec, options: RenderOptions, name: str, staged: list[str], volumes: list[dict[str, Any]]
) -> dict[str, Any]:
    t = spec.trigger
    env: list[dict[str, Any]] = [
        {"name": "KEPTN_PROJECT", "value": t.project},
        {"name": "KEPTN_STAGE", "value": t.stage},
        {"name": "KEPTN_SERVICE", "value": t.service},
        {"name": "JOB_ACTION", "value": spec.action_name},
        {"name": "JOB_TASK", "value": spec.task_name},
        {"name": "GIT_COMMIT_ID", "value": t.git_commit_id},
    ]
    mounts: list[dict[str, Any]] = [{"name": VOLUME, "mountPath": STAGING_ROOT}]
    if options.files_source == "keptn":
        env.append({"name": "KEPTN_API_ENDPOINT", "value": options.keptn_api_url})
        env.append(
            {
                "name": "KEPTN_API_TOKEN",
                "valueFrom": {"secretKeyRef": {"name": options.keptn_token_secret, "key": "token"}},
            }
        )
        env.append({"name": "JOB_FILES", "value": json.dumps(list(spec.files))})
    else:
        env.append({"name": "JOB_FILES", "value": json.dumps(staged)})
        env.append({"name": "JOB_FILES_DIR", "value": FILES_MOUNT})
        volumes.append({"name": FILES_VOLUME, "configMap": {"name": name}})
        mounts.append({"name": FILES_VOLUME, "mountPath": FILES_MOUNT, "readOnly": True})
    return {
        "name": f"init-{name}",
        "image": options.init_image,
        # A pre-release tag may be pushed again; a release tag is immutable (config/images.py).
        "imagePullPolicy": pull_policy_for(options.init_image),
        "args": ["init-files"],
        "env": env,
        "resources": _resources(spec.init_limits, spec.init_requests),
        "securityContext": copy.deepcopy(RESTRICTED_SECURITY_CONTEXT),
        "volumeMounts": mounts,
    }


def _resources(limits: Mapping[str, str], requests: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if limits:
        out["limits"] = dict(limits)
    if requests:
        out["requests"] = dict(requests)
    return out
