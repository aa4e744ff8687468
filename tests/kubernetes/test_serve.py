"""`job-executor serve` with BACKEND=kubernetes as a real process, against the fake API server
(running in the test's loop), reporting to a real HTTP sink."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from executor.backends.naming import job_name
from tests.kubeapi.server import FakeKubeAPI
from tests.kubernetes.conftest import eventually, no_validation_errors, serve_env
from tests.service.conftest import EventSink, Serve, make_event, write_config

pytestmark = pytest.mark.slow

EVENT_ID = "4b1e6a1c-5f2d-4c1e-9a77-0d2c9e3f1a10"

CONFIG = """\
apiVersion: v2
actions:
  - name: "Test"
    events:
      - name: "sh.keptn.event.test.triggered"
    tasks:
      - name: "Greet"
        image: "alpine:3.20"
        files: ["hello.txt"]
        cmd: ["sh", "-c", "cat /keptn/hello.txt"]
"""


async def test_serve_runs_a_task_as_a_job_and_reports_it(
    tmp_path: Path, kube_api: FakeKubeAPI, kube_config_file: Path, sink: EventSink
) -> None:
    write_config(tmp_path, CONFIG)
    (tmp_path / "resources" / "shop" / "dev" / "cart" / "hello.txt").write_text("hello from a file\n")
    serve = Serve(
        tmp_path,
        sink.url,
        serve_env(kube_config_file, INIT_CONTAINER_IMAGE="ghcr.io/job-executor/job-executor:e2e"),
    )
    try:
        await serve.start()
        assert kube_api.watching("jobs") == 1  # the shared watch is up before the service is ready
        status, _ = await serve.post(make_event(event_id=EVENT_ID))
        assert status == 202
        await sink.wait_for(".started")
        (job,) = await eventually(lambda: kube_api.objects("jobs", "jobs"), timeout=10, what="the Job")
        name = job["metadata"]["name"]
        assert name == job_name(EVENT_ID, "tests", 0, 1)
        configmap = kube_api.get("configmaps", "jobs", name)
        assert configmap is not None
        await eventually(lambda: kube_api.get("configmaps", "jobs", name)["metadata"].get("ownerReferences"))
        kube_api.set_job_running("jobs", name)
        kube_api.set_job_succeeded("jobs", name, log="hello from a file\n")
        (finished,) = await sink.wait_for(".finished")
        data = finished["data"]
        assert (data["status"], data["result"]) == ("succeeded", "pass")
        assert "Task 'Greet' finished successfully!" in data["message"]
        assert "hello from a file" in data["message"]
        no_validation_errors(kube_api)
    finally:
        await serve.stop()
    assert serve.proc is not None and serve.proc.returncode == 0


async def test_an_api_outage_delays_the_task_but_does_not_fail_it(
    tmp_path: Path, kube_api: FakeKubeAPI, kube_config_file: Path, sink: EventSink
) -> None:
    write_config(tmp_path, CONFIG)
    (tmp_path / "resources" / "shop" / "dev" / "cart" / "hello.txt").write_text("hello\n")
    serve = Serve(tmp_path, sink.url, serve_env(kube_config_file))
    try:
        await serve.start()
        # longer than one call's retries: the create fails for good this time round
        kube_api.fail_next(8, 503, method="POST", path_contains="/jobs")
        await serve.post(make_event(event_id="5d7e0c1a-2b3c-4d5e-8f90-a1b2c3d4e5f6"))
        (job,) = await eventually(
            lambda: kube_api.objects("jobs", "jobs"), timeout=20, what="the Job, created on a retry"
        )
        kube_api.set_job_succeeded("jobs", job["metadata"]["name"], log="made it\n")
        (finished,) = await sink.wait_for(".finished", timeout=20)
        assert finished["data"]["status"] == "succeeded", finished["data"]["message"]
        assert "trying again in" in serve.log.read_text()
        no_validation_errors(kube_api)
    finally:
        await serve.stop()


async def test_the_log_of_a_running_job_is_followed_over_the_read_api(
    tmp_path: Path, kube_api: FakeKubeAPI, kube_config_file: Path, sink: EventSink
) -> None:
    write_config(tmp_path, CONFIG)
    (tmp_path / "resources" / "shop" / "dev" / "cart" / "hello.txt").write_text("hello\n")
    serve = Serve(tmp_path, sink.url, serve_env(kube_config_file))
    try:
        await serve.start()
        await serve.post(make_event(event_id=EVENT_ID))
        (job,) = await eventually(lambda: kube_api.objects("jobs", "jobs"), timeout=10, what="the Job")
        name = job["metadata"]["name"]
        kube_api.set_job_running("jobs", name)
        pod = kube_api.job_pod("jobs", name)
        assert pod is not None
        kube_api.set_pod_log("jobs", pod["metadata"]["name"], name, "compiling\n")
        async with aiohttp.ClientSession() as client:
            runs = await eventually_json(client, serve.url + "api/v1/runs")
            logs = f"{serve.url}api/v1/runs/{runs['runs'][0]['key']}/tasks/Test/Greet/logs"

            async def running_log() -> str:
                async with client.get(logs) as response:
                    assert response.status == 200
                    return await response.text()

            deadline = asyncio.get_running_loop().time() + 10
            while (text := await running_log()) != "compiling\n":
                assert asyncio.get_running_loop().time() < deadline, f"live log never came: {text!r}"
                await asyncio.sleep(0.05)
            async with client.get(logs + "?follow=1") as response:
                first = await response.content.readline()
                assert first == b"compiling\n"  # streamed while the Job still runs
                kube_api.set_job_succeeded("jobs", name, log="compiling\nlinked\n")
                rest = await asyncio.wait_for(response.content.read(), 20)
            assert rest == b"linked\n"  # the kept excerpt, beyond what was already streamed
        (finished,) = await sink.wait_for(".finished")
        assert finished["data"]["status"] == "succeeded"
    finally:
        await serve.stop()


async def eventually_json(client: aiohttp.ClientSession, url: str) -> dict[str, object]:
    for _ in range(200):
        async with client.get(url) as response:
            body = await response.json()
        if body["runs"]:
            return dict(body)
        await asyncio.sleep(0.05)
    raise AssertionError(f"no run listed at {url}")
