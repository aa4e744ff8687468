"""KubernetesBackend: submit, wait, cancel and adopt against the fake API server."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path

import pytest

from executor.backends.kubernetes.api import ApiError, load_api_client
from executor.backends.kubernetes.backend import KubernetesBackend
from executor.backends.kubernetes.render import render_job
from executor.backends.naming import A_EVENT_ID, A_EVENT_SOURCE, SELECTOR
from executor.model.errors import Temporary
from executor.model.tasks import RESULT_FILE_ENV, RESULT_FILE_PATH
from tests.kubeapi.server import FakeKubeAPI
from tests.kubernetes.conftest import (
    NAMESPACE,
    OPTIONS,
    BackendFactory,
    eventually,
    make_spec,
    no_validation_errors,
    submitted_and_waiting,
)


async def waiting_for(backend: KubernetesBackend, name: str) -> None:
    tracker = backend.tracker(NAMESPACE)
    await eventually(lambda: name in tracker.waiting(), what=f"a waiter for {name}")


async def test_job_runs_to_completion_with_its_log(kube_api: FakeKubeAPI, backend: KubernetesBackend) -> None:
    spec = make_spec()
    handle = await backend.submit(spec, {})
    assert (handle.namespace, handle.adopted) == (NAMESPACE, False)
    job = kube_api.get("jobs", NAMESPACE, handle.name)
    assert job is not None
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert {"name": RESULT_FILE_ENV, "value": RESULT_FILE_PATH} in container["env"]
    assert container["terminationMessagePath"] == RESULT_FILE_PATH

    waiter = asyncio.create_task(backend.wait(handle, spec))
    await waiting_for(backend, handle.name)
    kube_api.set_job_running(NAMESPACE, handle.name)
    await asyncio.sleep(0.05)
    assert not waiter.done()
    kube_api.set_job_succeeded(NAMESPACE, handle.name, log="hello cart\nbye\n")
    outcome = await asyncio.wait_for(waiter, 5)
    assert outcome.status == "succeeded" and outcome.ok
    assert outcome.logs == "hello cart\nbye\n"
    assert outcome.exit_code == 0 and outcome.reason == ""
    assert outcome.result is None
    assert outcome.started_at and outcome.finished_at
    no_validation_errors(kube_api)


async def test_result_comes_from_the_termination_message(
    kube_api: FakeKubeAPI, backend: KubernetesBackend
) -> None:
    spec = make_spec()
    handle = await backend.submit(spec, {})
    result = json.dumps({"evaluation": {"score": 97}})
    # What the kubelet does with terminationMessagePath: the file's text lands in the status.
    kube_api.set_job_succeeded(NAMESPACE, handle.name, log="done\n", result=result)
    outcome = await asyncio.wait_for(backend.wait(handle, spec), 5)
    assert outcome.status == "succeeded"
    assert outcome.result == result.encode()


async def test_failure_reason_tells_exit_code_condition_and_events(
    kube_api: FakeKubeAPI, backend: KubernetesBackend
) -> None:
    _, handle, waiter = await submitted_and_waiting(backend)
    kube_api.set_job_failed(
        NAMESPACE,
        handle.name,
        log="connecting...\nerror: connection refused\n",
        exit_code=3,
        events=[{"reason": "BackOff", "message": "Back-off restarting failed container"}],
    )
    outcome = await asyncio.wait_for(waiter, 5)
    assert outcome.status == "failed" and outcome.exit_code == 3
    assert outcome.reason.startswith("exit code 3; Job BackoffLimitExceeded")
    assert "Back-off restarting failed container" in outcome.reason
    assert "error: connection refused" in outcome.logs
    no_validation_errors(kube_api)


async def test_failed_init_container_log_and_events_are_in_the_outcome(
    kube_api: FakeKubeAPI, backend: KubernetesBackend
) -> None:
    spec = make_spec(files=("locust/basic.py",))
    handle = await backend.submit(spec, {"locust/basic.py": b"print('hi')\n"})
    configmap = kube_api.get("configmaps", NAMESPACE, handle.name)
    assert configmap is not None
    kube_api.set_job_failed(
        NAMESPACE,
        handle.name,
        init_exit_code=2,
        init_log="init-files: cannot write /keptn/locust/basic.py: read-only file system\n",
        events=["MountVolume.SetUp failed for volume job-files"],
    )
    outcome = await asyncio.wait_for(backend.wait(handle, spec), 5)
    assert outcome.status == "failed"
    assert f"init container init-{handle.name} (staging files) failed with exit code 2" in outcome.reason
    assert "BackoffLimitExceeded" in outcome.reason
    assert "MountVolume.SetUp failed for volume job-files" in outcome.reason
    assert "read-only file system" in outcome.logs
    assert outcome.exit_code is None  # the job container never ran
    no_validation_errors(kube_api)


async def test_configmap_is_owned_by_its_job_and_goes_with_it(
    kube_api: FakeKubeAPI, backend: KubernetesBackend
) -> None:
    spec = make_spec(files=("a.txt",))
    handle = await backend.submit(spec, {"a.txt": b"x"})
    job = kube_api.get("jobs", NAMESPACE, handle.name)
    configmap = kube_api.get("configmaps", NAMESPACE, handle.name)
    assert job is not None and configmap is not None
    owners = configmap["metadata"]["ownerReferences"]
    assert [(o["kind"], o["name"], o["uid"]) for o in owners] == [
        ("Job", handle.name, job["metadata"]["uid"])
    ]
    kube_api.set_job_running(NAMESPACE, handle.name)
    await backend.cancel(handle)
    assert kube_api.get("jobs", NAMESPACE, handle.name) is None
    await eventually(lambda: not kube_api.objects("configmaps", NAMESPACE), what="the ConfigMap collected")
    await eventually(lambda: not kube_api.objects("pods", NAMESPACE), what="the pod collected")
    no_validation_errors(kube_api)


async def test_second_submit_adopts_the_existing_job(
    kube_api: FakeKubeAPI, backend: KubernetesBackend
) -> None:
    spec = make_spec(files=("a.txt",))
    first = await backend.submit(spec, {"a.txt": b"x"})
    second = await backend.submit(spec, {"a.txt": b"x"})
    assert first.name == second.name
    assert (first.adopted, second.adopted) == (False, True)
    assert len(kube_api.objects("jobs", NAMESPACE)) == 1
    assert len(kube_api.objects("configmaps", NAMESPACE)) == 1
    assert len(kube_api.requests("POST", "/jobs")) == 2  # the second one answered 409
    waits = [asyncio.create_task(backend.wait(h, spec)) for h in (first, second)]
    kube_api.set_job_succeeded(NAMESPACE, first.name, log="once\n")
    outcomes = await asyncio.wait_for(asyncio.gather(*waits), 5)
    assert [o.status for o in outcomes] == ["succeeded", "succeeded"]
    assert [o.logs for o in outcomes] == ["once\n", "once\n"]


async def test_a_job_of_another_event_with_the_same_name_is_not_adopted(
    kube_api: FakeKubeAPI, backend: KubernetesBackend
) -> None:
    spec = make_spec()
    squatter = render_job(spec, OPTIONS)
    squatter["metadata"]["annotations"][A_EVENT_SOURCE] = "elsewhere"
    squatter["metadata"]["annotations"][A_EVENT_ID] = "other-event"
    kube_api.create("jobs", squatter)
    with pytest.raises(RuntimeError, match="belongs to another event") as caught:
        await backend.submit(spec, {})
    assert "'elsewhere'" in str(caught.value) and "'other-event'" in str(caught.value)
    assert len(kube_api.objects("jobs", NAMESPACE)) == 1


async def test_server_errors_on_create_are_retried(kube_api: FakeKubeAPI, backend: KubernetesBackend) -> None:
    kube_api.fail_next(2, 500, method="POST", path_contains="/jobs")
    kube_api.fail_next(1, 429, method="POST", path_contains="/configmaps")
    spec = make_spec(files=("a.txt",))
    handle = await backend.submit(spec, {"a.txt": b"x"})
    assert handle.adopted is False
    assert [r.status for r in kube_api.requests("POST", "/jobs")] == [500, 500, 201]
    assert [r.status for r in kube_api.requests("POST", "/configmaps")] == [429, 201]
    kube_api.fail_next(2, 503, method="GET", path_contains="/pods")
    kube_api.set_job_succeeded(NAMESPACE, handle.name, log="ok\n")
    outcome = await asyncio.wait_for(backend.wait(handle, spec), 5)
    assert (outcome.status, outcome.logs) == ("succeeded", "ok\n")


async def test_persistent_api_failure_is_a_clear_error_without_secrets(
    kube_api: FakeKubeAPI, backend: KubernetesBackend, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    kube_api.fail_next(10, 500, method="POST", path_contains="/jobs", message="etcdserver: request timed out")
    spec = make_spec(env=())
    with pytest.raises(ApiError) as caught:
        await backend.submit(spec, {})
    message = str(caught.value)
    assert message.startswith(f"creating Job {NAMESPACE}/")
    assert "HTTP 500 InternalError: etcdserver: request timed out (gave up after 4 attempts)" in message
    assert isinstance(
        caught.value, Temporary
    )  # the pipeline tries the event again later, adopting what exists
    token = kube_api.kubeconfig()["users"][0]["user"]["token"]
    assert token not in caplog.text and token not in message


async def test_invalid_job_is_refused_at_once(kube_api: FakeKubeAPI, backend: KubernetesBackend) -> None:
    spec = make_spec(limits={"cpu": "lots"})
    with pytest.raises(ApiError, match="HTTP 422 Invalid") as caught:
        await backend.submit(spec, {})
    assert caught.value.status == 422
    assert len(kube_api.requests("POST", "/jobs")) == 1  # not retried


async def test_wait_times_out_deletes_the_job_and_keeps_the_logs(
    kube_api: FakeKubeAPI, backend: KubernetesBackend
) -> None:
    spec = make_spec(max_poll_duration=1)
    handle = await backend.submit(spec, {})
    kube_api.set_job_running(NAMESPACE, handle.name)
    pod = kube_api.job_pod(NAMESPACE, handle.name)
    assert pod is not None
    kube_api.set_pod_log(NAMESPACE, pod["metadata"]["name"], handle.name, "still working\n")
    outcome = await asyncio.wait_for(backend.wait(handle, spec), 5)
    assert outcome.status == "timed_out"
    assert outcome.reason == "timed out after 1 s (maxPollDuration)"
    assert outcome.logs == "still working\n"
    assert kube_api.get("jobs", NAMESPACE, handle.name) is None
    (delete,) = kube_api.requests("DELETE", "/jobs/")
    assert delete.status == 200


async def test_a_task_is_never_given_less_than_its_max_poll_duration(
    kube_api: FakeKubeAPI, backend: KubernetesBackend
) -> None:
    # creationTimestamp has whole seconds: a Job created late in a second must still run for
    # the whole maxPollDuration, not for what is left of it after the stamp's truncation.
    for _ in range(3):
        spec = make_spec(max_poll_duration=1)
        began = time.time()
        handle = await backend.submit(spec, {})
        kube_api.set_job_running(NAMESPACE, handle.name)
        outcome = await asyncio.wait_for(backend.wait(handle, spec), 5)
        assert outcome.status == "timed_out"
        assert time.time() - began >= 1.0


async def test_adopted_job_keeps_its_original_deadline(
    kube_api: FakeKubeAPI, backend: KubernetesBackend
) -> None:
    spec = make_spec(max_poll_duration=1)
    old = render_job(spec, OPTIONS)
    old["metadata"]["creationTimestamp"] = "2020-01-01T00:00:00Z"
    created = kube_api.create("jobs", old)
    kube_api.patch(
        "jobs",
        NAMESPACE,
        created["metadata"]["name"],
        {"metadata": {"creationTimestamp": "2020-01-01T00:00:00Z"}},
    )
    handle = await backend.submit(spec, {})
    assert handle.adopted
    outcome = await asyncio.wait_for(backend.wait(handle, spec), 2)
    assert outcome.status == "timed_out"


async def test_job_deleted_before_it_ends_is_lost(kube_api: FakeKubeAPI, backend: KubernetesBackend) -> None:
    _, handle, waiter = await submitted_and_waiting(backend)
    kube_api.delete("jobs", NAMESPACE, handle.name)
    outcome = await asyncio.wait_for(waiter, 5)
    assert outcome.status == "lost"
    assert "was deleted before it finished" in outcome.reason


async def test_start_adopts_jobs_left_by_a_previous_run(
    kube_api: FakeKubeAPI, backend_factory: BackendFactory
) -> None:
    specs = [make_spec(task_name=f"t{i}", task_index=i) for i in (1, 2)]
    for spec in specs:
        kube_api.create("jobs", render_job(spec, OPTIONS))
    # t1 ended while nobody was watching.
    kube_api.set_job_succeeded(NAMESPACE, render_job(specs[0], OPTIONS)["metadata"]["name"], log="t1 done\n")
    kube_api.create(
        "jobs", {**render_job(make_spec(), OPTIONS), "metadata": {"name": "not-ours", "labels": {}}}
    )
    backend = backend_factory()
    await backend.start()
    assert len(backend.tracker(NAMESPACE).jobs()) == 2
    adopted = await backend.adopt()
    assert sorted(a.handle.name for a in adopted) == sorted(
        render_job(s, OPTIONS)["metadata"]["name"] for s in specs
    )
    assert all(a.handle.adopted and a.handle.namespace == NAMESPACE for a in adopted)
    assert {a.annotations["keptn.sh/jes-task"] for a in adopted} == {"t1", "t2"}
    (list_request,) = kube_api.requests("GET", "/jobs", watch=False)[:1]
    assert list_request.query["labelSelector"] == SELECTOR
    # An adopted Job is waited for like one submitted now.
    handle = next(a.handle for a in adopted if a.annotations["keptn.sh/jes-task"] == "t2")
    kube_api.set_job_succeeded(NAMESPACE, handle.name, log="t2 done\n")
    outcome = await asyncio.wait_for(backend.wait(handle, specs[1]), 5)
    assert (outcome.status, outcome.logs) == ("succeeded", "t2 done\n")
    handle = next(a.handle for a in adopted if a.annotations["keptn.sh/jes-task"] == "t1")
    outcome = await asyncio.wait_for(backend.wait(handle, specs[0]), 5)
    assert (outcome.status, outcome.logs) == ("succeeded", "t1 done\n")


async def test_close_interrupts_waits_without_an_outcome(
    kube_api: FakeKubeAPI, backend: KubernetesBackend
) -> None:
    _, handle, waiter = await submitted_and_waiting(backend)
    await backend.close()
    # Cancelled, not failed: the pipeline records nothing and the Job is adopted after a restart.
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert kube_api.get("jobs", NAMESPACE, handle.name) is not None
    await eventually(lambda: kube_api.open_watches == 0, what="the watch closed")


async def test_client_comes_from_kubeconfig_or_the_cluster(
    kube_api: FakeKubeAPI, kube_config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(kube_config_file))
    backend = KubernetesBackend(OPTIONS, (NAMESPACE,))  # no client injected: loads KUBECONFIG
    await backend.start()
    try:
        handle = await backend.submit(make_spec(), {})
        assert kube_api.get("jobs", NAMESPACE, handle.name) is not None
    finally:
        await backend.close()

    calls = []

    def in_cluster(client_configuration: object) -> None:
        calls.append(client_configuration)
        client_configuration.host = kube_api.url  # type: ignore[attr-defined]

    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setattr("executor.backends.kubernetes.api.config.load_incluster_config", in_cluster)
    api_client = await load_api_client()
    await api_client.close()
    assert len(calls) == 1 and api_client.configuration.host == kube_api.url


async def test_missing_kubeconfig_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    with pytest.raises(
        ApiError, match=f"cannot configure the Kubernetes client from kubeconfig {tmp_path}/absent"
    ):
        await KubernetesBackend(OPTIONS, (NAMESPACE,)).start()
