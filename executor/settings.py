"""Service settings, read once from environment variables (names kept from job-executor-service).

Every setting has a safe default, so `job-executor serve` with an empty environment runs the
embedded default: HTTP on localhost, the local backend, configs from ./samples.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from executor import __version__


class SettingsError(ValueError):
    """A setting has a value we cannot use; the message names the variable and what to write."""


@dataclass(frozen=True)
class ResourceDefaults:
    limits_cpu: str = "1"
    limits_memory: str = "512Mi"
    requests_cpu: str = "50m"
    requests_memory: str = "128Mi"

    def limits(self) -> dict[str, str]:
        return _non_empty({"cpu": self.limits_cpu, "memory": self.limits_memory})

    def requests(self) -> dict[str, str]:
        return _non_empty({"cpu": self.requests_cpu, "memory": self.requests_memory})


def _non_empty(values: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in values.items() if v}


DEFAULT_INIT_IMAGE = f"ghcr.io/job-executor/job-executor:{__version__}"


@dataclass(frozen=True)
class Settings:
    # --- where and how jobs run ---
    job_namespace: str = "keptn"
    backend: str = "local"  # local | kubernetes
    init_container_image: str = DEFAULT_INIT_IMAGE
    default_resources: ResourceDefaults = field(default_factory=ResourceDefaults)
    default_job_service_account: str = ""
    allowed_image_list: tuple[str, ...] = ()
    allow_privileged_jobs: bool = False
    task_deadline_seconds: int = 0  # 0: no global activeDeadlineSeconds
    job_labels: tuple[tuple[str, str], ...] = ()
    # --- configs ---
    config_source: str = "local"  # local | keptn
    config_dir: Path = Path("samples/resources")
    # --- Keptn control plane ---
    keptn_api_endpoint: str = ""
    keptn_api_token: str = field(default="", repr=False)
    # A Secret in the job namespace (key `token`) that init containers read the token from, so
    # the token never appears in a Job manifest.
    keptn_api_token_secret: str = "job-executor-keptn-api-token"
    # Remote execution plane: with an endpoint and event types to subscribe to, job-executor
    # registers with the control plane, polls triggered events and sends its events there.
    pubsub_topic: tuple[str, ...] = ()
    keptn_poll_interval: int = 5
    keptn_renew_interval: int = 30
    # --- reporting ---
    always_send_finished_event: bool = False
    sink_url: str = ""  # K_SINK: where started/finished events are POSTed; empty: stdout
    # --- NATS (source on when nats_url is set) ---
    nats_url: str = ""
    nats_subjects: tuple[str, ...] = ("sh.keptn.event.>",)
    nats_queue_group: str = "job-executor"
    nats_jetstream: bool = False
    nats_stream: str = ""  # created with nats_subjects when no stream holds them yet
    nats_ack_wait_seconds: int = 30
    nats_publish: bool = True  # publish started/finished events to NATS too
    # --- local backend ---
    local_secrets_dir: Path | None = None  # a folder per secret, a file per key
    # --- HTTP receiver ---
    rcv_host: str = "127.0.0.1"
    rcv_port: int = 8080
    rcv_path: str = "/"
    rcv_auth_token: str = field(default="", repr=False)
    max_body_bytes: int = 1 << 20
    # --- dispatcher ---
    max_concurrent_runs: int = 16
    queue_size: int = 1000
    shutdown_grace_seconds: float = 30.0
    state_dir: Path = Path(".job-executor")
    # Finished runs (and what their tasks left) are forgotten after this long; 0 keeps all.
    state_retention_hours: int = 168

    @property
    def remote_plane(self) -> bool:
        """Running as a Keptn remote execution plane (poll the control plane's API)."""
        return bool(self.keptn_api_endpoint and self.pubsub_topic)

    def check(self) -> None:
        """Combinations that cannot work, refused at start with what to set."""
        if self.config_source == "keptn" and not self.keptn_api_endpoint:
            raise SettingsError("CONFIG_SOURCE=keptn needs KEPTN_API_ENDPOINT (for example http://keptn/api)")
        if self.pubsub_topic and not self.keptn_api_endpoint:
            raise SettingsError("PUBSUB_TOPIC subscribes through the Keptn API: set KEPTN_API_ENDPOINT too")
        if self.keptn_api_endpoint and not self.keptn_api_token:
            raise SettingsError("KEPTN_API_ENDPOINT is set but KEPTN_API_TOKEN is empty")

    def with_overrides(self, **changes: Any) -> Settings:
        """Apply command-line flags on top of the environment; None means 'not given'."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        read = _Reader(env)
        resources = ResourceDefaults(
            limits_cpu=read.text("DEFAULT_RESOURCE_LIMITS_CPU", "1"),
            limits_memory=read.text("DEFAULT_RESOURCE_LIMITS_MEMORY", "512Mi"),
            requests_cpu=read.text("DEFAULT_RESOURCE_REQUESTS_CPU", "50m"),
            requests_memory=read.text("DEFAULT_RESOURCE_REQUESTS_MEMORY", "128Mi"),
        )
        return cls(
            job_namespace=read.text("JOB_NAMESPACE", "keptn"),
            backend=read.choice("BACKEND", "local", ("local", "kubernetes")),
            init_container_image=read.text("INIT_CONTAINER_IMAGE", DEFAULT_INIT_IMAGE),
            default_resources=resources,
            default_job_service_account=read.text("DEFAULT_JOB_SERVICE_ACCOUNT", ""),
            allowed_image_list=parse_list(read.text("ALLOWED_IMAGE_LIST", "")),
            allow_privileged_jobs=read.flag("ALLOW_PRIVILEGED_JOBS", False),
            task_deadline_seconds=read.integer("TASK_DEADLINE_SECONDS", 0, minimum=0),
            job_labels=parse_labels(read.text("JOB_LABELS", ""), "JOB_LABELS"),
            config_source=read.choice("CONFIG_SOURCE", "local", ("local", "keptn")),
            config_dir=Path(read.text("CONFIG_DIR", "samples/resources")),
            keptn_api_endpoint=read.text("KEPTN_API_ENDPOINT", ""),
            keptn_api_token=read.text("KEPTN_API_TOKEN", ""),
            pubsub_topic=parse_list(read.text("PUBSUB_TOPIC", "")),
            keptn_poll_interval=read.integer("KEPTN_POLL_INTERVAL", 5, minimum=1),
            keptn_renew_interval=read.integer("KEPTN_RENEW_INTERVAL", 30, minimum=5),
            keptn_api_token_secret=read.text("KEPTN_API_TOKEN_SECRET", "job-executor-keptn-api-token"),
            always_send_finished_event=read.flag("ALWAYS_SEND_FINISHED_EVENT", False),
            sink_url=read.text("K_SINK", ""),
            nats_url=read.text("NATS_URL", ""),
            nats_subjects=parse_list(read.text("NATS_SUBJECTS", "sh.keptn.event.>")),
            nats_queue_group=read.text("NATS_QUEUE_GROUP", "job-executor"),
            nats_jetstream=read.flag("NATS_JETSTREAM", False),
            nats_stream=read.text("NATS_STREAM", ""),
            nats_ack_wait_seconds=read.integer("NATS_ACK_WAIT_SECONDS", 30, minimum=1),
            nats_publish=read.flag("NATS_PUBLISH", True),
            local_secrets_dir=Path(p) if (p := read.text("LOCAL_SECRETS_DIR", "")) else None,
            rcv_host=read.text("RCV_HOST", "127.0.0.1"),
            rcv_port=read.integer("RCV_PORT", 8080, minimum=0),
            rcv_path=read.text("RCV_PATH", "/"),
            rcv_auth_token=read.text("RCV_AUTH_TOKEN", ""),
            max_body_bytes=read.integer("MAX_BODY_BYTES", 1 << 20, minimum=1024),
            max_concurrent_runs=read.integer("MAX_CONCURRENT_RUNS", 16, minimum=1),
            queue_size=read.integer("QUEUE_SIZE", 1000, minimum=1),
            shutdown_grace_seconds=float(read.integer("SHUTDOWN_GRACE_SECONDS", 30, minimum=0)),
            state_dir=Path(read.text("STATE_DIR", ".job-executor")),
            state_retention_hours=read.integer("STATE_RETENTION_HOURS", 168, minimum=0),
        )


# Every variable `from_env` reads; the Helm chart test checks it sets only these.
ENV_VARS: frozenset[str] = frozenset(
    {
        "JOB_NAMESPACE",
        "BACKEND",
        "INIT_CONTAINER_IMAGE",
        "DEFAULT_RESOURCE_LIMITS_CPU",
        "DEFAULT_RESOURCE_LIMITS_MEMORY",
        "DEFAULT_RESOURCE_REQUESTS_CPU",
        "DEFAULT_RESOURCE_REQUESTS_MEMORY",
        "DEFAULT_JOB_SERVICE_ACCOUNT",
        "ALLOWED_IMAGE_LIST",
        "ALLOW_PRIVILEGED_JOBS",
        "TASK_DEADLINE_SECONDS",
        "JOB_LABELS",
        "CONFIG_SOURCE",
        "CONFIG_DIR",
        "KEPTN_API_ENDPOINT",
        "KEPTN_API_TOKEN",
        "KEPTN_API_TOKEN_SECRET",
        "PUBSUB_TOPIC",
        "KEPTN_POLL_INTERVAL",
        "KEPTN_RENEW_INTERVAL",
        "ALWAYS_SEND_FINISHED_EVENT",
        "K_SINK",
        "NATS_URL",
        "NATS_SUBJECTS",
        "NATS_QUEUE_GROUP",
        "NATS_JETSTREAM",
        "NATS_STREAM",
        "NATS_ACK_WAIT_SECONDS",
        "NATS_PUBLISH",
        "LOCAL_SECRETS_DIR",
        "RCV_HOST",
        "RCV_PORT",
        "RCV_PATH",
        "RCV_AUTH_TOKEN",
        "MAX_BODY_BYTES",
        "MAX_CONCURRENT_RUNS",
        "QUEUE_SIZE",
        "SHUTDOWN_GRACE_SECONDS",
        "STATE_DIR",
        "STATE_RETENTION_HOURS",
    }
)


def parse_list(raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def parse_labels(raw: str, name: str) -> tuple[tuple[str, str], ...]:
    """`key=value,key2=value2` -> pairs; a malformed entry is an error, not silently dropped."""
    pairs = []
    for entry in parse_list(raw):
        key, sep, value = entry.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not _LABEL_KEY.match(key):
            raise SettingsError(
                f"{name}: entry {entry!r} is not key=value with a label key (example: team=qa)"
            )
        if not _LABEL_VALUE.match(value):
            raise SettingsError(
                f"{name}: value {value!r} of {key} is not a valid label value (<= 63 of [A-Za-z0-9_.-])"
            )
        pairs.append((key, value))
    return tuple(pairs)


_LABEL_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class _Reader:
    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def text(self, name: str, default: str) -> str:
        value = self._env.get(name)
        return default if value is None else value.strip()

    def flag(self, name: str, default: bool) -> bool:
        raw = self._env.get(name)
        if raw is None:
            return default
        lowered = raw.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise SettingsError(f"{name}={raw!r}: write true or false")

    def integer(self, name: str, default: int, *, minimum: int) -> int:
        raw = self._env.get(name)
        if raw is None or not raw.strip():
            return default
        try:
            value = int(raw.strip())
        except ValueError:
            raise SettingsError(f"{name}={raw!r}: write a whole number") from None
        if value < minimum:
            raise SettingsError(f"{name}={value}: must be at least {minimum}")
        return value

    def choice(self, name: str, default: str, allowed: tuple[str, ...]) -> str:
        value = self.text(name, default).lower()
        if value not in allowed:
            raise SettingsError(f"{name}={value!r}: write one of {', '.join(allowed)}")
        return value
