"""What a task is: its TaskSpec (everything a backend needs, decided before anything runs), and
what came of it (handle, outcome, what adoption found).

The seam between the planner and the backends: the Kubernetes renderer and the local runner
read only this, never the job config or the event.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

Status = Literal["succeeded", "failed", "timed_out", "lost"]

RESULT_FILE_ENV = "JOB_RESULT_FILE"
RESULT_FILE_PATH = "/keptn/result.json"
# The triggering event, as every task reads it (its path is in JOB_EVENT_FILE).
EVENT_FILE_ENV = "JOB_EVENT_FILE"
EVENT_FILE_PATH = "/keptn/event.json"

# One read-only empty mapping for every empty field of every TaskSpec: most of a spec's mappings
# are empty, and 50,000 specs in flight each with a dozen dicts of their own was ~0.7 KB a task.
EMPTY: Mapping[str, Any] = MappingProxyType({})


def kept(mapping: Mapping[str, Any]) -> Mapping[str, Any]:
    """A spec's mapping: the shared EMPTY when there is nothing in it, else a dict of its own."""
    return dict(mapping) if mapping else EMPTY


@dataclass(frozen=True, slots=True)
class EnvVar:
    name: str
    value: str


@dataclass(frozen=True, slots=True)
class SecretMount:
    """A Secret whose keys appear as read-only files in a folder of the task (`secretFiles`)."""

    name: str
    mount_path: str


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True, slots=True)
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
    # Labels the cluster must have (CLUSTERS_FILE); empty: any cluster.
    cluster_selector: Mapping[str, str] = field(default_factory=dict)
    # The whole triggering event (JSON), given to the task as EVENT_FILE_PATH; "" gives none.
    event_file: str = ""
    secret_files: tuple[SecretMount, ...] = ()
    # A failure of this task is reported, but the action's next tasks run and it succeeds.
    continue_on_error: bool = False
    # The pod: its securityContext, and where it runs (the local backend ignores placement).
    pod_security_context: Mapping[str, Any] = field(default_factory=dict)
    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: tuple[Mapping[str, Any], ...] = ()
    affinity: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TaskHandle:
    name: str  # deterministic: the Job name, also the local work dir's name
    namespace: str = ""
    adopted: bool = False  # True when submit found the task already started


@dataclass(frozen=True, slots=True)
class TaskOutcome:
    status: Status
    reason: str = ""  # why it failed, in a few words: "exit code 2", "BackoffLimitExceeded: ..."
    logs: str = ""  # a bounded excerpt, the end of the output
    result: bytes | None = None  # the raw result file the task wrote, if any
    exit_code: int | None = None
    started_at: str = ""  # ISO 8601 UTC
    finished_at: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"


@dataclass(frozen=True, slots=True)
class Adopted:
    """A task found running (or finished) by `adopt`, with what its labels tell of it."""

    handle: TaskHandle
    annotations: Mapping[str, str] = field(default_factory=dict)
    running: bool = True
