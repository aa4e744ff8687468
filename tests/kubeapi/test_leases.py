"""coordination.k8s.io/v1 Leases on the fake API server (as strict as the real one on updates),
and the leader elector against it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from kubernetes_asyncio.client import ApiClient, CoordinationV1Api

from executor.backends.kubernetes.api import ApiError, JSONBody, KubeAPI
from executor.backends.kubernetes.lease import LeaderElector, LeaseTiming, LostLease
from tests.kubeapi.server import FakeKubeAPI

pytest_plugins = ["tests.kubeapi.fixtures"]

BASE = "/apis/coordination.k8s.io/v1/namespaces/default/leases"


def lease(name: str = "lock", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": name},
        "spec": {"holderIdentity": "a", "leaseDurationSeconds": 10, **spec},
    }


async def test_update_with_a_stale_resource_version_is_a_conflict(kube_api_client: ApiClient) -> None:
    api = KubeAPI(kube_api_client)
    coordination = CoordinationV1Api(kube_api_client)
    created = await api.call("create", coordination.create_namespaced_lease, "default", JSONBody(lease()))
    assert created["metadata"]["resourceVersion"]
    first = {**created, "spec": {**created["spec"], "holderIdentity": "b"}}
    second = {**created, "spec": {**created["spec"], "holderIdentity": "c"}}
    await api.call("update", coordination.replace_namespaced_lease, "lock", "default", JSONBody(first))
    with pytest.raises(ApiError) as raised:  # written against the version the first update replaced
        await api.call("update", coordination.replace_namespaced_lease, "lock", "default", JSONBody(second))
    assert raised.value.status == 409 and raised.value.reason == "Conflict"
    assert "the object has been modified" in str(raised.value)
    read = await api.call("read", coordination.read_namespaced_lease, "lock", "default")
    assert read["spec"]["holderIdentity"] == "b"
    with pytest.raises(ApiError) as invalid:
        await api.call(
            "create",
            coordination.create_namespaced_lease,
            "default",
            JSONBody(lease("bad", leaseDurationSeconds=0)),
        )
    assert invalid.value.status == 422 and "leaseDurationSeconds" in str(invalid.value)


def elector(client: ApiClient, identity: str, seconds: int = 2) -> LeaderElector:
    return LeaderElector(KubeAPI(client), "default", "job-executor", identity, LeaseTiming.of(seconds))


async def test_one_candidate_leads_and_the_other_takes_over_once_it_stops_renewing(
    kube_api: FakeKubeAPI, kube_api_client: ApiClient
) -> None:
    a, b = elector(kube_api_client, "a"), elector(kube_api_client, "b")
    results = await asyncio.gather(a.try_acquire_or_renew(), b.try_acquire_or_renew())
    assert sorted(results) == [False, True]  # both raced to create or update: one won
    first, second = (a, b) if results[0] else (b, a)
    await first.acquire()
    assert not await second.try_acquire_or_renew()  # held, and renewed just now
    assert second.holder == first.identity
    # the leader stops renewing (it died): the other takes over after the lease duration
    loop = asyncio.get_running_loop()
    began = loop.time()
    await asyncio.wait_for(second.acquire(), timeout=6)
    waited = loop.time() - began
    assert 1.5 <= waited <= 3.5, waited  # the 2 s duration, measured on its own clock
    stored = kube_api.get("leases", "default", "job-executor")
    assert stored is not None
    assert stored["spec"]["holderIdentity"] == second.identity
    assert stored["spec"]["leaseTransitions"] == 1
    # the old leader, renewing again, finds the Lease taken and stops leading
    first.leading = True
    with pytest.raises(LostLease):
        await asyncio.wait_for(first.keep(), timeout=5)
    assert not first.leading


async def test_a_released_lease_is_taken_at_once(kube_api_client: ApiClient) -> None:
    a, b = elector(kube_api_client, "a", seconds=30), elector(kube_api_client, "b", seconds=30)
    await a.acquire()
    assert not await b.try_acquire_or_renew()
    await a.release()
    assert await b.try_acquire_or_renew()  # no 30 s wait after a graceful stop
