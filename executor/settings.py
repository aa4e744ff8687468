"""Service settings, read once from environment variables (names kept from job-executor-service).

Each setting is declared once, as a field of its group: the variable's name, its default, how
its text is read and a line of help (`env(...)`). `Settings.from_env`, `ENV_VARS`, the README's
settings table (`python -m executor.settings`) and the chart's test all come from those fields.
Every setting has a safe default, so `job-executor serve` with an empty environment runs the
embedded default: HTTP on localhost, the local backend, configs from ./samples.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

from executor import __version__
from executor.support import envvars
from executor.support.envvars import SettingsError, env, parse_labels

DEFAULT_INIT_IMAGE = f"ghcr.io/job-executor/job-executor:{__version__}"


# ---- the groups ----


@dataclass(frozen=True)
class JobSettings:
    """Where and how tasks run."""

    backend: Literal["local", "kubernetes"] = env(
        "BACKEND",
        "local",
        envvars.choice("local", "kubernetes"),
        doc="`local` (processes) or `kubernetes` (in-cluster config, else kubeconfig)",
    )
    namespace: str = env(
        "JOB_NAMESPACE", "keptn", envvars.dns_label, doc="namespace of Jobs whose task names none"
    )
    service_account: str = env(
        "DEFAULT_JOB_SERVICE_ACCOUNT",
        "",
        envvars.dns_subdomain,
        doc="service account of tasks that name none",
        shown="(none)",
    )
    allowed_images: tuple[str, ...] = env(
        "ALLOWED_IMAGE_LIST",
        (),
        envvars.globs,
        doc="comma-separated image globs (`*`, `?`, `[..]`, `{a,b}`), compared with normalised "
        "references (`alpine` is `docker.io/library/alpine:latest`)",
        shown="(all, with a warning)",
    )
    require_digest: bool = env(
        "REQUIRE_IMAGE_DIGEST", False, envvars.flag, doc="`true` refuses images not pinned by `@sha256:`"
    )
    allow_latest: bool = env(
        "ALLOW_LATEST_TAG", True, envvars.flag, doc="`false` refuses `:latest` and untagged images"
    )
    allow_privileged: bool = env(
        "ALLOW_PRIVILEGED_JOBS",
        False,
        envvars.flag,
        doc="`false` refuses privileged tasks; `true` only logs them",
    )
    deadline_seconds: int = env(
        "TASK_DEADLINE_SECONDS", 0, envvars.whole(0), doc="`activeDeadlineSeconds` of every Job (0: none)"
    )
    labels: tuple[tuple[str, str], ...] = env(
        "JOB_LABELS",
        (),
        lambda name, raw: parse_labels(raw, name),
        doc="`key=value,...` labels added to every Job",
        shown="(none)",
    )
    init_image: str = env(
        "INIT_CONTAINER_IMAGE",
        DEFAULT_INIT_IMAGE,
        doc="image of the init container that stages files",
        shown="this version's image",
    )
    # JES wrote it into `app.kubernetes.io/managed-by`, so two deployments in one namespace
    # each see only their own Jobs.
    deployment_name: str = env(
        "FULL_DEPLOYMENT_NAME",
        "job-executor",
        doc="`app.kubernetes.io/managed-by` of every Job (set by the chart to the release's name)",
    )

    def __post_init__(self) -> None:
        _check_fields(self)


@dataclass(frozen=True)
class KubernetesSettings:
    """How the Kubernetes backend watches over its Jobs."""

    pod_start_grace_seconds: int = env(
        "POD_START_GRACE_SECONDS",
        60,
        envvars.whole(0),
        doc="a task whose pod still cannot start this long after its Job was created (image pull "
        "errors, a missing Secret or key, unschedulable) fails with the pod's reason and its Job is "
        "deleted; `0`: wait for `maxPollDuration` instead",
    )
    leader_election: bool = env(
        "LEADER_ELECTION",
        False,
        envvars.flag,
        doc="replicas elect one active leader through a coordination.k8s.io Lease; the others "
        "stand by (unready) and take over, adopting running Jobs, once it is not renewed",
    )
    lease_namespace: str = env(
        "LEADER_ELECTION_NAMESPACE", "", doc="namespace of that Lease", shown="`JOB_NAMESPACE`"
    )
    lease_name: str = env("LEADER_ELECTION_LEASE_NAME", "job-executor", doc="its name (one per installation)")
    lease_seconds: int = env(
        "LEADER_ELECTION_LEASE_SECONDS",
        15,
        envvars.whole(2),
        doc="how long a leader that stopped renewing keeps the Lease (renewed every third of it)",
    )


@dataclass(frozen=True)
class ClusterSettings:
    """Several clusters and how much of them the service may use."""

    file: Path | None = env(
        "CLUSTERS_FILE",
        None,
        lambda name, raw: Path(raw.strip()) if raw.strip() else None,
        doc="YAML list of clusters (kubeconfig, context, namespace, `maxConcurrentJobs`, enabled, "
        "priority, labels) Jobs are spread over, by free capacity; read at start and on SIGHUP. "
        "Unset: one cluster (in-cluster config or KUBECONFIG)",
        shown="(none)",
    )
    max_pending_jobs: int = env(
        "MAX_PENDING_JOBS",
        0,
        envvars.whole(0),
        doc="per cluster, Jobs created whose pod is not running yet; more creates wait, and intake "
        "pauses meanwhile (NATS stops pulling, HTTP answers 429); `0`: no cap",
    )
    write_qps: int = env(
        "KUBE_WRITE_QPS",
        0,
        envvars.whole(0),
        doc="per cluster, Kubernetes API writes (create, patch, delete) a second, a token bucket; "
        "waiting writes pause intake like `MAX_PENDING_JOBS`; `0`: no limit",
    )
    write_burst: int = env(
        "KUBE_WRITE_BURST", 10, envvars.whole(1), doc="writes allowed at once above that rate"
    )


@dataclass(frozen=True)
class ResourceDefaults:
    """Requests and limits of tasks without a `resources` block."""

    limits_cpu: str = env(
        "DEFAULT_RESOURCE_LIMITS_CPU",
        "1",
        envvars.quantity,
        doc="CPU limit of tasks without a `resources` block",
    )
    limits_memory: str = env(
        "DEFAULT_RESOURCE_LIMITS_MEMORY", "512Mi", envvars.quantity, doc="memory limit of the same"
    )
    requests_cpu: str = env(
        "DEFAULT_RESOURCE_REQUESTS_CPU", "50m", envvars.quantity, doc="CPU request of the same"
    )
    requests_memory: str = env(
        "DEFAULT_RESOURCE_REQUESTS_MEMORY", "128Mi", envvars.quantity, doc="memory request of the same"
    )

    def __post_init__(self) -> None:
        _check_fields(self)

    def limits(self) -> dict[str, str]:
        return _non_empty({"cpu": self.limits_cpu, "memory": self.limits_memory})

    def requests(self) -> dict[str, str]:
        return _non_empty({"cpu": self.requests_cpu, "memory": self.requests_memory})


@dataclass(frozen=True)
class ConfigSettings:
    """Where job configs come from."""

    source: Literal["local", "keptn"] = env(
        "CONFIG_SOURCE",
        "local",
        envvars.choice("local", "keptn"),
        doc="`local` (a tree in `CONFIG_DIR`) or `keptn` (the Keptn resource service)",
    )
    dir: Path = env(
        "CONFIG_DIR",
        Path("samples/resources"),
        envvars.path,
        doc="`[<level1>/[<level2>/[<level3>/]]]job/config.yaml`; the root one applies to every event",
        shown="samples/resources",
    )
    levels: tuple[str, ...] = env(
        "CONFIG_LEVELS",
        ("$.data.project", "$.data.stage", "$.data.service"),
        envvars.jsonpath_levels,
        doc="up to three jsonpaths over the whole event naming the config tree's levels",
        shown="`$.data.project,$.data.stage,$.data.service`",
    )


REGISTRATION_TTL = 60
RENEW_BUDGET = 50  # seconds: the TTL less room for slow answers and retries


@dataclass(frozen=True)
class KeptnSettings:
    """The Keptn control plane: its API, and the remote execution plane (poll, register)."""

    api_endpoint: str = env("KEPTN_API_ENDPOINT", "", doc="the Keptn API (`http://host/api`)", shown="(none)")
    api_token: str = env("KEPTN_API_TOKEN", "", doc="its token", shown="(none)", secret=True)
    # A Secret in the job namespace (key `token`) that init containers read the token from, so
    # the token never appears in a Job manifest.
    api_token_secret: str = env(
        "KEPTN_API_TOKEN_SECRET",
        "job-executor-keptn-api-token",
        doc="Secret (key `token`) in the job namespace for init containers",
    )
    # With an endpoint and event types to subscribe to, job-executor registers with the control
    # plane, polls triggered events and sends its events there.
    pubsub_topic: tuple[str, ...] = env(
        "PUBSUB_TOPIC",
        (),
        envvars.listing,
        doc="event types to subscribe to: turns on the remote execution plane",
        shown="(none)",
    )
    poll_interval: int = env("KEPTN_POLL_INTERVAL", 5, envvars.whole(1), doc="seconds between polls")
    renew_interval: int = env(
        "KEPTN_RENEW_INTERVAL",
        30,
        envvars.whole(5),
        doc=f"seconds between registration renewals (with the poll interval at most {RENEW_BUDGET})",
    )

    def check(self) -> None:
        # Keptn forgets a registration 60 s after its last renewal (shipyard-controller main.go
        # UNIFORM_INTEGRATION_TTL); a renewal comes at most one poll round late.
        if self.renew_interval + self.poll_interval > RENEW_BUDGET:
            raise SettingsError(
                f"KEPTN_RENEW_INTERVAL={self.renew_interval} with KEPTN_POLL_INTERVAL={self.poll_interval}: "
                f"Keptn drops a registration {REGISTRATION_TTL} s after its last renewal; keep the two "
                f"together at most {RENEW_BUDGET} s (the defaults are 30 and 5)"
            )


@dataclass(frozen=True)
class ReportSettings:
    """Where started/finished events go, and when."""

    always_send_finished_event: bool = env(
        "ALWAYS_SEND_FINISHED_EVENT",
        False,
        envvars.flag,
        doc="answer events that have no config with an errored finished event",
    )
    sink_url: str = env(
        "K_SINK",
        "",
        doc="URL to POST started/finished events to; with no sink at all, stdout",
        shown="(none)",
    )
    # Events that are not Keptn task events are answered with `<prefix>.started|finished`.
    result_type_prefix: str = env(
        "RESULT_EVENT_TYPE_PREFIX",
        "dev.job-executor.action",
        envvars.type_prefix,
        doc="type prefix of the result events that answer non-Keptn events",
    )
    result_source: str = env("RESULT_EVENT_SOURCE", "job-executor", doc="`source` of those result events")


@dataclass(frozen=True)
class NatsSettings:
    """NATS: a source (and a sink) when `url` is set."""

    url: str = env("NATS_URL", "", doc="turns the NATS source (and sink) on", shown="(none)")
    subjects: tuple[str, ...] = env(
        "NATS_SUBJECTS",
        ("sh.keptn.event.>",),
        envvars.listing,
        doc="comma-separated subjects",
        shown="sh.keptn.event.>",
    )
    queue_group: str = env("NATS_QUEUE_GROUP", "job-executor", doc="replicas in one group share events")
    jetstream: bool = env(
        "NATS_JETSTREAM", False, envvars.flag, doc="a durable consumer that acknowledges after acceptance"
    )
    stream: str = env(
        "NATS_STREAM", "", doc="stream created when none holds the subjects yet", shown="JOB_EXECUTOR"
    )
    ack_wait_seconds: int = env(
        "NATS_ACK_WAIT_SECONDS", 30, envvars.whole(1), doc="JetStream redelivery delay"
    )
    deliver: str = env(
        "NATS_DELIVER_POLICY",
        "new",
        envvars.deliver_policy,
        doc="where a new JetStream consumer starts: `new` (messages from now on), `all` (the stream's "
        "whole history) or an RFC 3339 time (messages since then); an existing consumer keeps its place",
    )
    publish: bool = env("NATS_PUBLISH", True, envvars.flag, doc="publish started/finished events to NATS too")


@dataclass(frozen=True)
class LocalSettings:
    """The local backend."""

    secrets_dir: Path | None = env(
        "LOCAL_SECRETS_DIR",
        None,
        envvars.optional_path,
        doc="`<dir>/<secret>/<key>` files for `valueFrom: secret`",
        shown="(none)",
    )
    run_as_user: str = env(
        "LOCAL_RUN_AS_USER",
        "nobody",
        doc="when the service runs as root, local tasks run as this user (empty: as root)",
    )


@dataclass(frozen=True)
class ReceiverSettings:
    """The HTTP receiver."""

    host: str = env("RCV_HOST", "127.0.0.1", doc="address the HTTP receiver listens on")
    port: int = env("RCV_PORT", 8080, envvars.whole(0), doc="its port")
    path: str = env("RCV_PATH", "/", doc="its path for events")
    auth_token: str = env(
        "RCV_AUTH_TOKEN", "", doc="require `Authorization: Bearer <token>`", shown="(none)", secret=True
    )
    max_body_bytes: int = env("MAX_BODY_BYTES", 1 << 20, envvars.whole(1024), doc="larger requests get 413")
    max_attribute_bytes: int = env(
        "MAX_ATTRIBUTE_BYTES",
        4096,
        envvars.whole(64),
        doc="cap (UTF-8 bytes) on every attribute value (`id`, `source`, `type`, `subject`, extensions) "
        "on every transport; longer is refused (HTTP 400)",
    )
    header_timeout_seconds: float = env(
        "RCV_HEADER_TIMEOUT_SECONDS",
        10.0,
        envvars.seconds(1),
        doc="time to send a request's headers (also how long an idle keep-alive connection stays); "
        "then the connection is closed",
        shown="`10`",
    )
    body_timeout_seconds: float = env(
        "RCV_BODY_TIMEOUT_SECONDS",
        30.0,
        envvars.seconds(1),
        doc="time to send the body once the headers are in; then 408 and close",
        shown="`30`",
    )
    max_connections: int = env(
        "RCV_MAX_CONNECTIONS",
        256,
        envvars.whole(1),
        doc="connections served at once; more wait unread (and are closed after the header timeout)",
    )
    webhook_allowed_origins: tuple[str, ...] = env(
        "WEBHOOK_ALLOWED_ORIGINS",
        (),
        envvars.listing,
        doc="origins (or `*`) the CloudEvents webhook handshake (`OPTIONS`) allows; empty: no handshake",
        shown="(none: off)",
    )
    webhook_allowed_rate: int = env(
        "WEBHOOK_ALLOWED_RATE",
        120,
        envvars.whole(1),
        doc="requests per minute the handshake grants (`WebHook-Allowed-Rate`), at most what was asked",
    )


@dataclass(frozen=True)
class DispatchSettings:
    """How many events are handled at once, how many wait, how long a stop may take."""

    max_concurrent_runs: int = env(
        "MAX_CONCURRENT_RUNS",
        16,
        envvars.whole(1),
        doc="events handled at once (an event may start several tasks: see `MAX_CONCURRENT_TASKS`)",
    )
    max_concurrent_tasks: int = env(
        "MAX_CONCURRENT_TASKS",
        0,
        envvars.whole(0),
        doc="tasks submitted and not yet ended, across all events and actions; more wait in order "
        "(gauge `job_executor_tasks_waiting`); `0`: no bound but `MAX_CONCURRENT_RUNS`",
    )
    queue_size: int = env("QUEUE_SIZE", 1000, envvars.whole(1), doc="events waiting (then 429)")
    shutdown_grace_seconds: float = env(
        "SHUTDOWN_GRACE_SECONDS", 30.0, envvars.seconds(0), doc="how long a SIGTERM may take", shown="30"
    )


@dataclass(frozen=True)
class StateSettings:
    """The SQLite state: accepted events, progress, the outbox, local work dirs."""

    dir: Path = env(
        "STATE_DIR",
        Path(".job-executor"),
        envvars.path,
        doc="the SQLite state (accepted events, progress, outbox) and local work dirs",
        shown=".job-executor",
    )
    # Finished runs (and what their tasks left) are forgotten after this long; 0 keeps all.
    retention_hours: int = env(
        "STATE_RETENTION_HOURS",
        168,
        envvars.whole(0),
        doc="finished runs, delivered events and their local work dirs are forgotten after this long "
        "(a redelivery after that runs again); `0` keeps everything",
    )


@dataclass(frozen=True)
class ObserveSettings:
    """What the service tells about its work: its log, its traces, the run page."""

    log_format: Literal["text", "json"] = env(
        "LOG_FORMAT",
        "text",
        envvars.choice("text", "json"),
        doc="`text` (one line per record, with its time) or `json` (one object per line, for Loki or "
        "Elasticsearch)",
    )
    log_level: str = env(
        "LOG_LEVEL",
        "info",
        envvars.choice("debug", "info", "warning", "error"),
        doc="`debug` (also every task's output), `info`, `warning` or `error`",
    )
    otlp_endpoint: str = env(
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "",
        doc="OTLP/HTTP collector (`http://collector:4318`) that spans are exported to (needs the `otlp` "
        "extra, which the image has); empty: no spans are made",
        shown="(none: off)",
    )
    service_name: str = env("OTEL_SERVICE_NAME", "job-executor", doc="the service name on exported spans")
    ui: Literal["auto", "on", "off"] = env(
        "UI",
        "auto",
        envvars.choice("auto", "on", "off"),
        doc="the run page at `/ui/`: `auto` serves it when `RCV_AUTH_TOKEN` is set or the receiver listens "
        "on loopback only; `on` also without a token elsewhere (anyone who reaches the port sees the runs)",
    )


GROUPS: dict[str, type] = {
    "jobs": JobSettings,
    "resources": ResourceDefaults,
    "config": ConfigSettings,
    "keptn": KeptnSettings,
    "reporting": ReportSettings,
    "nats": NatsSettings,
    "local": LocalSettings,
    "receiver": ReceiverSettings,
    "dispatch": DispatchSettings,
    "state": StateSettings,
    "kubernetes": KubernetesSettings,
    "clusters": ClusterSettings,
    "observe": ObserveSettings,
}


@dataclass(frozen=True)
class Settings:
    jobs: JobSettings = field(default_factory=JobSettings)
    resources: ResourceDefaults = field(default_factory=ResourceDefaults)
    config: ConfigSettings = field(default_factory=ConfigSettings)
    keptn: KeptnSettings = field(default_factory=KeptnSettings)
    reporting: ReportSettings = field(default_factory=ReportSettings)
    nats: NatsSettings = field(default_factory=NatsSettings)
    local: LocalSettings = field(default_factory=LocalSettings)
    receiver: ReceiverSettings = field(default_factory=ReceiverSettings)
    dispatch: DispatchSettings = field(default_factory=DispatchSettings)
    state: StateSettings = field(default_factory=StateSettings)
    kubernetes: KubernetesSettings = field(default_factory=KubernetesSettings)
    clusters: ClusterSettings = field(default_factory=ClusterSettings)
    observe: ObserveSettings = field(default_factory=ObserveSettings)

    @property
    def remote_plane(self) -> bool:
        """Running as a Keptn remote execution plane (poll the control plane's API)."""
        return bool(self.keptn.api_endpoint and self.keptn.pubsub_topic)

    def check(self) -> None:
        """Combinations that cannot work, refused at start with what to set."""
        if self.config.source == "keptn" and not self.keptn.api_endpoint:
            raise SettingsError("CONFIG_SOURCE=keptn needs KEPTN_API_ENDPOINT (for example http://keptn/api)")
        if self.keptn.pubsub_topic and not self.keptn.api_endpoint:
            raise SettingsError("PUBSUB_TOPIC subscribes through the Keptn API: set KEPTN_API_ENDPOINT too")
        if self.keptn.api_endpoint and not self.keptn.api_token:
            raise SettingsError("KEPTN_API_ENDPOINT is set but KEPTN_API_TOKEN is empty")
        if self.keptn.api_endpoint:
            self.keptn.check()
        if self.kubernetes.leader_election and self.jobs.backend != "kubernetes":
            raise SettingsError("LEADER_ELECTION uses a Kubernetes Lease: set BACKEND=kubernetes too")
        if self.clusters.file is not None and self.jobs.backend != "kubernetes":
            raise SettingsError("CLUSTERS_FILE spreads Jobs over clusters: set BACKEND=kubernetes too")

    def absolute(self) -> Settings:
        """Every path setting made absolute against today's working directory. Paths are used
        from other directories later (a local task's wrapper runs in the task's cwd and was given
        a relative work dir), so they are resolved once, at start."""
        changes = {}
        for name in GROUPS:
            group = getattr(self, name)
            paths = {
                f.name: Path(os.path.abspath(value))
                for f in fields(group)
                if isinstance(value := getattr(group, f.name), Path)
            }
            if paths:
                changes[name] = replace(group, **paths)
        return replace(self, **changes)

    def with_overrides(self, **groups: Mapping[str, Any]) -> Settings:
        """Command-line flags over the environment, by group: `with_overrides(receiver={"port": 9000})`.
        A value of None means 'not given'."""
        changes = {}
        for group, values in groups.items():
            given = {k: v for k, v in values.items() if v is not None}
            if given:
                changes[group] = replace(getattr(self, group), **given)
        return replace(self, **changes)

    def secret_values(self) -> list[str]:
        """The values of every secret setting (tokens): the log masks them wherever they appear."""
        found = []
        for name in GROUPS:
            group = getattr(self, name)
            found += [getattr(group, f.name) for f in fields(group) if not f.repr]
        return [value for value in found if isinstance(value, str) and value]

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        environ = os.environ if environ is None else environ
        return cls(**{name: _read_group(group, environ) for name, group in GROUPS.items()})


def _read_group(group: type, environ: Mapping[str, str]) -> Any:
    values = {}
    for f in fields(group):
        raw = environ.get(f.metadata["env"])
        if raw is not None:
            value = f.metadata["parse"](f.metadata["env"], raw)
            if value is not None:
                values[f.name] = value
    return group(**values)


def declared() -> list[tuple[str, Any]]:
    """Every setting's field, group by group, in declaration order: (group name, field)."""
    return envvars.declared(GROUPS)


# Every variable `from_env` reads; the Helm chart test checks it sets only these.
ENV_VARS: frozenset[str] = frozenset(f.metadata["env"] for _, f in declared())


def markdown_table() -> str:
    """The README's settings table, from the declarations."""
    return envvars.markdown_table(GROUPS)


def _check_fields(group: Any) -> None:
    """Values given in code or by a command-line flag (not only the environment) pass the same
    reader as the variable's text, so `--default-limits-cpu abc` is refused like
    DEFAULT_RESOURCE_LIMITS_CPU=abc, naming the variable."""
    for f in fields(group):
        value = getattr(group, f.name)
        if isinstance(value, str) and value != f.default:
            f.metadata["parse"](f.metadata["env"], value)


def _non_empty(values: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in values.items() if v}


if __name__ == "__main__":
    sys.stdout.write(markdown_table())
