"""The fake API server, exercised through the real kubernetes_asyncio client."""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from kubernetes_asyncio import client, watch
from kubernetes_asyncio.client import ApiClient, ApiException, Configuration

from tests.kubeapi.server import FakeKubeAPI
from tests.kubeapi.validation import schema_error

pytest_plugins = ["tests.kubeapi.fixtures"]

NS = "default"
REPO = Path(__file__).resolve().parents[2]
KubeAPIFactory = Callable[..., Awaitable[FakeKubeAPI]]


def job_manifest(name: str, labels: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": labels or {"app": "demo"}},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "initContainers": [{"name": "init", "image": "busybox:1.36"}],
                    "containers": [{"name": "main", "image": "alpine:3.20", "args": ["echo", "hi"]}],
                }
            },
            **spec,
        },
    }


async def wait_until(predicate: Callable[[], bool], timeout: float = 3.0) -> None:
    async with asyncio.timeout(timeout):
        while True:
            if predicate():
                return
            await asyncio.sleep(0.005)


async def backlog(api: FakeKubeAPI, func: Any, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
    """The events a new watch gets before any further change (then the test drops it)."""
    events: list[dict[str, Any]] = []

    async def consume() -> None:
        async with watch.Watch() as w:
            async for event in w.stream(func, *args, timeout_seconds=30, **kwargs):
                events.append(event)

    before = api.open_watches
    task = asyncio.create_task(consume())
    await wait_until(lambda: api.open_watches > before)
    api.drop_watches()  # queued behind the backlog: the stream ends right after it
    await asyncio.wait_for(task, 3)
    return events


def is_complete(job: client.V1Job) -> bool:
    return any(c.type in ("Complete", "Failed") and c.status == "True" for c in (job.status.conditions or []))


async def test_create_get_and_list_by_label_selector(
    kube_api: FakeKubeAPI, kube_api_client: ApiClient
) -> None:
    batch = client.BatchV1Api(kube_api_client)
    first = await batch.create_namespaced_job(NS, job_manifest("first", {"app": "demo", "tier": "a"}))
    await batch.create_namespaced_job(NS, job_manifest("second", {"app": "other"}))
    await batch.create_namespaced_job("elsewhere", job_manifest("third", {"app": "demo"}))

    assert first.metadata.uid and first.metadata.creation_timestamp
    assert int(first.metadata.resource_version) == kube_api.resource_version - 2
    # What the API server defaults: generated selector, pod labels, backoff and policies.
    assert first.spec.selector.match_labels == {"batch.kubernetes.io/controller-uid": first.metadata.uid}
    assert first.spec.template.metadata.labels["job-name"] == "first"
    assert first.spec.template.metadata.labels["batch.kubernetes.io/job-name"] == "first"
    assert first.spec.template.spec.containers[0].image_pull_policy == "IfNotPresent"

    got = await batch.read_namespaced_job("first", NS)
    assert got.metadata.uid == first.metadata.uid

    async def names(namespace: str | None = NS, **kwargs: Any) -> list[str]:
        if namespace is None:
            result = await batch.list_job_for_all_namespaces(**kwargs)
        else:
            result = await batch.list_namespaced_job(namespace, **kwargs)
        assert result.kind == "JobList"
        assert result.metadata.resource_version == str(kube_api.resource_version)
        return [job.metadata.name for job in result.items]

    assert await names() == ["first", "second"]
    assert await names(label_selector="app=demo") == ["first"]
    assert await names(label_selector="app==demo,tier") == ["first"]
    assert await names(label_selector="app!=demo") == ["second"]
    assert await names(label_selector="!tier") == ["second"]
    assert await names(label_selector="app in (demo, other)") == ["first", "second"]
    assert await names(label_selector="app notin (demo)") == ["second"]
    assert await names(field_selector="metadata.name=second") == ["second"]
    assert await names(None, label_selector="app=demo") == ["first", "third"]

    with pytest.raises(ApiException) as bad:
        await batch.list_namespaced_job(NS, label_selector="app in (demo")
    assert bad.value.status == 400
    with pytest.raises(ApiException) as unsupported:
        await batch.list_namespaced_job(NS, field_selector="spec.parallelism=1")
    assert unsupported.value.status == 400
    assert "field label not supported" in json.loads(unsupported.value.body)["message"]


async def test_missing_object_is_404_status(kube_api_client: ApiClient) -> None:
    with pytest.raises(ApiException) as e:
        await client.BatchV1Api(kube_api_client).read_namespaced_job("nope", NS)
    assert e.value.status == 404
    body = json.loads(e.value.body)
    assert body["kind"] == "Status" and body["status"] == "Failure"
    assert body["reason"] == "NotFound"
    assert body["message"] == 'jobs.batch "nope" not found'


async def test_duplicate_create_is_409_already_exists(kube_api_client: ApiClient) -> None:
    batch = client.BatchV1Api(kube_api_client)
    await batch.create_namespaced_job(NS, job_manifest("twice"))
    with pytest.raises(ApiException) as e:
        await batch.create_namespaced_job(NS, job_manifest("twice"))
    assert e.value.status == 409
    body = json.loads(e.value.body)
    assert (body["reason"], body["code"]) == ("AlreadyExists", 409)
    assert body["details"] == {"name": "twice", "group": "batch", "kind": "jobs"}


def _mutate(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def apply(manifest: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = manifest
        for key in parents:
            target = target[int(key)] if isinstance(target, list) else target[key]
        if value is None:
            del target[last]
        else:
            target[last] = value

    return apply


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (_mutate("metadata.name", "Bad_Name"), 'metadata.name: Invalid value: "Bad_Name"'),
        (_mutate("metadata.name", "a" * 64), "must be no more than 63 characters"),
        (_mutate("spec.bogus", 1), "'bogus' was unexpected"),
        (_mutate("spec.backoffLimit", "zero"), "spec.backoffLimit"),
        (_mutate("metadata.labels", {"app": "has space"}), "metadata.labels: Invalid value"),
        (_mutate("spec.template.spec.restartPolicy", None), "restartPolicy: Required value"),
        (_mutate("spec.template.spec.restartPolicy", "Always"), 'Unsupported value: "Always"'),
        (_mutate("spec.template.spec.containers.0.name", "Main"), "containers[0].name"),
        (_mutate("spec.template.spec.containers.0.image", ""), "containers[0].image: Required value"),
        (
            _mutate(
                "spec.template.spec.containers.0.resources",
                {"requests": {"cpu": "2"}, "limits": {"cpu": "500m"}},
            ),
            "must be less than or equal to cpu limit of 500m",
        ),
        (
            _mutate(
                "spec.template.spec.containers.0.volumeMounts", [{"name": "files", "mountPath": "/keptn"}]
            ),
            'volumeMounts[0].name: Not found: "files"',
        ),
    ],
)
async def test_invalid_job_is_422_and_recorded(
    kube_api: FakeKubeAPI,
    kube_api_client: ApiClient,
    mutate: Callable[[dict[str, Any]], None],
    expected: str,
) -> None:
    manifest = job_manifest("valid-name")
    mutate(manifest)
    with pytest.raises(ApiException) as e:
        await client.BatchV1Api(kube_api_client).create_namespaced_job(NS, manifest)
    assert e.value.status == 422
    body = json.loads(e.value.body)
    assert body["reason"] == "Invalid" and body["details"]["causes"]
    assert "is invalid: " in body["message"] and expected in body["message"]
    assert [f.message for f in kube_api.validation_errors] == [body["message"]]
    assert kube_api.objects("jobs") == []
    kube_api.validation_errors.clear()


def test_cached_validation_agrees_with_kubernetes_validate() -> None:
    good = job_manifest("ok")
    unknown = job_manifest("unknown", bogus=True)
    mistyped = copy.deepcopy(good)
    mistyped["spec"]["template"]["spec"]["containers"][0]["args"] = "echo hi"
    for manifest in (good, unknown, mistyped):
        assert schema_error(manifest, "full") == schema_error(manifest, "cached")
    assert schema_error(good, "full") is None
    assert schema_error(unknown, "full") is not None


async def test_watch_sees_added_then_modified_until_complete(
    kube_api: FakeKubeAPI, kube_api_client: ApiClient
) -> None:
    batch = client.BatchV1Api(kube_api_client)
    seen: list[tuple[str, client.V1Job]] = []

    async def consume() -> None:
        async with watch.Watch() as w:
            stream = w.stream(batch.list_namespaced_job, NS, label_selector="app=demo", timeout_seconds=10)
            async for event in stream:
                seen.append((event["type"], event["object"]))
                if is_complete(event["object"]):
                    return

    task = asyncio.create_task(consume())
    await wait_until(lambda: kube_api.open_watches == 1)
    await batch.create_namespaced_job(NS, job_manifest("watched"))
    await batch.create_namespaced_job(NS, job_manifest("unwatched", {"app": "other"}))
    kube_api.set_job_running(NS, "watched")
    kube_api.set_job_succeeded(NS, "watched", log="done\n")
    await asyncio.wait_for(task, 3)

    assert [kind for kind, _ in seen] == ["ADDED", "MODIFIED", "MODIFIED", "MODIFIED"]
    assert {job.metadata.name for _, job in seen} == {"watched"}
    running, interim, final = (job.status for _, job in seen[1:])
    assert running.active == 1 and running.start_time is not None
    assert [c.type for c in interim.conditions] == ["SuccessCriteriaMet"]
    assert [c.type for c in final.conditions] == ["SuccessCriteriaMet", "Complete"]
    assert final.succeeded == 1 and final.completion_time is not None
    versions = [int(job.metadata.resource_version) for _, job in seen]
    assert versions == sorted(versions)
    await wait_until(lambda: kube_api.open_watches == 0)


async def test_watch_replays_history_after_resource_version(
    kube_api: FakeKubeAPI, kube_api_client: ApiClient
) -> None:
    batch = client.BatchV1Api(kube_api_client)
    await batch.create_namespaced_job(NS, job_manifest("early"))
    listed = await batch.list_namespaced_job(NS)
    kube_api.set_job_failed(NS, "early", log="boom")
    await batch.create_namespaced_job(NS, job_manifest("late"))

    rv = listed.metadata.resource_version
    events = await backlog(kube_api, batch.list_namespaced_job, NS, resource_version=rv)
    names = [(e["type"], e["object"].metadata.name) for e in events]
    assert names == [("MODIFIED", "early"), ("MODIFIED", "early"), ("ADDED", "late")]

    # Without a resourceVersion: synthetic ADDED events for what exists, then live changes.
    events = await backlog(kube_api, batch.list_namespaced_job, NS)
    assert [(e["type"], e["object"].metadata.name) for e in events] == [("ADDED", "early"), ("ADDED", "late")]


async def test_watch_from_compacted_resource_version_raises_410(
    kube_api: FakeKubeAPI, kube_api_client: ApiClient
) -> None:
    batch = client.BatchV1Api(kube_api_client)
    await batch.create_namespaced_job(NS, job_manifest("old"))
    old_rv = (await batch.list_namespaced_job(NS)).metadata.resource_version
    kube_api.set_job_running(NS, "old")
    kube_api.compact()

    # With timeout_seconds, Watch raises the ERROR event's Status as ApiException(410) at once.
    with pytest.raises(ApiException) as e:
        async with watch.Watch() as w:
            async for _ in w.stream(
                batch.list_namespaced_job, NS, resource_version=old_rv, timeout_seconds=5
            ):
                pass
    assert e.value.status == 410
    assert e.value.reason.startswith("Expired: too old resource version")
    assert len(kube_api.requests("GET", "/jobs", watch=True)) == 1

    # Watching forever (no timeout_seconds), it retries once with the same version, then raises.
    with pytest.raises(ApiException) as e:
        async with watch.Watch() as w:
            async for _ in w.stream(batch.list_namespaced_job, NS, resource_version=old_rv):
                pass
    assert e.value.status == 410
    assert len(kube_api.requests("GET", "/jobs", watch=True)) == 3

    # From the current version it works again.
    current = (await batch.list_namespaced_job(NS)).metadata.resource_version
    assert await backlog(kube_api, batch.list_namespaced_job, NS, resource_version=current) == []


async def test_list_pagination_and_expired_continue_token(
    kube_api: FakeKubeAPI, kube_api_client: ApiClient
) -> None:
    batch = client.BatchV1Api(kube_api_client)
    for i in range(5):
        await batch.create_namespaced_job(NS, job_manifest(f"job-{i}"))
    page = await batch.list_namespaced_job(NS, limit=2)
    assert [j.metadata.name for j in page.items] == ["job-0", "job-1"]
    assert page.metadata.remaining_item_count == 3
    # The next page is consistent with the first one, even after a change.
    await batch.delete_namespaced_job("job-2", NS, propagation_policy="Background")
    rest = await batch.list_namespaced_job(NS, limit=10, _continue=page.metadata._continue)
    assert [j.metadata.name for j in rest.items] == ["job-2", "job-3", "job-4"]
    assert rest.metadata._continue is None

    kube_api.compact()
    with pytest.raises(ApiException) as e:
        await batch.list_namespaced_job(NS, limit=10, _continue=page.metadata._continue)
    assert e.value.status == 410
    assert json.loads(e.value.body)["reason"] == "Expired"
    with pytest.raises(ApiException) as e:
        await batch.list_namespaced_job(
            NS, resource_version=page.metadata.resource_version, resource_version_match="Exact"
        )
    assert e.value.status == 410


async def test_failed_job_pod_logs_and_events(kube_api: FakeKubeAPI, kube_api_client: ApiClient) -> None:
    batch, core = client.BatchV1Api(kube_api_client), client.CoreV1Api(kube_api_client)
    await batch.create_namespaced_job(NS, job_manifest("broken"))
    kube_api.set_job_failed(
        NS,
        "broken",
        log="line 1\nline 2\n",
        init_log="staged 3 files\n",
        exit_code=2,
        events=[
            "Back-off restarting failed container",
            {"reason": "Pulled", "type": "Normal", "message": "ok"},
        ],
    )
    job = await batch.read_namespaced_job("broken", NS)
    failed = job.status.conditions[-1]
    assert (failed.type, failed.status, failed.reason) == ("Failed", "True", "BackoffLimitExceeded")
    assert failed.message == "Job has reached the specified backoff limit"
    assert job.status.failed == 1 and job.status.completion_time is None

    pods = await core.list_namespaced_pod(NS, label_selector="job-name=broken")
    (pod,) = pods.items
    assert pod.metadata.labels["controller-uid"] == job.metadata.uid
    assert pod.metadata.owner_references[0].uid == job.metadata.uid
    assert pod.status.phase == "Failed"
    assert pod.status.container_statuses[0].state.terminated.exit_code == 2
    assert pod.status.init_container_statuses[0].state.terminated.exit_code == 0
    name = pod.metadata.name
    assert await core.read_namespaced_pod_log(name, NS, container="main") == "line 1\nline 2\n"
    assert await core.read_namespaced_pod_log(name, NS, container="init") == "staged 3 files\n"
    assert await core.read_namespaced_pod_log(name, NS, container="main", tail_lines=1) == "line 2\n"
    with pytest.raises(ApiException) as e:
        await core.read_namespaced_pod_log(name, NS, container="sidecar")
    assert e.value.status == 400

    pod_events = await core.list_namespaced_event(NS, field_selector=f"involvedObject.name={name}")
    assert [(e.type, e.reason, e.message) for e in pod_events.items] == [
        ("Warning", "BackoffLimitExceeded", "Back-off restarting failed container"),
        ("Normal", "Pulled", "ok"),
    ]
    job_events = await core.list_namespaced_event(
        NS, field_selector="involvedObject.name=broken,involvedObject.kind=Job"
    )
    assert [e.reason for e in job_events.items] == ["SuccessfulCreate", "BackoffLimitExceeded"]


async def test_log_of_a_container_that_never_started_is_400(
    kube_api: FakeKubeAPI, kube_api_client: ApiClient
) -> None:
    await client.BatchV1Api(kube_api_client).create_namespaced_job(NS, job_manifest("no-init"))
    kube_api.set_job_failed(NS, "no-init", init_log="cannot fetch files\n", init_exit_code=1)
    pod = kube_api.job_pod(NS, "no-init")
    assert pod is not None
    core = client.CoreV1Api(kube_api_client)
    name = pod["metadata"]["name"]
    assert await core.read_namespaced_pod_log(name, NS, container="init") == "cannot fetch files\n"
    with pytest.raises(ApiException) as e:
        await core.read_namespaced_pod_log(name, NS, container="main")
    assert e.value.status == 400
    assert "is waiting to start: PodInitializing" in json.loads(e.value.body)["message"]


async def test_injected_errors_reach_the_client(kube_api: FakeKubeAPI, kube_api_client: ApiClient) -> None:
    batch = client.BatchV1Api(kube_api_client)
    await batch.create_namespaced_job(NS, job_manifest("flaky"))
    rule = kube_api.fail_next(2, 500, method="GET", path_contains="/jobs/flaky")
    for _ in range(2):
        with pytest.raises(ApiException) as e:
            await batch.read_namespaced_job("flaky", NS)
        assert e.value.status == 500
        assert json.loads(e.value.body)["reason"] == "InternalError"
    assert rule.remaining == 0
    assert (await batch.read_namespaced_job("flaky", NS)).metadata.name == "flaky"
    assert [r.status for r in kube_api.requests("GET", "/jobs/flaky")] == [500, 500, 200]

    kube_api.fail_next(1, 429, method="POST")
    with pytest.raises(ApiException) as e:
        await batch.create_namespaced_job(NS, job_manifest("throttled"))
    assert e.value.status == 429 and e.value.headers["Retry-After"] == "1"

    kube_api.fail_next(1, 503, watch=True)
    with pytest.raises(ApiException) as e:
        async with watch.Watch() as w:
            async for _ in w.stream(batch.list_namespaced_job, NS, timeout_seconds=1):
                pass
    assert e.value.status == 503


async def test_drop_watches_ends_the_stream_and_the_client_resumes(
    kube_api: FakeKubeAPI, kube_api_client: ApiClient
) -> None:
    batch = client.BatchV1Api(kube_api_client)

    # With timeout_seconds the stream simply ends.
    async def bounded() -> list[str]:
        async with watch.Watch() as w:
            return [e["type"] async for e in w.stream(batch.list_namespaced_job, NS, timeout_seconds=30)]

    task = asyncio.create_task(bounded())
    await wait_until(lambda: kube_api.open_watches == 1)
    assert kube_api.drop_watches() == 1
    assert await asyncio.wait_for(task, 2) == []

    # Watching forever, kubernetes_asyncio reconnects from the last resourceVersion it saw.
    names: list[str] = []

    async def forever() -> None:
        async with watch.Watch() as w:
            async for event in w.stream(batch.list_namespaced_job, NS):
                names.append(event["object"].metadata.name)
                if len(names) == 2:
                    return

    task = asyncio.create_task(forever())
    await wait_until(lambda: kube_api.open_watches == 1)
    created = await batch.create_namespaced_job(NS, job_manifest("before-drop"))
    await wait_until(lambda: names == ["before-drop"])
    kube_api.drop_watches()
    await wait_until(lambda: len(kube_api.requests("GET", "/jobs", watch=True)) == 3)
    await batch.create_namespaced_job(NS, job_manifest("after-drop"))
    await asyncio.wait_for(task, 2)
    assert names == ["before-drop", "after-drop"]
    resumed = kube_api.requests("GET", "/jobs", watch=True)[-1]
    assert resumed.query["resourceVersion"] == created.metadata.resource_version


async def test_aborted_watch_connection_is_a_client_error(
    kube_api: FakeKubeAPI, kube_api_client: ApiClient
) -> None:
    batch = client.BatchV1Api(kube_api_client)

    async def bounded() -> None:
        async with watch.Watch() as w:
            async for _ in w.stream(batch.list_namespaced_job, NS, timeout_seconds=30):
                pass

    task = asyncio.create_task(bounded())
    await wait_until(lambda: kube_api.open_watches == 1)
    kube_api.drop_watches(abort=True)
    with pytest.raises(aiohttp.ClientError):
        await asyncio.wait_for(task, 2)


async def test_bookmarks_and_selector_transitions(kube_api: FakeKubeAPI, kube_api_client: ApiClient) -> None:
    batch = client.BatchV1Api(kube_api_client)
    await batch.create_namespaced_job(NS, job_manifest("moving"))
    start = (await batch.list_namespaced_job(NS)).metadata.resource_version
    seen: list[tuple[str, str]] = []
    async with watch.Watch() as w:
        stream = w.stream(
            batch.list_namespaced_job,
            NS,
            label_selector="app=demo",
            resource_version=start,
            allow_watch_bookmarks=True,
            timeout_seconds=10,
        )
        await batch.patch_namespaced_job("moving", NS, {"metadata": {"labels": {"app": "gone"}}})
        await batch.patch_namespaced_job("moving", NS, {"metadata": {"labels": {"app": "demo"}}})
        async for event in stream:
            seen.append((event["type"], event["raw_object"]["metadata"]["resourceVersion"]))
            if len(seen) == 2:
                kube_api.send_bookmarks()
            if event["type"] == "BOOKMARK":
                break
        assert w.resource_version == str(kube_api.resource_version)
    assert [kind for kind, _ in seen] == ["DELETED", "ADDED", "BOOKMARK"]


async def test_patch_and_update_rules(kube_api: FakeKubeAPI, kube_api_client: ApiClient) -> None:
    batch = client.BatchV1Api(kube_api_client)
    job = await batch.create_namespaced_job(NS, job_manifest("patched"))
    patched = await batch.patch_namespaced_job("patched", NS, {"metadata": {"annotations": {"note": "x"}}})
    assert patched.metadata.annotations == {"note": "x"}
    assert int(patched.metadata.resource_version) > int(job.metadata.resource_version)
    with pytest.raises(ApiException) as e:
        await batch.patch_namespaced_job(
            "patched",
            NS,
            {"spec": {"template": {"spec": {"containers": [{"name": "main", "image": "evil"}]}}}},
        )
    assert e.value.status == 422 and "field is immutable" in json.loads(e.value.body)["message"]
    stale = client.V1Job(
        metadata=client.V1ObjectMeta(name="patched", resource_version=job.metadata.resource_version)
    )
    stale.spec = job.spec
    with pytest.raises(ApiException) as e:
        await batch.replace_namespaced_job("patched", NS, stale)
    assert e.value.status == 409
    assert "the object has been modified" in json.loads(e.value.body)["message"]
    kube_api.validation_errors.clear()


@pytest.mark.parametrize(
    ("policy", "pods_left", "job_events"),
    [
        ("Background", 0, ["DELETED"]),
        ("Foreground", 0, ["MODIFIED", "DELETED"]),
        (None, 1, ["MODIFIED", "DELETED"]),  # batch/v1 default: orphan the pods
    ],
)
async def test_delete_propagation(
    kube_api: FakeKubeAPI,
    kube_api_client: ApiClient,
    policy: str | None,
    pods_left: int,
    job_events: list[str],
) -> None:
    batch = client.BatchV1Api(kube_api_client)
    await batch.create_namespaced_job(NS, job_manifest("doomed"))
    kube_api.set_job_succeeded(NS, "doomed")
    rv = str(kube_api.resource_version)
    await batch.delete_namespaced_job("doomed", NS, propagation_policy=policy)
    await wait_until(lambda: kube_api.get("jobs", NS, "doomed") is None)
    await asyncio.sleep(0.01)
    pods = kube_api.objects("pods", NS)
    assert len(pods) == pods_left
    if pods:
        assert "ownerReferences" not in pods[0]["metadata"]
    events = await backlog(kube_api, batch.list_namespaced_job, NS, resource_version=rv)
    assert [e["type"] for e in events] == job_events


async def test_secrets(kube_api_client: ApiClient) -> None:
    core = client.CoreV1Api(kube_api_client)
    secret = client.V1Secret(metadata=client.V1ObjectMeta(name="token"), string_data={"token": "s3cret"})
    created = await core.create_namespaced_secret(NS, secret)
    assert created.type == "Opaque" and created.string_data is None
    read = await core.read_namespaced_secret("token", NS)
    assert base64.b64decode(read.data["token"]) == b"s3cret"


@pytest.mark.parametrize(
    "kube_api", [{"auto_complete": (0.02, "failed"), "validation": "cached"}], indirect=True
)
async def test_auto_complete(kube_api: FakeKubeAPI, kube_api_client: ApiClient) -> None:
    batch = client.BatchV1Api(kube_api_client)
    await batch.create_namespaced_job(NS, job_manifest("auto"))
    finished: client.V1Job | None = None
    async with watch.Watch() as w:
        async for event in w.stream(batch.list_namespaced_job, NS, timeout_seconds=5):
            if is_complete(event["object"]):
                finished = event["object"]
                break
    # Outside the loop: a watch that timed out without the Job finishing must fail the test.
    assert finished is not None, "the auto-completed Job did not finish within the watch's 5 s"
    assert finished.status.conditions[-1].type == "Failed"
    assert kube_api.job_pod(NS, "auto") is not None


async def test_request_log_and_token(kube_api_factory: KubeAPIFactory, tmp_path: Path) -> None:
    api = await kube_api_factory(token="s3cret")
    configuration = Configuration()
    from kubernetes_asyncio import config

    await config.load_kube_config(
        config_file=str(api.write_kubeconfig(tmp_path / "kc")), client_configuration=configuration
    )
    async with ApiClient(configuration) as api_client:
        batch = client.BatchV1Api(api_client)
        await batch.create_namespaced_job(NS, job_manifest("counted"))
        for _ in range(3):
            await batch.read_namespaced_job("counted", NS)
    assert len(api.requests("GET", "/jobs/counted")) == 3
    assert [(r.method, r.status) for r in api.requests("POST")] == [("POST", 201)]
    async with aiohttp.ClientSession() as session, session.get(f"{api.url}/apis/batch/v1/jobs") as response:
        assert response.status == 401


async def test_many_jobs_stay_cheap(kube_api_factory: KubeAPIFactory) -> None:
    api = await kube_api_factory(validation="cached")
    started = time.perf_counter()
    for i in range(1000):
        api.create("jobs", job_manifest(f"job-{i}", {"app": "bulk", "n": str(i)}), NS)
    for i in range(0, 1000, 50):
        api.set_job_succeeded(NS, f"job-{i}")
    matched = api.objects("pods", NS, label_selector="job-name=job-500")
    assert len(matched) == 1
    assert time.perf_counter() - started < 5


async def test_command_line_server(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.kubeapi.server",
        "--port",
        "0",
        "--auto-complete-delay",
        "0.01,0.02",
        "--kubeconfig",
        str(kubeconfig),
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        url = (await asyncio.wait_for(process.stdout.readline(), 10)).decode().strip()
        assert url.startswith("http://127.0.0.1:")
        from kubernetes_asyncio import config

        configuration = Configuration()
        await config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
        async with ApiClient(configuration) as api_client:
            batch = client.BatchV1Api(api_client)
            await batch.create_namespaced_job(NS, job_manifest("remote"))
            async with watch.Watch() as w:
                async for event in w.stream(batch.list_namespaced_job, NS, timeout_seconds=5):
                    if is_complete(event["object"]):
                        break
        async with aiohttp.ClientSession() as session, session.get(f"{url}/_fake/stats") as response:
            stats = await response.json()
        assert stats["objects"]["jobs"] == 1 and stats["serverErrors"] == []
    finally:
        process.terminate()
        assert await asyncio.wait_for(process.wait(), 5) == 0


async def test_discovery_and_version(kube_api_client: ApiClient) -> None:
    version = await client.VersionApi(kube_api_client).get_code()
    assert (version.major, version.minor) == ("1", "37")
    groups = await client.ApisApi(kube_api_client).get_api_versions()
    assert [g.name for g in groups.groups] == ["batch", "coordination.k8s.io"]
    resources = await client.BatchV1Api(kube_api_client).get_api_resources()
    assert "jobs" in [r.name for r in resources.resources]


async def test_periodic_bookmarks_timeout_and_history_limit(
    kube_api_factory: KubeAPIFactory, tmp_path: Path
) -> None:
    api = await kube_api_factory(bookmark_interval=0.2, history_limit=10)
    configuration = Configuration(
        host=api.url, api_key={"BearerToken": api.token}, api_key_prefix={"BearerToken": "Bearer"}
    )
    async with ApiClient(configuration) as api_client:
        batch = client.BatchV1Api(api_client)
        first = await batch.create_namespaced_job(NS, job_manifest("first"))
        started = time.monotonic()
        async with watch.Watch() as w:
            stream = w.stream(
                batch.list_namespaced_job,
                NS,
                resource_version=first.metadata.resource_version,
                allow_watch_bookmarks=True,
                timeout_seconds=1,
            )
            kinds = [event["type"] async for event in stream]
        assert 0.9 < time.monotonic() - started < 2  # timeoutSeconds ends the stream cleanly
        assert kinds.count("BOOKMARK") >= 3 and set(kinds) == {"BOOKMARK"}
        for i in range(10):  # more changes than the history keeps: the oldest are compacted
            api.create("configmaps", {"metadata": {"name": f"cm-{i}"}, "data": {"i": str(i)}}, NS)
        with pytest.raises(ApiException) as e:
            async with watch.Watch() as w:
                async for _ in w.stream(
                    batch.list_namespaced_job,
                    NS,
                    resource_version=first.metadata.resource_version,
                    timeout_seconds=5,
                ):
                    pass
        assert e.value.status == 410


async def test_pod_log_that_looks_like_json_needs_the_raw_response(
    kube_api: FakeKubeAPI, kube_api_client: ApiClient
) -> None:
    """A kubernetes_asyncio quirk the backend must avoid: a preloaded log that parses as JSON is
    json-decoded and turned back into a string with str() (Python repr, trailing newline lost)."""
    await client.BatchV1Api(kube_api_client).create_namespaced_job(NS, job_manifest("result"))
    kube_api.set_job_succeeded(NS, "result", log='{"result": "pass"}\n')
    pod = kube_api.job_pod(NS, "result")
    assert pod is not None
    core = client.CoreV1Api(kube_api_client)
    name = pod["metadata"]["name"]
    assert await core.read_namespaced_pod_log(name, NS, container="main") == "{'result': 'pass'}"
    raw = await core.read_namespaced_pod_log(name, NS, container="main", _preload_content=False)
    assert await raw.text() == '{"result": "pass"}\n'


async def test_an_outage_refuses_connections_then_serves_what_it_kept(
    kube_api_factory: KubeAPIFactory,
) -> None:
    api = await kube_api_factory(auto_complete=(0.2, "succeeded"))
    async with aiohttp.ClientSession(headers={"Authorization": "Bearer fake-token"}) as session:
        jobs = f"{api.url}/apis/batch/v1/namespaces/{NS}/jobs"
        async with session.post(jobs, json=job_manifest("during")) as response:
            assert response.status == 201
        async with session.post(f"{api.url}/_fake/outage", json={"seconds": 1.0}) as response:
            assert response.status == 200
        refused = False
        for _ in range(100):  # the outage begins just after its answer
            try:
                async with session.get(f"{api.url}/version"):
                    await asyncio.sleep(0.01)
            except aiohttp.ClientConnectionError:
                refused = True
                break
        assert refused, "the server kept answering"
        for _ in range(300):  # back on the same port, with the Job, which ended meanwhile
            try:
                async with session.get(f"{jobs}/during") as response:
                    job = await response.json()
                    break
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.01)
        else:
            raise AssertionError("the server did not come back")
    assert job["status"]["conditions"][-1]["type"] == "Complete"
