"""Issue 15 items 4-6 end to end: `serve` against the fake API server (strict: the official
schema and the API server's pod rules) with the operator's defaults set. A config naming a
Secret outside ALLOWED_SECRET_LIST runs nothing; a placed task's Job carries the operator's and
its own placement, the operator's contexts and secrets, and the fake accepts it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.core.conftest import one_task
from tests.kubeapi.server import FakeKubeAPI
from tests.kubernetes.conftest import eventually, no_validation_errors, serve_env
from tests.service.conftest import PROJECT, STAGE, EventSink, Serve, make_event, write_config

pytestmark = pytest.mark.slow

PLACED = """
image: alpine:3.20
cmd: [uname, -m]
securityContext: {runAsUser: 7000}
nodeSelector: {kubernetes.io/arch: arm64}
tolerations:
  - {key: dedicated, operator: Equal, value: builds, effect: NoSchedule}
env:
  - {name: ci-token, valueFrom: secret}
"""
FORBIDDEN = """
image: alpine:3.20
cmd: [env]
env:
  - {name: prod-db, valueFrom: secret}
"""


async def test_serve_applies_the_operators_defaults(
    tmp_path: Path, kube_api: FakeKubeAPI, kube_config_file: Path, sink: EventSink
) -> None:
    write_config(tmp_path, one_task(FORBIDDEN), (PROJECT, STAGE, "greedy"))
    write_config(tmp_path, one_task(PLACED), (PROJECT, STAGE, "placed"))
    env = serve_env(
        kube_config_file,
        ALLOWED_SECRET_LIST="ci-*",
        JOB_DEFAULT_SECRETS="registry-creds",
        JOB_EXTRA_ENV=json.dumps({"HTTP_PROXY": "http://proxy:3128"}),
        JOB_SECURITY_CONTEXT=json.dumps({"runAsGroup": 1000}),
        JOB_POD_SECURITY_CONTEXT=json.dumps({"fsGroup": 2000}),
        JOB_NODE_SELECTOR=json.dumps({"pool": "jobs"}),
        JOB_TOLERATIONS=json.dumps([{"key": "spot", "operator": "Exists", "effect": "NoExecute"}]),
        JOB_AFFINITY=json.dumps({"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": []}}),
    )
    serve = Serve(tmp_path, sink.url, env)
    try:
        await serve.start()
        await serve.post(make_event(event_id="greedy", service="greedy"))
        await serve.post(make_event(event_id="placed", service="placed"))
        (job,) = await eventually(lambda: kube_api.objects("jobs", "jobs"), timeout=20, what="the placed Job")
        kube_api.set_job_running("jobs", job["metadata"]["name"])
        kube_api.set_job_succeeded("jobs", job["metadata"]["name"], log="aarch64\n")
        finished = await sink.wait_for(".finished", count=2)
    finally:
        await serve.stop()
    by_service = {e["data"]["service"]: e["data"] for e in finished}
    greedy = by_service["greedy"]
    assert (greedy["status"], greedy["result"]) == ("errored", "fail")
    assert "Forbidden: Secret prod-db is not in the allowed list (ALLOWED_SECRET_LIST)." in greedy["message"]
    assert by_service["placed"]["status"] == "succeeded"
    pod = job["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"pool": "jobs", "kubernetes.io/arch": "arm64"}
    assert pod["tolerations"] == [
        {"key": "spot", "operator": "Exists", "effect": "NoExecute"},
        {"key": "dedicated", "operator": "Equal", "value": "builds", "effect": "NoSchedule"},
    ]
    assert pod["affinity"] == {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": []}}
    assert pod["securityContext"] == {"fsGroup": 2000}
    (container,) = pod["containers"]
    assert (container["securityContext"]["runAsUser"], container["securityContext"]["runAsGroup"]) == (
        7000,
        1000,
    )
    assert container["envFrom"] == [
        {"secretRef": {"name": "registry-creds"}},
        {"secretRef": {"name": "ci-token"}},
    ]
    assert {"name": "HTTP_PROXY", "value": "http://proxy:3128"} in container["env"]
    assert len(kube_api.requests("POST", "/namespaces/jobs/jobs")) == 1  # the greedy config sent nothing
    no_validation_errors(kube_api)
    assert "ALLOWED_SECRET_LIST is empty" not in serve.log.read_text()  # a list is set: no warning


async def test_serve_refuses_a_privileged_operator_context_at_start(
    tmp_path: Path, kube_config_file: Path, sink: EventSink
) -> None:
    write_config(tmp_path, one_task(FORBIDDEN))
    env = serve_env(kube_config_file, JOB_SECURITY_CONTEXT=json.dumps({"privileged": True}))
    serve = Serve(tmp_path, sink.url, env)
    with pytest.raises(AssertionError, match="serve exited early"):
        await serve.start()
    assert "JOB_SECURITY_CONTEXT: asks for privileged: true" in serve.log.read_text()
