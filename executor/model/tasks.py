"""TaskSpec: everything a backend needs to run one task, decided before anything runs.

The seam between the planner and the backends: the Kubernetes renderer and the local runner
read only this, never the job config or the event.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

RESULT_FILE_ENV = "JOB_RESULT_FILE"
RESULT_FILE_PATH = "/keptn/result.json"


@dataclass(frozen=True)
class EnvVar:
    name: str
    value: str


@dataclass(frozen=True)
class Trigger:
    """The event a run belongs to, as much of it as jobs and reports carry."""

    event_id: str
    event_source: str
    event_type: str
    keptn_context: str
    project: str
    stage: str
    service: str
    git_commit_id: str
    # The whole event (JSON) when it is small enough to ride along on the Job, so a Job found
    # running after the service lost its state can still be reported.
    event_json: str = ""


@dataclass(frozen=True)
class TaskSpec:
    trigger: Trigger
    action_name: str
    action_index: int  # position in the config, from 0
    task_name: str
    task_index: int  # position in the action, from 1
    config_digest: str
    image: str
    cmd: tuple[str, ...]
    args: tuple[str, ...]
    env: tuple[EnvVar, ...]
    secret_refs: tuple[str, ...]  # secrets whose every key becomes an env var
    files: tuple[str, ...]  # relative paths in the resource tree, staged under /keptn
    working_dir: str | None
    limits: Mapping[str, str]
    requests: Mapping[str, str]
    init_limits: Mapping[str, str]
    init_requests: Mapping[str, str]
    max_poll_duration: int
    ttl_seconds_after_finished: int
    active_deadline_seconds: int | None
    namespace: str
    annotations: Mapping[str, str]
    security_context: Mapping[str, Any]
    image_pull_policy: str | None
    service_account: str | None
    automount_service_account_token: bool
    extra_labels: Mapping[str, str] = field(default_factory=dict)
