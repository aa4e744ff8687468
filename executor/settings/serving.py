"""Settings of the service itself: where configs come from, Keptn, reports, NATS, the HTTP
receiver, the dispatcher, the state, logs and traces. Each field is one variable, declared once."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from executor.support import envvars
from executor.support.envvars import SettingsError, env

REGISTRATION_TTL = 60
RENEW_BUDGET = 50  # seconds: the TTL less room for slow answers and retries


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
        shown="samples/resources (unset, `serve` started where there is none: the checkout's)",
    )
    levels: tuple[str, ...] = env(
        "CONFIG_LEVELS",
        ("$.data.project", "$.data.stage", "$.data.service"),
        envvars.jsonpath_levels,
        doc="up to three jsonpaths over the whole event naming the config tree's levels",
        shown="`$.data.project,$.data.stage,$.data.service`",
    )


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
        doc="events handled at once (an event may start several tasks: see `MAX_CONCURRENT_TASKS`); "
        "one waiting for an action's `concurrency` slot does not count",
    )
    max_concurrent_tasks: int = env(
        "MAX_CONCURRENT_TASKS",
        0,
        envvars.whole(0),
        doc="tasks submitted and not yet ended, across all events and actions; more wait in order "
        "(gauge `job_executor_tasks_waiting`); `0`: no bound but `MAX_CONCURRENT_RUNS`",
    )
    queue_size: int = env(
        "QUEUE_SIZE",
        1000,
        envvars.whole(1),
        doc="events waiting, for `MAX_CONCURRENT_RUNS` or an action's `concurrency` slot (then 429)",
    )
    shutdown_grace_seconds: float = env(
        "SHUTDOWN_GRACE_SECONDS", 30.0, envvars.seconds(0), doc="how long a SIGTERM may take", shown="30"
    )
    speedups: Literal["auto", "off"] = env(
        "SPEEDUPS",
        "auto",
        envvars.choice("auto", "off"),
        doc="`auto`: uvloop and orjson when installed (`pip install 'job-executor[speedups]'`, in the "
        "image); `off`: the standard library's event loop and JSON",
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
