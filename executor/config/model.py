"""The job config (job/config.yaml, apiVersion v2) as frozen dataclasses.

Field names follow Python; the YAML spelling (Keptn job-executor-service's, unchanged) lives in
the parser and the JSON Schema.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

ValueFrom = Literal["event", "secret", "string"]
Format = Literal["json", "yaml", "string"]
OnConflict = Literal["queue", "skip", "cancel-previous"]


@dataclass(frozen=True)
class JsonPathFilter:
    property: str
    match: str


@dataclass(frozen=True)
class EventSelector:
    name: str
    jsonpath: JsonPathFilter | None = None
    line: int = 0


@dataclass(frozen=True)
class EnvEntry:
    name: str
    value_from: ValueFrom
    value: str = ""
    as_: Format | None = None
    line: int = 0


@dataclass(frozen=True)
class SecretFile:
    """`secretFiles` entry: the keys of Secret `name` as files in the folder `mount_path`."""

    name: str
    mount_path: str
    line: int = 0


@dataclass(frozen=True)
class Resources:
    limits: Mapping[str, str] = field(default_factory=dict)
    requests: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Task:
    name: str
    image: str
    cmd: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    files: tuple[str, ...] = ()
    env: tuple[EnvEntry, ...] = ()
    working_dir: str | None = None
    # None: no block in the config, so the settings' defaults apply. An empty block is not None.
    resources: Resources | None = None
    max_poll_duration: int | None = None
    namespace: str | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)
    security_context: Mapping[str, Any] | None = None
    image_pull_policy: str | None = None
    service_account: str | None = None
    ttl_seconds_after_finished: int | None = None
    active_deadline_seconds: int | None = None
    # Labels a cluster of CLUSTERS_FILE must have to run this task; empty: any cluster.
    cluster_selector: Mapping[str, str] = field(default_factory=dict)
    secret_files: tuple[SecretFile, ...] = ()
    continue_on_error: bool = False
    line: int = 0
    # The line of each `files:` entry, for lint's FILE:LINE when the file is missing.
    file_lines: tuple[int, ...] = ()


@dataclass(frozen=True)
class Concurrency:
    """At most `limit` runs of the action at once per value of `key` (a jsonpath into the event;
    "": one key for the whole action); `on_conflict` says what a run beyond the limit does."""

    limit: int = 1
    key: str = ""
    on_conflict: OnConflict = "queue"
    line: int = 0


@dataclass(frozen=True)
class Action:
    name: str
    events: tuple[EventSelector, ...]
    tasks: tuple[Task, ...]
    silent: bool = False
    index: int = 0
    line: int = 0
    concurrency: Concurrency | None = None  # None: no limit of its own


@dataclass(frozen=True)
class JobConfig:
    api_version: str
    actions: tuple[Action, ...]
    source: str = "<config>"
    # sha256 of the file's bytes: labels jobs with the config they came from, keys the cache.
    digest: str = ""
