"""Two or three fake Kubernetes API servers, each a cluster of a CLUSTERS_FILE."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from executor.backends.kubernetes.backend import KubernetesBackend
from executor.backends.kubernetes.clusterfile import Clusters, ClusterSpec, read_clusters
from executor.backends.kubernetes.clusters import MultiClusterBackend
from executor.state import StateStore
from executor.support.backoff import Backoff
from executor.support.metrics import Metrics
from tests.faults.conftest import one_task  # noqa: F401 - the one-task config and serve (test_takeover)
from tests.kubeapi import fixtures as kubeapi_fixtures
from tests.kubeapi.fixtures import KubeAPIFactory
from tests.kubeapi.server import FakeKubeAPI
from tests.kubernetes.conftest import FAST, FAST_WATCH, OPTIONS, eventually, make_spec  # noqa: F401

kube_api_factory = kubeapi_fixtures.kube_api_factory

NAMESPACE = "jobs"
# A failing cluster is skipped only briefly in tests.
SHORT = Backoff(base=0.2, cap=0.5)


@dataclass
class Fleet:
    """Fake clusters, the file naming them, and a way to build the backend over them (again)."""

    servers: dict[str, FakeKubeAPI]
    file: Path
    store: StateStore
    metrics: Metrics = field(default_factory=Metrics)
    made: list[MultiClusterBackend] = field(default_factory=list)

    def write(self, entries: list[dict[str, Any]]) -> Clusters:
        self.file.write_text(yaml.safe_dump({"clusters": entries}, sort_keys=False))
        return read_clusters(self.file, NAMESPACE)

    async def backend(self, **options: Any) -> MultiClusterBackend:
        def member(spec: ClusterSpec) -> KubernetesBackend:
            return KubernetesBackend(
                OPTIONS,
                (spec.namespace,),
                backoff=FAST,
                watch_backoff=FAST_WATCH,
                sync_timeout=1.0,
                pod_start_grace=0,
                kubeconfig=spec.kubeconfig,
                context=spec.context,
            )

        options.setdefault("failure_backoff", SHORT)
        made = MultiClusterBackend(
            read_clusters(self.file, NAMESPACE),
            member,
            self.store,
            default_namespace=NAMESPACE,
            metrics=self.metrics,
            **options,
        )
        self.made.append(made)
        await made.start()
        return made

    def jobs(self, cluster: str) -> list[str]:
        return [j["metadata"]["name"] for j in self.servers[cluster].objects("jobs", NAMESPACE)]


FleetFactory = Callable[..., Any]


@pytest.fixture
async def fleet_factory(
    kube_api_factory: KubeAPIFactory, tmp_path: Path
) -> AsyncIterator[Callable[..., Any]]:
    fleets: list[Fleet] = []

    async def make(limits: dict[str, int], **server_options: Any) -> Fleet:
        servers: dict[str, FakeKubeAPI] = {}
        entries = []
        for name, limit in limits.items():
            api = await kube_api_factory(**server_options)
            servers[name] = api
            config = api.write_kubeconfig(tmp_path / f"{name}.kubeconfig")
            entries.append({"name": name, "kubeconfig": str(config), "maxConcurrentJobs": limit})
        fleet = Fleet(servers, tmp_path / "clusters.yaml", StateStore(tmp_path / f"state-{len(fleets)}.db"))
        fleet.write(entries)
        fleets.append(fleet)
        return fleet

    yield make
    for fleet in fleets:
        for backend in fleet.made:
            await backend.close()
        fleet.store.close()
    await asyncio.sleep(0)
