"""What a task's pod is given beside its command: the triggering event as `/keptn/event.json`
and the `secretFiles` Secrets as read-only folders. Nothing here is fetched at run time.

The event rides on the Job as the `keptn.sh/event` annotation when it is small enough
(planner.MAX_EVENT_ANNOTATION); a downwardAPI volume turns that annotation into the file. A
larger event goes into the ConfigMap created beside the Job (the staged files' ConfigMap, or one
of its own), which the Job owns, so both are garbage-collected together.
"""

from __future__ import annotations

from typing import Any

from executor.backends.naming import A_EVENT
from executor.model.tasks import EVENT_FILE_PATH, TaskSpec

EVENT_VOLUME = "job-event"
EVENT_KEY = "event.json"  # the ConfigMap key and the downwardAPI file name
SECRET_VOLUME = "secret-files-{}"
SECRET_FILE_MODE = 0o400
A_CONTINUE_ON_ERROR = "keptn.sh/jes-continue-on-error"


def event_in_configmap(spec: TaskSpec) -> bool:
    """True when the event is too large for its annotation and travels in the ConfigMap."""
    return bool(spec.event_file) and not spec.trigger.event_json


def configmap_data(spec: TaskSpec) -> dict[str, str]:
    return {EVENT_KEY: spec.event_file} if event_in_configmap(spec) else {}


def volumes(spec: TaskSpec, configmap_name: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The pod's volumes and the job container's mounts for the event and the secret files."""
    vols: list[dict[str, Any]] = []
    mounts: list[dict[str, Any]] = []
    if spec.trigger.event_json:
        field = {"fieldPath": f"metadata.annotations['{A_EVENT}']"}
        vols.append(
            {"name": EVENT_VOLUME, "downwardAPI": {"items": [{"path": EVENT_KEY, "fieldRef": field}]}}
        )
    elif event_in_configmap(spec):
        items = [{"key": EVENT_KEY, "path": EVENT_KEY}]
        vols.append({"name": EVENT_VOLUME, "configMap": {"name": configmap_name, "items": items}})
    if vols:
        # One file inside the /keptn emptyDir, so staged files and the result file stay beside it.
        mounts.append(
            {"name": EVENT_VOLUME, "mountPath": EVENT_FILE_PATH, "subPath": EVENT_KEY, "readOnly": True}
        )
    for index, mount in enumerate(spec.secret_files):
        name = SECRET_VOLUME.format(index)
        vols.append({"name": name, "secret": {"secretName": mount.name, "defaultMode": SECRET_FILE_MODE}})
        mounts.append({"name": name, "mountPath": mount.mount_path, "readOnly": True})
    return vols, mounts


def job_annotations(spec: TaskSpec) -> dict[str, str]:
    """Shown by `render` and kept on the Job: this task's failure does not fail its action."""
    return {A_CONTINUE_ON_ERROR: "true"} if spec.continue_on_error else {}
