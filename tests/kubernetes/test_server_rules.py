"""Issue 13 item 16 end to end: `serve` against the fake API server (which refuses each of these
as kube-apiserver does: tests/kubeapi/limits.py, validation.py) never sends such a Job; the
finished event names the rule. One service, one config per Keptn service, one event each."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from executor.backends.kubernetes.api import ApiError
from executor.backends.kubernetes.backend import KubernetesBackend
from executor.model.errors import Temporary
from executor.model.tasks import EnvVar
from tests.core.conftest import one_task
from tests.core.test_server_rules import AS_JSON, CONFIG_RULES, ECHO
from tests.kubeapi.server import FakeKubeAPI
from tests.kubernetes.conftest import eventually, make_spec, no_validation_errors, serve_env
from tests.service.conftest import PROJECT, STAGE, EventSink, Serve, make_event, write_config

pytestmark = pytest.mark.slow

# (Keptn service, config, event changes, what the finished message says)
EVENT_RULES: list[tuple[str, str, dict[str, Any], str]] = [
    (
        "big-source",
        one_task(ECHO),
        {"source": "s" * 300_000},
        "its Job's annotations would take about",
    ),
    (
        "big-event",
        one_task(AS_JSON),
        {"data": {"pad": "x" * 900_000}},
        "over the 1572864 bytes etcd stores in one object (1.5 MiB)",
    ),
]


async def test_no_job_the_api_server_would_refuse_is_sent(
    tmp_path: Path, kube_api: FakeKubeAPI, kube_config_file: Path, sink: EventSink
) -> None:
    expected: dict[str, str] = {}
    events = []
    for number, (_rule, task, _line, message) in enumerate(CONFIG_RULES):
        service = f"rule-{number}"
        write_config(tmp_path, one_task(task), (PROJECT, STAGE, service))
        expected[service] = message
        events.append(make_event(event_id=f"rule-{number}", service=service))
    for service, text, changes, message in EVENT_RULES:
        write_config(tmp_path, text, (PROJECT, STAGE, service))
        expected[service] = message
        event = make_event(event_id=service, service=service, **changes.get("data", {}))
        if "source" in changes:
            event["source"] = changes["source"]
        events.append(event)
    # A task that is fine, sent last: its Job shows that Jobs are created at all.
    write_config(tmp_path, one_task(ECHO), (PROJECT, STAGE, "fine"))
    events.append(make_event(event_id="fine", service="fine"))
    env = serve_env(kube_config_file, MAX_ATTRIBUTE_BYTES="400000", MAX_BODY_BYTES="2000000")
    serve = Serve(tmp_path, sink.url, env)
    try:
        await serve.start()
        for event in events:
            status, body = await serve.post(event)
            assert status == 202, body
        (job,) = await eventually(lambda: kube_api.objects("jobs", "jobs"), timeout=20, what="the fine Job")
        kube_api.set_job_running("jobs", job["metadata"]["name"])
        kube_api.set_job_succeeded("jobs", job["metadata"]["name"], log="hi\n")
        finished = await sink.wait_for(".finished", count=len(events), timeout=40)
    finally:
        await serve.stop()
    by_service = {e["data"]["service"]: e["data"] for e in finished}
    assert (by_service["fine"]["status"], by_service["fine"]["result"]) == ("succeeded", "pass")
    for service, message in expected.items():
        data = by_service[service]
        assert (data["status"], data["result"]) == ("errored", "fail"), (service, data)
        assert message in data["message"], (service, data["message"][:2000])
    # Only the fine Job was sent; the API server had nothing to refuse.
    assert len(kube_api.requests("POST", "/namespaces/jobs/jobs")) == 1
    no_validation_errors(kube_api)


async def test_a_job_etcd_refuses_is_not_retried(kube_api: FakeKubeAPI, backend: KubernetesBackend) -> None:
    """Should a Job pass the planner's estimate and still be too large, etcd's 500 is final."""
    spec = make_spec(env=(EnvVar("BIG", "x" * 1_600_000),))
    with pytest.raises(ApiError) as caught:
        await backend.submit(spec, {})
    assert not isinstance(caught.value, Temporary)
    assert "etcdserver: request is too large" in str(caught.value)
    assert len(kube_api.requests("POST", "/namespaces/default/jobs")) == 1
