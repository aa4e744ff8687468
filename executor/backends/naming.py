"""Names and labels of the Kubernetes objects of a task: deterministic and DNS-safe.

The same event delivered twice yields the same Job name, so the second create is refused by the
API server (409) and the service adopts the first Job instead of running the task again.
"""

from __future__ import annotations

import hashlib
import json
import re

from executor.model.tasks import TaskSpec

JOB_NAME_PREFIX = "job-executor-service-job"
MANAGED_BY = "job-executor"
ID_PART_LENGTH = 24

L_MANAGED_BY = "app.kubernetes.io/managed-by"
L_CONTEXT = "keptn.sh/context"
L_EVENT_ID = "keptn.sh/event-id"
L_COMMIT = "keptn.sh/commitid"
L_ACTION = "keptn.sh/jes-action"
L_TASK = "keptn.sh/jes-task"
L_CONFIG_HASH = "keptn.sh/jes-job-confighash"
L_ACTION_INDEX = "keptn.sh/jes-action-index"
L_TASK_INDEX = "keptn.sh/jes-task-index"

# Label values are cut to 63 characters; the full texts are kept in annotations.
A_EVENT_ID = "keptn.sh/event-id"
A_EVENT_SOURCE = "keptn.sh/event-source"
A_EVENT_TYPE = "keptn.sh/event-type"
A_CONTEXT = "keptn.sh/context"
A_PROJECT = "keptn.sh/project"
A_STAGE = "keptn.sh/stage"
A_SERVICE = "keptn.sh/service"
A_ACTION = "keptn.sh/jes-action"
A_TASK = "keptn.sh/jes-task"
A_EVENT = "keptn.sh/event"

SELECTOR = f"{L_MANAGED_BY}={MANAGED_BY}"


def selector(managed_by: str = MANAGED_BY) -> str:
    """The label selector of the Jobs one deployment (FULL_DEPLOYMENT_NAME) manages."""
    return f"{L_MANAGED_BY}={label_value(managed_by)}"


# One `_` per run of invalid characters, as JES (pkg/k8sutils/job.go sanitizeLabel) wrote it.
_LABEL_BAD = re.compile(r"[^A-Za-z0-9_.-]+")


def event_id_part(event_id: str, event_source: str) -> str:
    """24 hex characters naming the event inside a Job name: sha256 of (source, whole id).

    JES put the id's first 24 characters here. That is not an identity: two UUIDs may share
    them, and CloudEvents ids are unique per source only, so a second event was "adopted" into
    the first one's task and reported with its output. The hash covers both, whatever the id
    looks like; 96 bits keep collisions out of reach. Ids are case-sensitive, so is this.
    """
    # NUL ends the source, so a source holding one could run into the id: ("a\x00b", "c") and
    # ("a", "b\x00c") would share a name. JSON escapes NUL, so that text has none and cannot
    # equal the plain form, which keeps its hashes (the Jobs' names) for every other source.
    plain = "\x00" not in event_source
    text = f"{event_source}\x00{event_id}" if plain else json.dumps([event_source, event_id])
    # A JSON-escaped lone surrogate (\ud800) is a valid id that strict UTF-8 cannot encode.
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    return digest[:ID_PART_LENGTH]


def job_name(event_id: str, event_source: str, action_index: int, task_index: int) -> str:
    part = event_id_part(event_id, event_source)
    return f"{JOB_NAME_PREFIX}-{part}-{action_index:03d}-{task_index:03d}"


def spec_job_name(spec: TaskSpec) -> str:
    t = spec.trigger
    return job_name(t.event_id, t.event_source, spec.action_index, spec.task_index)


def label_value(text: str) -> str:
    """Each run of invalid characters to one '_', at most 63, trimmed of '-', '_' and '.'."""
    return _LABEL_BAD.sub("_", text)[:63].strip("-_.")


def job_labels(spec: TaskSpec, managed_by: str = MANAGED_BY) -> dict[str, str]:
    """JES's labels. `managed_by` is FULL_DEPLOYMENT_NAME; the task index is 0-based, as JES
    wrote it (pkg/eventhandler/eventhandlers.go), while the Job name's suffix counts from 1."""
    labels = {k: label_value(v) for k, v in spec.extra_labels.items()}
    labels.update(
        {
            L_MANAGED_BY: label_value(managed_by),
            L_CONTEXT: label_value(spec.trigger.keptn_context),
            L_EVENT_ID: label_value(spec.trigger.event_id),
            L_COMMIT: label_value(spec.trigger.git_commit_id),
            L_ACTION: label_value(spec.action_name),
            L_TASK: label_value(spec.task_name),
            L_CONFIG_HASH: label_value(spec.config_digest),
            L_ACTION_INDEX: str(spec.action_index),
            L_TASK_INDEX: str(spec.task_index - 1),
        }
    )
    return labels


def job_annotations(spec: TaskSpec) -> dict[str, str]:
    t = spec.trigger
    annotations = dict(spec.annotations)
    annotations.update(
        {
            A_EVENT_ID: t.event_id,
            A_EVENT_SOURCE: t.event_source,
            A_EVENT_TYPE: t.event_type,
            A_CONTEXT: t.keptn_context,
            A_PROJECT: t.project,
            A_STAGE: t.stage,
            A_SERVICE: t.service,
            A_ACTION: spec.action_name,
            A_TASK: spec.task_name,
        }
    )
    if t.event_json:
        annotations[A_EVENT] = t.event_json
    return annotations
