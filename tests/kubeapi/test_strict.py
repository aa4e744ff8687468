"""The fake refuses what kube-apiserver refuses, and its Job controller does only what a cluster does."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client import ApiClient, ApiException, Configuration

from tests.kubeapi.access import READ, Role
from tests.kubeapi.server import FakeKubeAPI
from tests.kubeapi.test_server import KubeAPIFactory, job_manifest

pytest_plugins = ["tests.kubeapi.fixtures"]

NS = "default"


def body(e: pytest.ExceptionInfo[ApiException]) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(e.value.body)
    return data


async def refused(api_client: ApiClient, manifest: dict[str, Any], namespace: str = NS) -> dict[str, Any]:
    with pytest.raises(ApiException) as e:
        await client.BatchV1Api(api_client).create_namespaced_job(namespace, manifest)
    return body(e)


def container(manifest: dict[str, Any]) -> dict[str, Any]:
    c: dict[str, Any] = manifest["spec"]["template"]["spec"]["containers"][0]
    return c


# ---------------------------------------------------------------------------------------------
# Item 13: a pod that cannot start never fails its Job


@pytest.mark.parametrize(
    "reason", ["ErrImagePull", "ImagePullBackOff", "InvalidImageName", "CreateContainerConfigError"]
)
async def test_a_pod_that_cannot_start_leaves_its_job_active(kube_api: FakeKubeAPI, reason: str) -> None:
    kube_api.create("jobs", job_manifest("stuck", activeDeadlineSeconds=60), NS)
    pod = kube_api.set_pod_waiting(NS, "stuck", reason)
    waiting = pod["status"]["containerStatuses"][0]["state"]["waiting"]
    assert waiting["reason"] == reason and waiting["message"]
    assert pod["status"]["phase"] == "Pending"
    job = kube_api.get("jobs", NS, "stuck")
    assert job is not None
    assert job["status"]["active"] == 1 and not job["status"].get("conditions")
    (event,) = [e for e in kube_api.objects("events", NS) if e["involvedObject"]["kind"] == "Pod"]
    assert event["type"] == "Warning" and event["source"]["component"] == "kubelet"
    with pytest.raises(ValueError, match="never started"):
        kube_api.set_job_failed(NS, "stuck", exit_code=1)
    with pytest.raises(ValueError, match="never started"):
        kube_api.set_job_succeeded(NS, "stuck")


async def test_an_unschedulable_pod_leaves_its_job_active(kube_api: FakeKubeAPI) -> None:
    kube_api.create("jobs", job_manifest("big"), NS)
    pod = kube_api.set_pod_unschedulable(NS, "big")
    (scheduled,) = pod["status"]["conditions"]
    assert (scheduled["type"], scheduled["status"], scheduled["reason"]) == (
        "PodScheduled",
        "False",
        "Unschedulable",
    )
    assert "nodeName" not in pod["spec"]
    assert [e["reason"] for e in kube_api.objects("events", NS) if e["involvedObject"]["kind"] == "Pod"] == [
        "FailedScheduling"
    ]
    with pytest.raises(ValueError, match="Unschedulable"):
        kube_api.set_job_failed(NS, "big")


async def test_set_job_failed_models_only_what_a_cluster_produces(kube_api: FakeKubeAPI) -> None:
    kube_api.create("jobs", job_manifest("j"), NS)
    with pytest.raises(ValueError, match="exited non-zero"):
        kube_api.set_job_failed(NS, "j", exit_code=0)
    with pytest.raises(ValueError, match="does not fail with reason"):
        kube_api.set_job_failed(NS, "j", reason="ImagePullBackOff")
    with pytest.raises(ValueError, match="no activeDeadlineSeconds"):
        kube_api.set_job_failed(NS, "j", reason="DeadlineExceeded")


# ---------------------------------------------------------------------------------------------
# Item 14: DeadlineExceeded deletes the pod before the Job is Failed


async def test_deadline_exceeded_first_targets_failure_then_deletes_the_pod_then_fails(
    kube_api: FakeKubeAPI,
) -> None:
    kube_api.create("jobs", job_manifest("slow", activeDeadlineSeconds=5), NS)
    kube_api.set_job_running(NS, "slow")
    pod = kube_api.job_pod(NS, "slow")
    assert pod is not None
    pod_name = pod["metadata"]["name"]
    since = kube_api.resource_version
    job = kube_api.set_job_deadline_exceeded(NS, "slow", log="still working\n", finish=False)
    assert [c["type"] for c in job["status"]["conditions"]] == ["FailureTarget"]
    assert job["status"]["conditions"][0]["reason"] == "DeadlineExceeded"
    assert (job["status"]["active"], job["status"]["terminating"]) == (0, 1)
    terminating = kube_api.get("pods", NS, pod_name)
    assert terminating is not None and terminating["metadata"]["deletionTimestamp"]
    # While the pod terminates its log is there: the moment to read it.
    assert kube_api._logs[(NS, pod_name, "main")] == "still working\n"
    job = kube_api.finish_job_termination(NS, "slow")
    assert [c["type"] for c in job["status"]["conditions"]] == ["FailureTarget", "Failed"]
    assert job["status"]["failed"] == 1 and job["status"]["terminating"] == 0
    assert kube_api.get("pods", NS, pod_name) is None
    assert (NS, pod_name, "main") not in kube_api._logs
    steps = [
        (e.plural, e.type, e.obj["metadata"]["name"])
        for e in kube_api._history
        if e.rv > since and e.plural in ("jobs", "pods")
    ]
    assert steps == [
        ("jobs", "MODIFIED", "slow"),  # FailureTarget, terminating 1
        ("pods", "MODIFIED", pod_name),  # deletionTimestamp
        ("pods", "MODIFIED", pod_name),  # the kubelet stopped it
        ("pods", "DELETED", pod_name),
        ("jobs", "MODIFIED", "slow"),  # Failed
    ]


# ---------------------------------------------------------------------------------------------
# status.ready counts what the Job controller counts (issue 18: the pod-start check reads it)


def ready(api: FakeKubeAPI, name: str) -> Any:
    job = api.get("jobs", NS, name)
    assert job is not None
    return (job.get("status") or {}).get("ready")


async def test_ready_counts_an_active_pod_only_once_it_is_ready_and_the_controller_synced(
    kube_api: FakeKubeAPI,
) -> None:
    kube_api.create("jobs", job_manifest("pull"), NS)
    assert ready(kube_api, "pull") is None  # no sync has written a status yet
    kube_api.set_pod_waiting(NS, "pull", "ImagePullBackOff")
    assert ready(kube_api, "pull") == 0  # active, not ready
    pod = kube_api.set_pod_running(NS, "pull")
    assert [c["status"] for c in pod["status"]["conditions"] if c["type"] == "Ready"] == ["True"]
    assert ready(kube_api, "pull") == 0  # the kubelet ran it; the Job controller has not synced
    kube_api.set_job_running(NS, "pull")
    assert ready(kube_api, "pull") == 1
    kube_api.set_job_succeeded(NS, "pull")
    assert ready(kube_api, "pull") == 0  # a Succeeded pod is not active

    kube_api.create("jobs", job_manifest("unplaced"), NS)
    kube_api.set_pod_unschedulable(NS, "unplaced")
    assert ready(kube_api, "unplaced") == 0

    kube_api.create("jobs", job_manifest("late"), NS)
    kube_api.set_pod_running(NS, "late")  # never seen pending by a test: synced once, unready
    assert ready(kube_api, "late") == 0


async def test_ready_drops_when_the_deadline_deletes_a_ready_pod(kube_api: FakeKubeAPI) -> None:
    kube_api.create("jobs", job_manifest("slow", activeDeadlineSeconds=5), NS)
    kube_api.set_job_running(NS, "slow")
    assert ready(kube_api, "slow") == 1
    kube_api.set_job_deadline_exceeded(NS, "slow", finish=False)
    assert ready(kube_api, "slow") == 0  # deleteActivePods: a pod being deleted is not active


def test_ready_pods_counts_active_pods_with_the_ready_condition() -> None:
    from tests.kubeapi.workloads import ready_pods

    def pod(phase: str, is_ready: str, deleting: bool = False) -> dict[str, Any]:
        meta = {"name": "p", "deletionTimestamp": "2026-12-02T00:00:00Z"} if deleting else {"name": "p"}
        return {
            "metadata": meta,
            "status": {"phase": phase, "conditions": [{"type": "Ready", "status": is_ready}]},
        }

    assert ready_pods([pod("Running", "True"), pod("Running", "True")]) == 2
    assert ready_pods([pod("Running", "False")]) == 0  # runs, a probe not passed (not our Jobs)
    assert ready_pods([pod("Running", "True", deleting=True)]) == 0
    assert ready_pods([pod("Failed", "True"), pod("Succeeded", "True")]) == 0
    assert ready_pods([{"metadata": {"name": "p"}, "status": {"phase": "Pending"}}]) == 0


# ---------------------------------------------------------------------------------------------
# Item 15: namespaces and RBAC


async def test_create_into_a_missing_namespace_is_404_namespace_not_found(kube_api_client: ApiClient) -> None:
    error = await refused(kube_api_client, job_manifest("lost"), "nowhere")
    assert (error["code"], error["reason"], error["message"]) == (
        404,
        "NotFound",
        'namespaces "nowhere" not found',
    )
    assert error["details"] == {"name": "nowhere", "kind": "namespaces"}
    listed = await client.BatchV1Api(kube_api_client).list_namespaced_job("nowhere")
    assert listed.items == []  # reads need no namespace, as on a cluster


@pytest.mark.parametrize("kube_api", [{"namespaces": ["declared"]}], indirect=True)
async def test_a_test_declares_its_namespaces(kube_api: FakeKubeAPI, kube_api_client: ApiClient) -> None:
    await client.BatchV1Api(kube_api_client).create_namespaced_job("declared", job_manifest("ok"))
    error = await refused(kube_api_client, job_manifest("no"), "jobs")
    assert error["message"] == 'namespaces "jobs" not found'
    names = [n.metadata.name for n in (await client.CoreV1Api(kube_api_client).list_namespace()).items]
    assert names == ["declared", "default", "kube-node-lease", "kube-public", "kube-system"]


async def test_a_namespace_that_is_not_a_dns_label_cannot_exist(
    kube_api: FakeKubeAPI, kube_api_client: ApiClient
) -> None:
    from tests.kubeapi.resources import ApiError

    with pytest.raises(ApiError) as e:
        kube_api.add_namespace("Team_A")
    assert e.value.code == 422 and "a lowercase RFC 1123 label" in e.value.message
    error = await refused(kube_api_client, job_manifest("x"), "Team_A")
    assert (error["code"], error["reason"]) == (404, "NotFound")


async def narrow_client(api: FakeKubeAPI, tmp_path: Path) -> ApiClient:
    api.add_user(
        "narrow",
        "system:serviceaccount:keptn:job-executor",
        {"jobs": Role.of({"jobs.batch": ("create", *READ), "pods": READ, "pods/log": ("get",)})},
    )
    configuration = Configuration()
    kubeconfig = api.write_kubeconfig(tmp_path / "narrow", token="narrow")
    await config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
    return ApiClient(configuration)


async def test_rbac_forbids_what_the_role_does_not_grant(kube_api: FakeKubeAPI, tmp_path: Path) -> None:
    async with await narrow_client(kube_api, tmp_path) as api_client:
        batch = client.BatchV1Api(api_client)
        await batch.create_namespaced_job("jobs", job_manifest("allowed"))
        with pytest.raises(ApiException) as e:
            await batch.create_namespaced_job("team-a", job_manifest("denied"))
        error = body(e)
        assert (error["code"], error["reason"]) == (403, "Forbidden")
        assert error["message"] == (
            'jobs.batch is forbidden: User "system:serviceaccount:keptn:job-executor" cannot create'
            ' resource "jobs" in API group "batch" in the namespace "team-a"'
        )
        assert error["details"] == {"group": "batch", "kind": "jobs"}
        with pytest.raises(ApiException) as e:
            await batch.delete_namespaced_job("allowed", "jobs")
        assert body(e)["message"].startswith('jobs.batch "allowed" is forbidden: User ')
        with pytest.raises(ApiException) as e:
            await client.CoreV1Api(api_client).read_namespaced_pod_log("p", "team-a")
        assert body(e)["message"].endswith(
            'cannot get resource "pods/log" in API group "" in the namespace "team-a"'
        )
        with pytest.raises(ApiException) as e:
            await batch.list_job_for_all_namespaces()
        assert body(e)["message"].endswith('in API group "batch" at the cluster scope')
        with pytest.raises(ApiException) as e:
            await client.CoreV1Api(api_client).create_namespaced_config_map(
                "jobs", {"metadata": {"name": "c"}}
            )
        assert body(e)["code"] == 403
    unknown = Configuration(
        host=kube_api.url, api_key={"BearerToken": "nobody"}, api_key_prefix={"BearerToken": "Bearer"}
    )
    async with ApiClient(unknown) as api_client:
        with pytest.raises(ApiException) as e:
            await client.BatchV1Api(api_client).list_namespaced_job(NS)
        assert (e.value.status, body(e)["reason"]) == (401, "Unauthorized")


# ---------------------------------------------------------------------------------------------
# Item 16: server-side rules


def _big_annotations(manifest: dict[str, Any]) -> dict[str, Any]:
    # 100,000 three-byte characters: 300,000 bytes, though only 100,000 characters.
    manifest["metadata"]["annotations"] = {"keptn.sh/event": "\u20ac" * 100_000}
    return manifest


INVALID: list[tuple[str, Any, str]] = [
    (
        "annotations over 256 KiB counted in bytes",
        _big_annotations,
        "metadata.annotations: Too long: may not be more than 262144 bytes",
    ),
    (
        "annotation key name part over 63",
        lambda m: m["metadata"].update(annotations={"keptn.sh/" + "a" * 64: "x"}) or m,
        "name part must be no more than 63 characters",
    ),
    (
        "label key name part over 63",
        lambda m: m["metadata"].update(labels={"b" * 64: "x"}) or m,
        "name part must be no more than 63 characters",
    ),
    (
        "request above the limit",
        lambda m: container(m).update(resources={"limits": {"cpu": "1"}, "requests": {"cpu": "2"}}) or m,
        'spec.template.spec.containers[0].resources.requests: Invalid value: "2": must be less than or equal to cpu limit of 1',
    ),
    (
        "unqualified extended resource",
        lambda m: container(m).update(resources={"limits": {"gpu": "1"}}) or m,
        'spec.template.spec.containers[0].resources.limits[gpu]: Invalid value: "gpu": must be a standard resource for containers',
    ),
    (
        "extended resource request differs from its limit",
        lambda m: (
            container(m).update(
                resources={"limits": {"nvidia.com/gpu": "2"}, "requests": {"nvidia.com/gpu": "1"}}
            )
            or m
        ),
        'resources.requests: Invalid value: "1": must be equal to nvidia.com/gpu limit of 2',
    ),
    (
        "extended resource request without a limit",
        lambda m: container(m).update(resources={"requests": {"nvidia.com/gpu": "1"}}) or m,
        "resources.limits: Required value: Limit must be set for non overcommitable resources",
    ),
    (
        "runAsUser -1",
        lambda m: container(m).update(securityContext={"runAsUser": -1}) or m,
        "spec.template.spec.containers[0].securityContext.runAsUser: Invalid value: -1: must be between 0 and 2147483647, inclusive",
    ),
    (
        "seccomp Localhost without a profile",
        lambda m: (
            m["spec"]["template"]["spec"].update(securityContext={"seccompProfile": {"type": "Localhost"}})
            or m
        ),
        "spec.template.spec.securityContext.seccompProfile.localhostProfile: Required value: must be set when"
        " seccomp type is Localhost",
    ),
    (
        "secret name over 253",
        lambda m: (
            container(m).update(
                env=[{"name": "T", "valueFrom": {"secretKeyRef": {"name": "s" * 254, "key": "token"}}}]
            )
            or m
        ),
        "spec.template.spec.containers[0].env[0].valueFrom.secretKeyRef.name: Invalid value:",
    ),
]


@pytest.mark.parametrize(("case", "change", "message"), INVALID, ids=[case for case, _, _ in INVALID])
async def test_server_side_rules_are_422_invalid(
    kube_api: FakeKubeAPI, kube_api_client: ApiClient, case: str, change: Any, message: str
) -> None:
    error = await refused(kube_api_client, change(copy.deepcopy(job_manifest("rules"))))
    assert (error["code"], error["reason"]) == (422, "Invalid"), case
    assert message in error["message"], error["message"]
    assert error["message"].startswith('Job.batch "rules" is invalid: ')
    assert kube_api.validation_errors


async def test_int32_overflow_is_400_bad_request(kube_api: FakeKubeAPI, kube_api_client: ApiClient) -> None:
    from tests.kubeapi.validation import schema_error

    manifest = job_manifest("big-ttl", ttlSecondsAfterFinished=3_000_000_000)
    manifest_typed = {**manifest, "kind": "Job", "apiVersion": "batch/v1"}
    assert schema_error(manifest_typed, "full") is None  # the schema validator does not catch it
    error = await refused(kube_api_client, manifest)
    assert (error["code"], error["reason"]) == (400, "BadRequest")
    assert error["message"] == (
        'Job in version "v1" cannot be handled as a Job: json: cannot unmarshal number 3000000000 into'
        " Go struct field JobSpec.spec.ttlSecondsAfterFinished of type int32"
    )


async def test_object_over_etcd_limit_is_500_request_too_large(
    kube_api: FakeKubeAPI, kube_api_client: ApiClient
) -> None:
    manifest = job_manifest("huge")
    # Two env values of 900 KB: under the 3 MiB request limit, over etcd's 1.5 MiB.
    container(manifest)["env"] = [{"name": f"EVENT_{i}", "value": "x" * 900_000} for i in range(2)]
    error = await refused(kube_api_client, manifest)
    assert (error["code"], error["message"]) == (500, "etcdserver: request is too large")
    assert "reason" not in error  # StatusReasonUnknown, as the API server passes etcd's error on
    assert kube_api.get("jobs", NS, "huge") is None


async def test_request_over_3_mib_is_413(kube_api_client: ApiClient) -> None:
    manifest = job_manifest("huger")
    container(manifest)["env"] = [{"name": f"EVENT_{i}", "value": "x" * 1_100_000} for i in range(3)]
    error = await refused(kube_api_client, manifest)
    assert (error["code"], error["reason"]) == (413, "RequestEntityTooLarge")
    assert error["message"] == "Request entity too large: limit is 3145728"


async def test_default_fixture_keeps_an_all_allowed_token(
    kube_api_factory: KubeAPIFactory, tmp_path: Path
) -> None:
    api = await kube_api_factory()
    assert api.kubeconfig()["users"][0]["user"]["token"] == "fake-token"
    assert {"default", "jobs", "keptn"} <= {n["metadata"]["name"] for n in api.objects("namespaces")}
