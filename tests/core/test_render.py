"""TaskSpec -> Kubernetes objects; every manifest is checked against the official schema."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from executor.backends.kubernetes import initfiles
from executor.backends.kubernetes.render import RenderOptions, render_job, render_task
from executor.backends.naming import (
    A_EVENT_ID,
    A_EVENT_SOURCE,
    A_EVENT_TYPE,
    L_ACTION,
    L_ACTION_INDEX,
    L_COMMIT,
    L_CONFIG_HASH,
    L_CONTEXT,
    L_EVENT_ID,
    L_MANAGED_BY,
    L_TASK,
    L_TASK_INDEX,
    MANAGED_BY,
    SELECTOR,
)
from executor.config.model import JobConfig
from executor.model.events import DISALLOWED
from executor.model.tasks import RESULT_FILE_ENV, RESULT_FILE_PATH, TaskSpec
from executor.planner import plan_action
from executor.policy import RESTRICTED_SECURITY_CONTEXT
from executor.resolvers.local import collect_files
from executor.settings import Settings

from .conftest import (
    RESOURCES,
    SAMPLE_CASES,
    config,
    make_event,
    one_task,
    sample_event,
    validate_all,
    validate_manifest,
)

OPTIONS = RenderOptions(init_image="ghcr.io/job-executor/job-executor:test")
KEPTN = RenderOptions(
    init_image="ghcr.io/job-executor/job-executor:test",
    files_source="keptn",
    keptn_api_url="http://api-gateway-nginx.keptn/api",
    keptn_token_secret="keptn-api-token",
)
CARTS = RESOURCES / "sockshop" / "dev" / "carts"


def specs_for(text: str, event: Any = None, settings: Settings | None = None) -> list[TaskSpec]:
    cfg: JobConfig = config(text)
    event = event or make_event(gitcommitid="abc123", shkeptncontext="08735340-6f9e-4b32-97ff-3b6c292bc50a")
    return [s for a in cfg.actions for s in plan_action(event, a, cfg, settings or Settings())]


def job_for(
    task_yaml: str, settings: Settings | None = None, options: RenderOptions = OPTIONS
) -> dict[str, Any]:
    (spec,) = specs_for(one_task(task_yaml), settings=settings)
    objects = validate_all(render_task(spec, options))
    assert [o["kind"] for o in objects] == ["Job"]
    return objects[0]


def container(job: dict[str, Any]) -> dict[str, Any]:
    containers = job["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    result: dict[str, Any] = containers[0]
    return result


def carts_objects(options: RenderOptions = OPTIONS) -> tuple[list[TaskSpec], list[dict[str, Any]]]:
    cfg = config((CARTS / "job" / "config.yaml").read_text(), str(CARTS / "job" / "config.yaml"))
    event = sample_event("test.triggered.json")
    specs = list(plan_action(event, cfg.actions[0], cfg, Settings()))
    objects: list[dict[str, Any]] = []
    for spec in specs:
        files = collect_files(spec.files, [CARTS]) if options.files_source == "configmap" else None
        objects.extend(render_task(spec, options, files))
    return specs, validate_all(objects)


# ---- the Job ----


def test_minimal_job() -> None:
    job = job_for("image: alpine:3.20\ncmd: [echo, hi]")
    name = "job-executor-service-job-04e3db2a855d067f8c06c5d9-000-001"  # sha256(source, id)
    assert job["apiVersion"] == "batch/v1" and job["kind"] == "Job"
    assert job["metadata"]["name"] == name
    assert job["metadata"]["namespace"] == "keptn"
    spec = job["spec"]
    assert spec["backoffLimit"] == 0
    assert spec["ttlSecondsAfterFinished"] == 21600
    assert "activeDeadlineSeconds" not in spec
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert "initContainers" not in pod  # nothing to stage
    assert pod["automountServiceAccountToken"] is False
    assert "serviceAccountName" not in pod
    # The event reaches the task from the Job's own annotation, as /keptn/event.json (issue 15).
    event_file = {"path": "event.json", "fieldRef": {"fieldPath": "metadata.annotations['keptn.sh/event']"}}
    assert pod["volumes"] == [
        {"name": "job-volume", "emptyDir": {}},
        {"name": "job-event", "downwardAPI": {"items": [event_file]}},
    ]
    main = container(job)
    assert main["name"] == name
    assert (main["image"], main["command"]) == ("alpine:3.20", ["echo", "hi"])
    assert "args" not in main and "workingDir" not in main and "imagePullPolicy" not in main
    assert main["volumeMounts"] == [
        {"name": "job-volume", "mountPath": "/keptn"},
        {"name": "job-event", "mountPath": "/keptn/event.json", "subPath": "event.json", "readOnly": True},
    ]
    assert main["resources"] == {
        "limits": {"cpu": "1", "memory": "512Mi"},
        "requests": {"cpu": "50m", "memory": "128Mi"},
    }
    assert main["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 65532,
        "runAsGroup": 65532,
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def test_labels_and_annotations_find_the_job_again() -> None:
    (spec,) = specs_for(
        one_task("image: alpine"), settings=Settings().with_overrides(jobs={"labels": (("team", "qa"),)})
    )
    job = validate_all(render_task(spec, OPTIONS))[0]
    labels = job["metadata"]["labels"]
    assert labels == {
        "team": "qa",
        L_MANAGED_BY: MANAGED_BY,
        L_CONTEXT: "08735340-6f9e-4b32-97ff-3b6c292bc50a",
        L_EVENT_ID: spec.trigger.event_id,
        L_COMMIT: "abc123",
        L_ACTION: "act",
        L_TASK: "task",
        L_CONFIG_HASH: spec.config_digest[:63],
        L_ACTION_INDEX: "0",
        L_TASK_INDEX: "0",  # 0-based as in JES; the Job name's suffix counts from 1
    }
    # Pinned literally: Jobs of a running release are found again by this label after an upgrade.
    assert labels["app.kubernetes.io/managed-by"] == "job-executor"
    assert SELECTOR == "app.kubernetes.io/managed-by=job-executor"
    annotations = job["metadata"]["annotations"]
    assert annotations[A_EVENT_ID] == spec.trigger.event_id
    assert annotations[A_EVENT_SOURCE] == "shipyard-controller"
    assert annotations[A_EVENT_TYPE] == "sh.keptn.event.test.triggered"
    template = job["spec"]["template"]["metadata"]
    assert template == {"labels": labels, "annotations": annotations}


def test_job_labels_setting_cannot_override_ours() -> None:
    (spec,) = specs_for(
        one_task("image: alpine"),
        settings=Settings().with_overrides(jobs={"labels": ((L_MANAGED_BY, "someone"),)}),
    )
    job = validate_all(render_task(spec, OPTIONS))[0]
    assert job["metadata"]["labels"][L_MANAGED_BY] == MANAGED_BY


def test_long_and_odd_names_are_sanitised_in_labels_but_kept_in_annotations() -> None:
    name = "Run the very long locust load test: against carts/orders (v2) " * 2
    text = one_task("image: alpine").replace('name: "task"', f'name: "{name}"')
    event = make_event(id="not a uuid / but an id", shkeptncontext="ctx with spaces")
    (spec,) = specs_for(text, event)
    job = validate_all(render_task(spec, OPTIONS))[0]
    # One `_` per run of invalid characters, as JES's sanitizeLabel wrote it.
    assert (
        job["metadata"]["labels"][L_TASK] == "Run_the_very_long_locust_load_test_against_carts_orders_v2_Run"
    )
    assert job["metadata"]["labels"][L_EVENT_ID] == "not_a_uuid_but_an_id"
    assert job["metadata"]["annotations"]["keptn.sh/jes-task"] == name
    assert job["metadata"]["annotations"][A_EVENT_ID] == "not a uuid / but an id"


def test_task_fields_reach_the_container() -> None:
    job = job_for(
        """\
        image: locustio/locust
        cmd: [locust]
        args: ["--host", "$(HOST)"]
        env:
          - {name: HOST, value: "$.data.project", valueFrom: event}
          - {name: locust-secret, valueFrom: secret}
        workingDir: /bin
        imagePullPolicy: Always
        namespace: carts
        annotations: [{key1: value1}, {key2: value2}]
        ttlSecondsAfterFinished: 600
        activeDeadlineSeconds: 120
        securityContext: {runAsUser: 7000, runAsGroup: 9000}
        """
    )
    main = container(job)
    assert main["args"] == ["--host", "$(HOST)"]
    assert {"name": "HOST", "value": "sockshop"} in main["env"]
    assert main["envFrom"] == [{"secretRef": {"name": "locust-secret"}}]
    assert (main["workingDir"], main["imagePullPolicy"]) == ("/bin", "Always")
    assert (main["securityContext"]["runAsUser"], main["securityContext"]["runAsGroup"]) == (7000, 9000)
    assert job["metadata"]["namespace"] == "carts"
    assert job["metadata"]["annotations"]["key1"] == "value1"
    assert job["spec"]["template"]["metadata"]["annotations"]["key2"] == "value2"
    assert job["spec"]["ttlSecondsAfterFinished"] == 600
    assert job["spec"]["activeDeadlineSeconds"] == 120


def test_deadline_from_settings() -> None:
    job = job_for(
        "image: alpine\nactiveDeadlineSeconds: 900", Settings().with_overrides(jobs={"deadline_seconds": 600})
    )
    assert job["spec"]["activeDeadlineSeconds"] == 600


@pytest.mark.parametrize("block", ["resources: {}", "resources: {requests: {}}"])
def test_empty_resources_render_no_resources(block: str) -> None:
    assert container(job_for(f"image: alpine\n{block}"))["resources"] == {}


def test_service_account_named_by_the_task_mounts_its_token() -> None:
    pod = job_for("image: alpine/k8s\nserviceAccount: your-service-account-name")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "your-service-account-name"
    assert "automountServiceAccountToken" not in pod


def test_default_service_account_does_not_mount_a_token() -> None:
    pod = job_for("image: alpine", Settings().with_overrides(jobs={"service_account": "jobs"}))["spec"][
        "template"
    ]["spec"]
    assert pod["serviceAccountName"] == "jobs"
    assert pod["automountServiceAccountToken"] is False


def test_privileged_job_renders_a_valid_security_context() -> None:
    job = job_for(
        "image: alpine\nsecurityContext: {privileged: true}",
        Settings().with_overrides(jobs={"allow_privileged": True}),
    )
    assert container(job)["securityContext"]["privileged"] is True


def test_rendering_is_pure() -> None:
    specs, first = carts_objects()
    _, second = carts_objects()
    assert first == second
    assert validate_all([render_job(specs[0], OPTIONS)]) == [render_job(specs[0], OPTIONS)]


# ---- files ----


def test_carts_sample_stages_files_and_a_folder_through_a_configmap() -> None:
    _specs, objects = carts_objects()
    assert [o["kind"] for o in objects] == ["ConfigMap", "Job"]
    configmap, job = objects
    name = job["metadata"]["name"]
    assert configmap["metadata"]["name"] == name
    assert configmap["metadata"]["namespace"] == job["metadata"]["namespace"]
    pod = job["spec"]["template"]["spec"]
    (init,) = pod["initContainers"]
    assert init["name"] == f"init-{name}"
    assert init["args"] == ["init-files"]
    env = {e["name"]: e.get("value") for e in init["env"]}
    staged = json.loads(env["JOB_FILES"])
    assert staged == [
        "helm/Chart.yaml",
        "helm/templates/configmap.yaml",
        "helm/values.yaml",
        "locust/basic.py",
        "locust/import.py",
        "locust/locust.conf",
    ]
    assert (
        env["KEPTN_PROJECT"] == "sockshop" and env["KEPTN_STAGE"] == "dev" and env["KEPTN_SERVICE"] == "carts"
    )
    assert (env["JOB_ACTION"], env["JOB_TASK"]) == ("Run locust", "Run locust tests")
    assert "GIT_COMMIT_ID" in env
    assert env["JOB_FILES_DIR"] == "/job-files"
    assert {"name": "job-files", "configMap": {"name": name}} in pod["volumes"]
    assert {"name": "job-volume", "mountPath": "/keptn"} in init["volumeMounts"]
    assert init["resources"] == {
        "limits": {"cpu": "1", "memory": "512Mi"},
        "requests": {"cpu": "50m", "memory": "128Mi"},
    }
    assert init["securityContext"]["runAsNonRoot"] is True
    assert sorted(configmap["binaryData"]) == [f"f{i:04d}" for i in range(len(staged))]


def test_the_init_container_stages_what_the_configmap_holds(tmp_path: Path) -> None:
    """The renderer's ConfigMap and JOB_FILES, read back by `init-files`, give the tree's files."""
    _, (configmap, job) = carts_objects()
    mounted = tmp_path / "job-files"
    mounted.mkdir()
    for key, value in configmap["binaryData"].items():
        (mounted / key).write_bytes(base64.b64decode(value))
    (init,) = job["spec"]["template"]["spec"]["initContainers"]
    env = {e["name"]: e["value"] for e in init["env"] if "value" in e}
    env["JOB_FILES_DIR"] = str(mounted)
    target = tmp_path / "keptn"
    assert initfiles.run(env, target) == 0
    for relative in json.loads(env["JOB_FILES"]):
        assert (target / relative).read_bytes() == (CARTS / relative).read_bytes()


def test_keptn_file_source_fetches_at_run_time() -> None:
    _, objects = carts_objects(KEPTN)
    assert [o["kind"] for o in objects] == ["Job"]
    (init,) = objects[0]["spec"]["template"]["spec"]["initContainers"]
    env = {e["name"]: e for e in init["env"]}
    assert env["KEPTN_API_ENDPOINT"]["value"] == "http://api-gateway-nginx.keptn/api"
    assert env["KEPTN_API_TOKEN"]["valueFrom"] == {
        "secretKeyRef": {"name": "keptn-api-token", "key": "token"}
    }
    assert json.loads(env["JOB_FILES"]["value"]) == [
        "locust/basic.py",
        "locust/import.py",
        "locust/locust.conf",
        "helm",
    ]
    assert "JOB_FILES_DIR" not in env


# ---- the samples ----


@pytest.mark.parametrize(("where", "event_file", "jobs"), SAMPLE_CASES)
def test_every_sample_renders_valid_manifests(where: str, event_file: str, jobs: int) -> None:
    folder = RESOURCES / "sockshop" / where
    path = folder / "job" / "config.yaml"
    cfg = config(path.read_text(), str(path))
    event = sample_event(event_file)
    objects = []
    for action in cfg.actions:
        from executor.matcher import action_matches

        if action_matches(action, event):
            for spec in plan_action(event, action, cfg, Settings()):
                objects.extend(render_task(spec, OPTIONS, collect_files(spec.files, [folder])))
    validate_all(objects)
    assert sum(o["kind"] == "Job" for o in objects) == jobs


def test_sample_specifics() -> None:
    def jobs(where: str, event_file: str) -> list[dict[str, Any]]:
        path = RESOURCES / "sockshop" / where / "job" / "config.yaml"
        cfg = config(path.read_text(), str(path))
        event = sample_event(event_file)
        specs = plan_action(event, cfg.actions[0], cfg, Settings())
        return validate_all([render_job(s, OPTIONS) for s in specs])

    (ttl,) = jobs("dev/ttl", "sample.triggered.ttl.json")
    assert ttl["spec"]["ttlSecondsAfterFinished"] == 600
    (wd,) = jobs("dev/working-dir", "sample.triggered.working-dir.json")
    assert container(wd)["workingDir"] == "/bin"
    (pull,) = jobs("dev/pull-policy", "sample.triggered.pull-policy.json")
    assert container(pull)["imagePullPolicy"] == "Always"
    user, rootfs = jobs("dev/security-context", "sample.triggered.security-context.json")
    assert container(user)["securityContext"]["runAsUser"] == 7000
    assert container(rootfs)["securityContext"]["readOnlyRootFilesystem"] is False
    assert rootfs["metadata"]["name"].endswith("-000-002")
    (annotated,) = jobs("dev/annotations", "sample.triggered.annotations.json")
    assert annotated["metadata"]["annotations"]["key1"] == "value1"
    assert annotated["metadata"]["namespace"] == "carts"
    (greet,) = jobs("", "greeting.triggered.json")
    env = {e["name"]: e["value"] for e in container(greet)["env"]}
    assert env["LABELS_BUILD_ID"] == "build-17"
    assert container(greet)["args"] == ['echo "Hello from $KEPTN_PROJECT/$KEPTN_STAGE/$KEPTN_SERVICE"']


# ---- arbitrary input still renders valid manifests ----

names = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters='"\\'), min_size=1, max_size=80
).filter(lambda s: s.strip() != "")


# What a receiver accepts as a CloudEvents String (no control characters, unpaired surrogates or
# noncharacters): anything else never becomes an event.
def attribute_text(min_size: int, max_size: int) -> st.SearchStrategy[str]:
    alphabet = st.characters(blacklist_categories=("Cc", "Cs")).filter(lambda c: not DISALLOWED.match(c))
    return st.text(alphabet=alphabet, min_size=min_size, max_size=max_size)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    event_id=attribute_text(1, 80).filter(lambda s: s.strip() != ""),
    source=attribute_text(1, 30).filter(lambda s: s.strip() != ""),
    action=names,
    task=names,
    labels=st.dictionaries(st.text(min_size=1, max_size=16), st.text(max_size=20), max_size=4),
    commit=attribute_text(0, 70),
)
def test_any_event_and_names_render_valid_manifests(
    event_id: str, source: str, action: str, task: str, labels: dict[str, str], commit: str
) -> None:
    text = (
        "apiVersion: v2\nactions:\n"
        f"  - name: {json.dumps(action)}\n"
        "    events: [{name: '*'}]\n"
        f"    tasks: [{{name: {json.dumps(task)}, image: alpine}}]\n"
    )
    event = make_event(
        data={"project": "p", "stage": "s", "service": "x", "labels": labels},
        id=event_id,
        source=source,
        gitcommitid=commit,
        shkeptncontext=event_id[::-1],
    )
    for spec in specs_for(text, event):
        objects = render_task(spec, OPTIONS, {"a/b.txt": b"x"})
        for obj in objects:
            validate_manifest(obj)


# ---- what a task is given (issue 15) ----


def test_secret_files_are_read_only_secret_volumes() -> None:
    job = job_for(
        "image: alpine\nsecretFiles: [{name: kubeconfig, mountPath: /etc/kube}, {name: registry, mountPath: /root/.docker}]"
    )
    volumes = job["spec"]["template"]["spec"]["volumes"]
    assert volumes[-2:] == [
        {"name": "secret-files-0", "secret": {"secretName": "kubeconfig", "defaultMode": 0o400}},
        {"name": "secret-files-1", "secret": {"secretName": "registry", "defaultMode": 0o400}},
    ]
    assert container(job)["volumeMounts"][-2:] == [
        {"name": "secret-files-0", "mountPath": "/etc/kube", "readOnly": True},
        {"name": "secret-files-1", "mountPath": "/root/.docker", "readOnly": True},
    ]


def test_an_event_over_the_annotation_limit_travels_in_the_configmap_beside_the_job() -> None:
    big = make_event(data={"project": "sockshop", "stage": "dev", "service": "carts", "pad": "x" * 40_000})
    (spec,) = specs_for(one_task("image: alpine"), event=big)
    configmap, job = validate_all(render_task(spec, OPTIONS))
    assert configmap["kind"] == "ConfigMap" and configmap["metadata"]["name"] == job["metadata"]["name"]
    assert configmap["data"] == {"event.json": big.to_json()}
    assert "keptn.sh/event" not in job["metadata"]["annotations"]
    pod = job["spec"]["template"]["spec"]
    assert pod["volumes"][-1] == {
        "name": "job-event",
        "configMap": {
            "name": job["metadata"]["name"],
            "items": [{"key": "event.json", "path": "event.json"}],
        },
    }
    assert "initContainers" not in pod  # no files to stage: the ConfigMap holds only the event


def test_a_large_event_and_staged_files_share_one_configmap() -> None:
    big = make_event(data={"project": "sockshop", "stage": "dev", "service": "carts", "pad": "x" * 40_000})
    (spec,) = specs_for(one_task("image: alpine\nfiles: [locust/basic.py]"), event=big)
    objects = validate_all(render_task(spec, OPTIONS, collect_files(spec.files, [CARTS])))
    assert [o["kind"] for o in objects] == ["ConfigMap", "Job"]
    assert sorted(objects[0]["binaryData"]) == ["f0000"] and sorted(objects[0]["data"]) == ["event.json"]


def test_an_optional_task_is_marked_on_its_job() -> None:
    job = job_for("image: alpine\ncontinueOnError: true")
    assert job["metadata"]["annotations"]["keptn.sh/jes-continue-on-error"] == "true"
    assert "keptn.sh/jes-continue-on-error" not in job_for("image: alpine")["metadata"]["annotations"]


# ---- what the backend and Kubernetes rely on ----


def test_the_task_writes_its_result_to_the_termination_message_file() -> None:
    # The backend reads the result from the pod's containerStatuses, where Kubernetes copies the
    # termination message file; "File" keeps the log from standing in for a missing result.
    main = container(job_for("image: alpine"))
    assert (main["terminationMessagePath"], main["terminationMessagePolicy"]) == (RESULT_FILE_PATH, "File")
    assert {"name": RESULT_FILE_ENV, "value": RESULT_FILE_PATH} in main["env"]


def test_the_pod_gets_the_operators_placement_and_security_context() -> None:
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}
                ]
            }
        }
    }
    settings = Settings().with_overrides(
        defaults={
            "pod_security_context": (("runAsGroup", 3000),),
            "node_selector": (("zone", "a"),),
            "tolerations": ({"key": "gpu", "operator": "Exists"},),
            "affinity": tuple(affinity.items()),
        }
    )
    pod = job_for("image: alpine\nnodeSelector: {disk: ssd}", settings)["spec"]["template"]["spec"]
    assert pod["securityContext"] == {"fsGroup": 65532, "runAsGroup": 3000}
    assert pod["nodeSelector"] == {"zone": "a", "disk": "ssd"}
    assert pod["tolerations"] == [{"key": "gpu", "operator": "Exists"}]
    assert pod["affinity"] == affinity


def test_without_placement_the_pod_has_only_the_default_fs_group() -> None:
    pod = job_for("image: alpine")["spec"]["template"]["spec"]
    # The group of the restricted user: the kubelet makes /keptn writable to it.
    assert pod["securityContext"] == {"fsGroup": 65532}
    assert not {"nodeSelector", "tolerations", "affinity"} & set(pod)


def test_a_changed_manifest_does_not_change_the_next_one() -> None:
    # The renderer's nested values are copies: editing one manifest (a caller adding a
    # capability, say) changes neither the spec nor the shared restricted default.
    affinity = {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": []}}
    settings = Settings().with_overrides(
        defaults={
            "pod_security_context": (("seLinuxOptions", {"level": "s0"}),),
            "affinity": tuple(affinity.items()),
        }
    )
    (spec,) = specs_for(one_task("image: alpine\nfiles: [locust/basic.py]"), settings=settings)
    files = collect_files(spec.files, [CARTS])
    first = render_task(spec, OPTIONS, files)
    pod = first[-1]["spec"]["template"]["spec"]
    pod["initContainers"][0]["securityContext"]["capabilities"]["drop"].append("NET_RAW")
    pod["securityContext"]["seLinuxOptions"]["level"] = "s1"
    pod["affinity"]["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"].append({})
    again = render_task(spec, OPTIONS, files)[-1]["spec"]["template"]["spec"]
    assert again["initContainers"][0]["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert again["securityContext"]["seLinuxOptions"] == {"level": "s0"}
    # (a literal: `affinity`'s own lists are the settings' and the spec's)
    assert again["affinity"] == {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": []}}
    assert RESTRICTED_SECURITY_CONTEXT["capabilities"] == {"drop": ["ALL"]}


def test_the_staged_files_are_mounted_read_only_in_the_init_container() -> None:
    _, (_configmap, job) = carts_objects()
    (init,) = job["spec"]["template"]["spec"]["initContainers"]
    assert {"name": "job-files", "mountPath": "/job-files", "readOnly": True} in init["volumeMounts"]


def test_the_full_deployment_name_labels_the_job_and_its_configmap() -> None:
    # FULL_DEPLOYMENT_NAME: the backend finds (and cleans up) only what carries its own name.
    options = RenderOptions(init_image=OPTIONS.init_image, managed_by="jes-blue")
    _, objects = carts_objects(options)
    assert [o["kind"] for o in objects] == ["ConfigMap", "Job"]
    for obj in objects:
        assert obj["metadata"]["labels"][L_MANAGED_BY] == "jes-blue"
    assert objects[1]["spec"]["template"]["metadata"]["labels"][L_MANAGED_BY] == "jes-blue"


def test_a_configmap_of_files_only_has_no_event_data() -> None:
    _, (configmap, _job) = carts_objects()
    assert "data" not in configmap


def test_the_keptn_file_source_adds_no_init_container_when_the_task_has_no_files() -> None:
    pod = job_for("image: alpine", options=KEPTN)["spec"]["template"]["spec"]
    assert "initContainers" not in pod
