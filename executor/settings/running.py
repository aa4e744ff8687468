"""Settings of where and how tasks run: jobs, the Kubernetes backend, clusters, default resources,
the local backend. Each field is one variable, declared once (see executor/settings/__init__.py)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal

from executor import __version__
from executor.support import envvars
from executor.support.envvars import env, parse_labels
from executor.support.quantities import parse_quantity

DEFAULT_INIT_IMAGE = f"ghcr.io/job-executor/job-executor:{__version__}"


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
        check_fields(self)


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
        check_fields(self)
        # The API server refuses a request above its limit (ValidateResourceRequirements): every
        # task without a `resources` block would fail, so refuse the pair at start.
        for kind, limit, request in (
            ("CPU", self.limits_cpu, self.requests_cpu),
            ("MEMORY", self.limits_memory, self.requests_memory),
        ):
            if limit and request and parse_quantity(request) > parse_quantity(limit):
                raise envvars.SettingsError(
                    f"DEFAULT_RESOURCE_REQUESTS_{kind}={request} is above DEFAULT_RESOURCE_LIMITS_{kind}="
                    f"{limit}; Kubernetes refuses a request above its limit: lower the request or raise "
                    "the limit"
                )

    def limits(self) -> dict[str, str]:
        return _non_empty({"cpu": self.limits_cpu, "memory": self.limits_memory})

    def requests(self) -> dict[str, str]:
        return _non_empty({"cpu": self.requests_cpu, "memory": self.requests_memory})


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


def check_fields(group: Any) -> None:
    """Values given in code or by a command-line flag (not only the environment) pass the same
    reader as the variable's text, so `--default-limits-cpu abc` is refused like
    DEFAULT_RESOURCE_LIMITS_CPU=abc, naming the variable."""
    for f in fields(group):
        value = getattr(group, f.name)
        if isinstance(value, str) and value != f.default:
            f.metadata["parse"](f.metadata["env"], value)


def _non_empty(values: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in values.items() if v}
