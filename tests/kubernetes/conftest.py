"""The Kubernetes backend against the in-repo fake API server, through the real client."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio.client import ApiClient

from executor.backends.kubernetes.backend import KubernetesBackend
from executor.backends.kubernetes.render import RenderOptions
from executor.model.tasks import EnvVar, TaskHandle, TaskOutcome, TaskSpec, Trigger
from executor.planner import DEFAULT_SECURITY_CONTEXT
from executor.support.backoff import Backoff
from tests.kubeapi import fixtures as kubeapi_fixtures
from tests.kubeapi.server import FakeKubeAPI

# The fake's fixtures: kube_api, kube_config_file, kube_api_client, kube_api_factory. Not via
# `pytest_plugins = ["tests.kubeapi.fixtures"]`: pytest refuses that in a conftest below the
# root directory when the whole suite is collected.
kube_api = kubeapi_fixtures.kube_api
kube_config_file = kubeapi_fixtures.kube_config_file
kube_api_client = kubeapi_fixtures.kube_api_client
kube_api_factory = kubeapi_fixtures.kube_api_factory

NAMESPACE = "default"
OPTIONS = RenderOptions(init_image="ghcr.io/job-executor/job-executor:test")
# Tests must not wait for production backoffs.
FAST = Backoff(base=0.01, cap=0.05, attempts=4, jitter=True)
FAST_WATCH = Backoff(base=0.01, cap=0.1, jitter=True)


def serve_env(kube_config_file: Path, **extra: str) -> dict[str, str]:
    """`serve` with the Kubernetes backend, talking to the fake API server, Jobs in `jobs`."""
    return {
        "BACKEND": "kubernetes",
        "KUBECONFIG": str(kube_config_file),
        "KUBERNETES_SERVICE_HOST": "",  # not in a pod, whatever the test machine says
        "JOB_NAMESPACE": "jobs",
        **extra,
    }


def make_spec(event_id: str = "", **changes: Any) -> TaskSpec:
    trigger = Trigger(
        event_id=event_id or str(uuid.uuid4()),
        event_source="tests",
        event_type="sh.keptn.event.test.triggered",
        keptn_context="ctx-1",
        project="shop",
        stage="dev",
        service="cart",
        git_commit_id="abc123",
    )
    spec = TaskSpec(
        trigger=trigger,
        action_name="Test",
        action_index=0,
        task_name="Greet",
        task_index=1,
        config_digest="d1",
        image="alpine:3.20",
        cmd=("sh", "-c"),
        args=("echo hello",),
        env=(EnvVar("KEPTN_PROJECT", "shop"),),
        secret_refs=(),
        files=(),
        working_dir=None,
        limits={"cpu": "1", "memory": "512Mi"},
        requests={"cpu": "50m", "memory": "128Mi"},
        init_limits={},
        init_requests={},
        max_poll_duration=60,
        ttl_seconds_after_finished=600,
        active_deadline_seconds=None,
        namespace=NAMESPACE,
        annotations={},
        security_context=DEFAULT_SECURITY_CONTEXT,
        image_pull_policy=None,
        service_account=None,
        automount_service_account_token=False,
    )
    return replace(spec, **changes)


BackendFactory = Callable[..., KubernetesBackend]


@pytest.fixture
async def backend_factory(kube_api_client: ApiClient) -> AsyncIterator[BackendFactory]:
    made: list[KubernetesBackend] = []

    def make(**options: Any) -> KubernetesBackend:
        options.setdefault("api_client", kube_api_client)
        options.setdefault("backoff", FAST)
        options.setdefault("watch_backoff", FAST_WATCH)
        backend = KubernetesBackend(OPTIONS, (NAMESPACE,), **options)
        made.append(backend)
        return backend

    yield make
    for backend in made:
        await backend.close()


@pytest.fixture
async def backend(backend_factory: BackendFactory) -> KubernetesBackend:
    made = backend_factory()
    await made.start()
    return made


async def eventually(check: Callable[[], Any], timeout: float = 5.0, what: str = "condition") -> Any:
    """Poll `check` until it returns something truthy (the test loop keeps serving meanwhile)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def no_validation_errors(api: FakeKubeAPI) -> None:
    assert api.validation_errors == [], [f.message for f in api.validation_errors]


async def submitted_and_waiting(
    backend: KubernetesBackend, kube_api: FakeKubeAPI | None = None, spec: TaskSpec | None = None
) -> tuple[TaskSpec, TaskHandle, asyncio.Task[TaskOutcome]]:
    """Submit a task and start waiting for it; return once the tracker has the waiter (and, given
    the fake API, once the watch is open), so what the test does next is seen by the watch."""
    spec = spec or make_spec()
    handle = await backend.submit(spec, {})
    waiter = asyncio.create_task(backend.wait(handle, spec))
    tracker = backend.tracker(NAMESPACE)
    await eventually(lambda: handle.name in tracker.waiting(), what=f"a waiter for {handle.name}")
    if kube_api is not None:
        await eventually(lambda: kube_api.watching("jobs") == 1, what="the open watch")
    return spec, handle, waiter
