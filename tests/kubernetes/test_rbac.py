"""A task sent to a namespace outside the service's RBAC, or to one that does not exist, is
refused at once with the reason: a Permanent, no retry, no watch left retrying its 403
(issue 13 item 15). The Role here is the Helm chart's (helm/job-executor/templates/rbac.yaml)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from kubernetes_asyncio import config as kube_config
from kubernetes_asyncio.client import ApiClient, Configuration

from executor.backends.kubernetes.api import ApiError
from executor.backends.kubernetes.backend import KubernetesBackend
from executor.model.errors import Permanent, Temporary
from tests.kubeapi.access import READ
from tests.kubeapi.server import FakeKubeAPI, Role
from tests.kubernetes.conftest import FAST, FAST_WATCH, OPTIONS, eventually, make_spec, serve_env
from tests.service.conftest import EventSink, Serve, make_event, write_config

TOKEN = "job-executor-sa-token"
CHART_ROLE = Role.of(
    {
        "jobs.batch": ["create", "get", "list", "watch", "delete"],
        "configmaps": ["create", "get", "list", "patch", "delete"],
        "pods": READ,
        "pods/log": ["get"],
        "events": READ,
    }
)


@pytest.fixture
async def chart_client(kube_api: FakeKubeAPI, tmp_path: Path) -> ApiClient:
    """A client with the chart's Role in namespace "jobs" only."""
    kube_api.add_user(TOKEN, "system:serviceaccount:keptn:job-executor", {"jobs": CHART_ROLE})
    path = kube_api.write_kubeconfig(tmp_path / "sa-kubeconfig", token=TOKEN)
    configuration = Configuration()
    await kube_config.load_kube_config(config_file=str(path), client_configuration=configuration)
    return ApiClient(configuration=configuration)


@pytest.fixture
async def jobs_backend(chart_client: ApiClient) -> AsyncIterator[KubernetesBackend]:
    backend = KubernetesBackend(
        OPTIONS, ("jobs",), api_client=chart_client, backoff=FAST, watch_backoff=FAST_WATCH
    )
    await backend.start()
    yield backend
    await backend.close()
    await chart_client.close()


async def test_a_task_in_a_namespace_outside_the_role_is_refused_with_the_reason(
    kube_api: FakeKubeAPI, jobs_backend: KubernetesBackend
) -> None:
    spec = make_spec(namespace="elsewhere")  # exists, but the Role is in "jobs" only
    with pytest.raises(ApiError) as caught:
        await jobs_backend.submit(spec, {"hello.txt": b"hi\n"})
    error = caught.value
    assert isinstance(error, Permanent) and not isinstance(error, Temporary)
    message = str(error)
    assert "namespace 'elsewhere' is outside its RBAC" in message
    assert "403 Forbidden" in message and "'jobs', JOB_NAMESPACE" in message
    # Refused once, not retried; and no watch was started there to retry its 403 forever.
    assert len(kube_api.requests("POST", "/namespaces/elsewhere/")) == 1
    assert jobs_backend.watched_namespaces() == ("jobs",)
    assert kube_api.objects("jobs") == [] and kube_api.objects("configmaps", "elsewhere") == []


async def test_a_task_in_a_namespace_that_does_not_exist_is_refused(
    kube_api: FakeKubeAPI, backend: KubernetesBackend
) -> None:
    with pytest.raises(ApiError) as caught:
        await backend.submit(make_spec(namespace="no-such-ns"), {})
    assert isinstance(caught.value, Permanent)
    assert "namespace 'no-such-ns' does not exist" in str(caught.value)
    assert backend.watched_namespaces() == ("default",)


async def test_the_chart_role_is_enough_in_the_job_namespace(
    kube_api: FakeKubeAPI, jobs_backend: KubernetesBackend
) -> None:
    spec = make_spec(namespace="jobs")
    handle = await jobs_backend.submit(spec, {"hello.txt": b"hi\n"})
    kube_api.set_job_running("jobs", handle.name)
    kube_api.set_job_failed("jobs", handle.name, log="boom\n", exit_code=3)
    outcome = await jobs_backend.wait(handle, spec)
    assert (outcome.status, outcome.exit_code, outcome.logs) == ("failed", 3, "boom\n")
    assert "Warning" not in outcome.reason  # the events were readable: quoted by reason, not refused
    await eventually(
        lambda: kube_api.get("configmaps", "jobs", handle.name)["metadata"].get("ownerReferences")
    )


OUTSIDE_CONFIG = """\
apiVersion: v2
actions:
  - name: "Elsewhere"
    events:
      - name: "sh.keptn.event.test.triggered"
    tasks:
      - name: "Greet"
        image: "alpine:3.20"
        namespace: elsewhere
        cmd: ["sh", "-c", "echo hi"]
"""


@pytest.mark.slow
async def test_serve_reports_a_task_outside_its_role_as_failed_with_the_reason(
    tmp_path: Path, kube_api: FakeKubeAPI, sink: EventSink
) -> None:
    kube_api.add_user(TOKEN, "system:serviceaccount:keptn:job-executor", {"jobs": CHART_ROLE})
    kubeconfig = kube_api.write_kubeconfig(tmp_path / "sa-kubeconfig", token=TOKEN)
    write_config(tmp_path, OUTSIDE_CONFIG)
    serve = Serve(tmp_path, sink.url, serve_env(kubeconfig))
    try:
        await serve.start()
        await serve.post(make_event(event_id="0c0ffee0-0000-4000-8000-000000000403"))
        (finished,) = await sink.wait_for(".finished")
    finally:
        await serve.stop()
    data = finished["data"]
    assert (data["status"], data["result"]) == ("errored", "fail")
    assert "namespace 'elsewhere' is outside its RBAC" in data["message"]
    assert len(kube_api.requests("POST", "/namespaces/elsewhere/jobs")) == 1  # not retried
