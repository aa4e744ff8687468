"""Settings -> the service's parts: backend, Keptn client, resolver, poller, NATS source, sinks.

The service (service.py) only orders their start and stop; what each part is made of, and which
settings decide it, is read here.
"""

from __future__ import annotations

from collections.abc import Callable

from nats.aio.client import Client

from executor.backends.base import Backend
from executor.backends.kubernetes.admission import Admission
from executor.backends.kubernetes.api import KubeAPI, load_api_client
from executor.backends.kubernetes.backend import KubernetesBackend
from executor.backends.kubernetes.clusterfile import Clusters, ClusterSpec, read_clusters
from executor.backends.kubernetes.clusters import MultiClusterBackend
from executor.backends.kubernetes.lease import LeaderElector, LeaseTiming, default_identity
from executor.backends.kubernetes.render import RenderOptions
from executor.backends.local.backend import LocalBackend
from executor.backends.local.isolation import run_as_user
from executor.keptn.api import KeptnAPI
from executor.keptn.models import IntegrationMetadata
from executor.resolvers.base import Levels, Resolver
from executor.resolvers.keptn import KeptnResolver
from executor.resolvers.local import LocalTreeResolver
from executor.settings import Settings
from executor.sinks.base import Sink
from executor.sinks.http import HttpSink
from executor.sinks.keptn import KeptnSink
from executor.sinks.nats import NatsSink
from executor.sinks.stdout import StdoutSink
from executor.sources.base import Offering
from executor.sources.keptn import KeptnPoller
from executor.sources.nats import NatsSource
from executor.state import StateStore
from executor.support.envvars import SettingsError
from executor.support.metrics import Metrics


def make_backend(
    settings: Settings, store: StateStore | None = None, metrics: Metrics | None = None
) -> Backend:
    if settings.jobs.backend == "kubernetes":
        options = RenderOptions(
            init_image=settings.jobs.init_image,
            files_source="keptn" if settings.config.source == "keptn" else "configmap",
            keptn_api_url=settings.keptn.api_endpoint,
            keptn_token_secret=settings.keptn.api_token_secret,
            managed_by=settings.jobs.deployment_name,
        )
        if settings.clusters.file is not None and store is not None:
            return make_clusters(settings, options, store, metrics)
        return KubernetesBackend(
            options,
            namespaces=(settings.jobs.namespace,),
            pod_start_grace=float(settings.kubernetes.pod_start_grace_seconds),
            admission=make_admission(settings),
        )
    return LocalBackend(
        settings.state.dir / "work",
        settings.local.secrets_dir,
        run_as=run_as_user(settings.local.run_as_user),
    )


def make_admission(settings: Settings) -> Admission:
    """One cluster's write bucket and pending cap (each cluster of CLUSTERS_FILE gets its own)."""
    limits = settings.clusters
    return Admission(float(limits.write_qps), limits.write_burst, limits.max_pending_jobs)


def admissions(backend: Backend) -> list[Admission]:
    """The admission of every cluster the backend creates Jobs in (none for the local backend)."""
    if isinstance(backend, MultiClusterBackend):
        return backend.admissions()
    if isinstance(backend, KubernetesBackend):
        return [backend.admission]
    return []


async def make_elector(settings: Settings) -> LeaderElector:
    """LEADER_ELECTION: a candidate for the Lease in the service's own cluster (in-cluster
    config or KUBECONFIG), with a client of its own, closed by the caller (`elector.api`)."""
    api = KubeAPI(await load_api_client())
    k8s = settings.kubernetes
    return LeaderElector(
        api,
        k8s.lease_namespace or settings.jobs.namespace,
        k8s.lease_name,
        default_identity(),
        LeaseTiming.of(k8s.lease_seconds),
    )


def read_clusters_file(settings: Settings) -> Clusters:
    assert settings.clusters.file is not None
    return read_clusters(settings.clusters.file, settings.jobs.namespace)


def make_clusters(
    settings: Settings, options: RenderOptions, store: StateStore, metrics: Metrics | None
) -> MultiClusterBackend:
    """CLUSTERS_FILE: one KubernetesBackend per cluster, behind the capacity-aware chooser."""

    def member(spec: ClusterSpec) -> KubernetesBackend:
        return KubernetesBackend(
            options,
            namespaces=(spec.namespace or settings.jobs.namespace,),
            pod_start_grace=float(settings.kubernetes.pod_start_grace_seconds),
            kubeconfig=spec.kubeconfig,
            context=spec.context,
            admission=make_admission(settings),
        )

    return MultiClusterBackend(
        read_clusters_file(settings),
        member,
        store,
        default_namespace=settings.jobs.namespace,
        metrics=metrics,
    )


def add_sinks(
    settings: Settings,
    sinks: dict[str, Sink],
    nats_client: Client | None,
    keptn: KeptnAPI | None = None,
    poller: KeptnPoller | None = None,
) -> None:
    """The sinks for outgoing events; stdout when none is configured."""
    # In NATS mode events go back over NATS; the Keptn API would deliver each a second time.
    if keptn is not None and poller is not None and settings.remote_plane:
        sinks["keptn"] = KeptnSink(keptn, integration_id=lambda: poller.integration_id)
    if settings.reporting.sink_url:
        sinks["http"] = HttpSink(settings.reporting.sink_url)
    if nats_client is not None and settings.nats.publish:
        sinks["nats"] = NatsSink(nats_client, jetstream=settings.nats.jetstream)
    if not sinks:
        sinks["stdout"] = StdoutSink()


def make_keptn_client(settings: Settings) -> KeptnAPI | None:
    """One Keptn API client, shared by the config resolver, the poller and the sink."""
    if not settings.keptn.api_endpoint:
        return None
    try:
        return KeptnAPI(settings.keptn.api_endpoint, settings.keptn.api_token)
    except ValueError as exc:
        raise SettingsError(f"KEPTN_API_ENDPOINT: {exc}") from None


def make_resolver(settings: Settings, keptn: KeptnAPI | None) -> Resolver:
    levels = Levels(settings.config.levels)  # SettingsError for a jsonpath that does not parse
    if settings.config.source == "keptn" and keptn is not None:
        return KeptnResolver(keptn, levels=levels)
    return LocalTreeResolver(settings.config.dir, levels)


def make_poller(settings: Settings, keptn: KeptnAPI | None, offer: Offering) -> KeptnPoller | None:
    """The remote execution plane's source: registers with the control plane and polls it for
    triggered events. In NATS mode (with a Keptn API endpoint) it only registers and renews, as
    Keptn's Go SDK does in both modes (go-utils pkg/sdk/connector/controlplane), with the
    subscribed types, or the NATS subjects when PUBSUB_TOPIC is not set."""
    if keptn is None:
        return None
    if settings.remote_plane:
        subscriptions, polling = settings.keptn.pubsub_topic, True
    elif settings.nats.url:
        subscriptions, polling = settings.keptn.pubsub_topic or settings.nats.subjects, False
    else:
        return None
    return KeptnPoller(
        keptn,
        offer,
        subscriptions=subscriptions,
        metadata=IntegrationMetadata.from_env(),
        poll_interval=float(settings.keptn.poll_interval),
        renew_interval=float(settings.keptn.renew_interval),
        polling=polling,
    )


def make_nats_source(
    settings: Settings,
    client: Client,
    offer: Offering,
    metrics: Metrics,
    paused: Callable[[], int | None] | None = None,
) -> NatsSource:
    return NatsSource(
        client,
        offer,
        settings.nats.subjects,
        metrics=metrics,
        queue_group=settings.nats.queue_group,
        jetstream=settings.nats.jetstream,
        stream=settings.nats.stream,
        ack_wait=float(settings.nats.ack_wait_seconds),
        deliver=settings.nats.deliver,
        max_attribute_bytes=settings.receiver.max_attribute_bytes,
        paused=paused,
    )
