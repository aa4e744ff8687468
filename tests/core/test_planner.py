"""Planning: event + task + settings -> TaskSpec (env, resources, defaults, policy)."""

from __future__ import annotations

import json
import logging
from dataclasses import FrozenInstanceError, replace

import pytest
import yaml

from executor.config.model import JobConfig
from executor.model.events import Event
from executor.model.tasks import EnvVar, SecretMount, TaskSpec
from executor.planner import (
    MAX_EVENT_ANNOTATION,
    PlanError,
    effective_deadline,
    label_env_name,
    plan_action,
    trigger_of,
)
from executor.policy import PolicyError
from executor.settings import Settings
from executor.settings.running import ResourceDefaults

from .conftest import UUID, config, make_event, one_task, sample_event

DATA = {
    "project": "sockshop",
    "stage": "dev",
    "service": "carts",
    "labels": {"testId": "4711", "build-id": "build-17", "owner name": "JohnDoe", "n": 3},
    "deployment": {"deploymentURIsLocal": ["https://keptn.sh"], "count": 2, "ready": True},
    "test": {"teststrategy": "locust"},
}


def plan(task_yaml: str, settings: Settings | None = None, data: object = DATA) -> TaskSpec:
    cfg = config(one_task(task_yaml))
    specs = plan_action(make_event(data=data), cfg.actions[0], cfg, settings or Settings())
    assert len(specs) == 1
    return specs[0]


def env_of(spec: TaskSpec) -> dict[str, str]:
    return {e.name: e.value for e in spec.env}


# ---- env ----


def test_keptn_defaults_and_labels() -> None:
    env = env_of(plan("image: alpine"))
    assert env == {
        "KEPTN_PROJECT": "sockshop",
        "KEPTN_STAGE": "dev",
        "KEPTN_SERVICE": "carts",
        # Every task gets the event's CE_* attributes (issue 19); this event has no subject or time.
        "CE_ID": "f2b878d3-03c0-4e8f-bc3f-454bc1b3d79b",
        "CE_SOURCE": "shipyard-controller",
        "CE_TYPE": "sh.keptn.event.test.triggered",
        "CE_SUBJECT": "",
        "CE_TIME": "",
        "LABELS_TESTID": "4711",
        "LABELS_BUILD_ID": "build-17",
        "LABELS_OWNER_NAME": "JohnDoe",
        "LABELS_N": "3",
        # What every task is given (issue 15): the event file, its action and task; this event
        # has no commit id and plan() names no config level, so neither is set.
        "JOB_EVENT_FILE": "/keptn/event.json",
        "JOB_ACTION": "act",
        "JOB_TASK": "task",
        "JOB_TASK_INDEX": "1",
    }


@pytest.mark.parametrize(
    ("key", "name"),
    [
        ("build-id", "LABELS_BUILD_ID"),
        ("owner name", "LABELS_OWNER_NAME"),
        ("a - b", "LABELS_A___B"),
        ("testId", "LABELS_TESTID"),
        ("x.y", "LABELS_X.Y"),
        ("app.kubernetes.io/name", "LABELS_APP.KUBERNETES.IO_NAME"),
        ("a=b", "LABELS_A_B"),
        ("größe", "LABELS_GR_SSE"),
    ],
)
def test_label_env_names(key: str, name: str) -> None:
    assert label_env_name(key) == name


def test_event_without_data_sets_no_keptn_defaults() -> None:
    env = env_of(plan("image: alpine", data={"labels": "not a map"}))
    # Empty KEPTN_* values are not set at all (issue 19); the CE_* attributes always are.
    assert not [name for name in env if name.startswith(("KEPTN_", "LABELS_"))]
    assert sorted(n for n in env if not n.startswith("JOB_")) == [
        "CE_ID",
        "CE_SOURCE",
        "CE_SUBJECT",
        "CE_TIME",
        "CE_TYPE",
    ]


def test_values_from_the_event_default_to_string_for_scalars_and_json_for_maps() -> None:
    spec = plan(
        """\
        image: alpine
        env:
          - {name: HOST, value: "$.data.deployment.deploymentURIsLocal[0]", valueFrom: event}
          - {name: COUNT, value: "$.data.deployment.count", valueFrom: event}
          - {name: READY, value: "$.data.deployment.ready", valueFrom: event}
          - {name: DEPLOYMENT, value: "$.data.deployment", valueFrom: event}
          - {name: URIS, value: "$.data.deployment.deploymentURIsLocal", valueFrom: event}
        """
    )
    env = env_of(spec)
    assert env["HOST"] == "https://keptn.sh"
    assert env["COUNT"] == "2"
    assert env["READY"] == "true"
    assert json.loads(env["DEPLOYMENT"]) == DATA["deployment"]
    assert env["URIS"] == '["https://keptn.sh"]'  # JSON, not Go's [https://keptn.sh]


def test_as_yaml_of_a_map_and_as_json() -> None:
    spec = plan(
        """\
        image: alpine
        env:
          - {name: DATA_YAML, value: "$.data.deployment", valueFrom: event, as: yaml}
          - {name: EVENT, value: "$", valueFrom: event, as: json}
          - {name: STRATEGY_JSON, value: "$.data.test.teststrategy", valueFrom: event, as: json}
          - {name: STRATEGY, value: "$.data.test.teststrategy", valueFrom: event, as: string}
          - {name: COUNT_YAML, value: "$.data.deployment.count", valueFrom: event, as: yaml}
        """
    )
    env = env_of(spec)
    assert yaml.safe_load(env["DATA_YAML"]) == DATA["deployment"]
    assert env["DATA_YAML"].startswith("deploymentURIsLocal:\n- https://keptn.sh\n")  # block style
    event = json.loads(env["EVENT"])
    assert event["id"] == UUID and event["type"] == "sh.keptn.event.test.triggered"
    assert event["data"] == DATA
    assert env["STRATEGY_JSON"] == '"locust"'
    assert env["STRATEGY"] == "locust"
    assert yaml.safe_load(env["COUNT_YAML"]) == 2


def test_the_whole_event_as_json_is_its_one_shared_encoding() -> None:
    # A 1 MiB event takes the loop tens of ms to encode: `$` reuses the encoding the state and
    # the Job's annotation already made, keys sorted as JES's Go encoder wrote them.
    event = make_event(data={"zeta": 1, "alpha": {"b": 2, "a": 1}})
    cfg = config(one_task('image: alpine\nenv: [{name: EVENT, value: "$", valueFrom: event, as: json}]'))
    (spec,) = plan_action(event, cfg.actions[0], cfg, Settings())
    value = env_of(spec)["EVENT"]
    assert value is event.to_json()
    assert value.index('"alpha"') < value.index('"zeta"') and '{"a":1,"b":2}' in value


def test_jsonpath_that_finds_nothing_is_a_clear_plan_error() -> None:
    with pytest.raises(PlanError) as caught:
        plan("image: alpine\nenv: [{name: HOST, value: '$.data.nope[0]', valueFrom: event}]")
    assert str(caught.value) == "task 'task': env HOST: jsonpath $.data.nope[0] found nothing in the event"


def test_literals_and_secrets() -> None:
    spec = plan(
        """\
        image: alpine
        env:
          - {name: DATA_DIR, valueFrom: string, value: /tmp/data}
          - {name: locust-secret, valueFrom: secret}
          - {name: other-secret, valueFrom: secret}
          - {name: locust-secret, valueFrom: secret}
        """
    )
    assert env_of(spec)["DATA_DIR"] == "/tmp/data"
    assert spec.secret_refs == ("locust-secret", "other-secret")
    assert "locust-secret" not in env_of(spec)


def test_config_entries_win_over_defaults_in_place() -> None:
    spec = plan("image: alpine\nenv: [{name: KEPTN_STAGE, valueFrom: string, value: prod}]")
    assert spec.env[:3] == (
        EnvVar("KEPTN_PROJECT", "sockshop"),
        EnvVar("KEPTN_STAGE", "prod"),
        EnvVar("KEPTN_SERVICE", "carts"),
    )


def test_var_references_in_cmd_and_args_are_left_for_kubernetes() -> None:
    spec = plan("image: alpine\ncmd: [sh, -c]\nargs: ['echo $(HOST) $(KEPTN_PROJECT)']")
    assert spec.cmd == ("sh", "-c")
    assert spec.args == ("echo $(HOST) $(KEPTN_PROJECT)",)


# ---- resources ----


def test_default_resources_apply_without_a_block() -> None:
    spec = plan("image: alpine")
    assert spec.limits == {"cpu": "1", "memory": "512Mi"}
    assert spec.requests == {"cpu": "50m", "memory": "128Mi"}


def test_default_resources_come_from_settings() -> None:
    settings = Settings(resources=ResourceDefaults("2", "1Gi", "100m", ""))
    spec = plan("image: alpine", settings)
    assert spec.limits == {"cpu": "2", "memory": "1Gi"}
    assert spec.requests == {"cpu": "100m"}  # an empty setting is left out
    assert spec.init_limits == {"cpu": "2", "memory": "1Gi"}


@pytest.mark.parametrize("block", ["resources: {}", "resources: {limits: {}}"])
def test_an_empty_resources_block_turns_the_defaults_off(block: str) -> None:
    spec = plan(f"image: alpine\n{block}")
    assert spec.limits == {} and spec.requests == {}
    assert spec.init_limits == {"cpu": "1", "memory": "512Mi"}  # the init container keeps them


def test_a_partial_block_is_used_as_written() -> None:
    spec = plan("image: alpine\nresources: {limits: {cpu: 1}, requests: {cpu: 50m}}")
    assert spec.limits == {"cpu": "1"} and spec.requests == {"cpu": "50m"}


# ---- defaults and settings ----


def test_max_poll_duration_default_and_override() -> None:
    assert plan("image: alpine").max_poll_duration == 300
    assert plan("image: alpine\nmaxPollDuration: 1200").max_poll_duration == 1200


def test_ttl_default() -> None:
    assert plan("image: alpine").ttl_seconds_after_finished == 21600
    assert plan("image: alpine\nttlSecondsAfterFinished: 600").ttl_seconds_after_finished == 600


@pytest.mark.parametrize("ttl", [0, 1, 59])
def test_ttl_under_60_is_raised_with_a_warning(ttl: int, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="executor.planner"):
        spec = plan(f"image: alpine\nttlSecondsAfterFinished: {ttl}")
    assert spec.ttl_seconds_after_finished == 60
    assert f"ttlSecondsAfterFinished {ttl} is below 60; using 60" in caplog.text


def test_ttl_of_60_is_kept_silently(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="executor.planner"):
        assert plan("image: alpine\nttlSecondsAfterFinished: 60").ttl_seconds_after_finished == 60
    assert caplog.text == ""


@pytest.mark.parametrize(
    ("task_ns", "job_namespace", "expected"),
    [("carts", "jobs", "carts"), (None, "jobs", "jobs"), (None, "", "keptn"), ("carts", "", "carts")],
)
def test_namespace_precedence(task_ns: str | None, job_namespace: str, expected: str) -> None:
    task = "image: alpine" + (f"\nnamespace: {task_ns}" if task_ns else "")
    assert plan(task, Settings().with_overrides(jobs={"namespace": job_namespace})).namespace == expected


def test_namespace_default_of_settings_is_keptn() -> None:
    assert plan("image: alpine", Settings.from_env({})).namespace == "keptn"


@pytest.mark.parametrize(
    ("task", "overall", "expected"),
    [(None, 0, None), (30, 0, 30), (None, 600, 600), (30, 600, 30), (900, 600, 600)],
)
def test_deadline_is_the_stricter_of_task_and_setting(
    task: int | None, overall: int, expected: int | None
) -> None:
    assert effective_deadline(task, overall) == expected
    text = "image: alpine" + (f"\nactiveDeadlineSeconds: {task}" if task else "")
    assert (
        plan(text, Settings().with_overrides(jobs={"deadline_seconds": overall})).active_deadline_seconds
        == expected
    )


def test_service_account() -> None:
    spec = plan("image: alpine")
    assert (spec.service_account, spec.automount_service_account_token) == (None, False)
    spec = plan("image: alpine", Settings().with_overrides(jobs={"service_account": "job-runner"}))
    assert (spec.service_account, spec.automount_service_account_token) == ("job-runner", False)
    spec = plan(
        "image: alpine\nserviceAccount: kubectl-user",
        Settings().with_overrides(jobs={"service_account": "job-runner"}),
    )
    assert (spec.service_account, spec.automount_service_account_token) == ("kubectl-user", True)


def test_security_context_defaults() -> None:
    context = plan("image: alpine").security_context
    # The literal restricted profile (Kubernetes Pod Security Standards, "restricted").
    assert context == {
        "runAsNonRoot": True,
        "runAsUser": 65532,
        "runAsGroup": 65532,
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert context["runAsNonRoot"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["readOnlyRootFilesystem"] is True
    assert context["capabilities"] == {"drop": ["ALL"]}


def test_security_context_is_overridden_key_by_key() -> None:
    context = plan("image: alpine\nsecurityContext: {runAsUser: 7000, runAsGroup: 9000}").security_context
    assert (context["runAsUser"], context["runAsGroup"]) == (7000, 9000)
    assert context["readOnlyRootFilesystem"] is True and context["runAsNonRoot"] is True
    context = plan("image: alpine\nsecurityContext: {readOnlyRootFilesystem: false}").security_context
    assert context["readOnlyRootFilesystem"] is False and context["runAsUser"] == 65532
    context = plan(
        "image: alpine\nsecurityContext: {capabilities: {add: [NET_BIND_SERVICE]}}"
    ).security_context
    # Adding a capability keeps the others dropped; dropping is replaced only when written.
    assert context["capabilities"] == {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}
    context = plan("image: alpine\nsecurityContext: {capabilities: {drop: [NET_RAW]}}").security_context
    assert context["capabilities"] == {"drop": ["NET_RAW"]}


def test_root_user_drops_the_non_root_default() -> None:
    context = plan("image: alpine\nsecurityContext: {runAsUser: 0}").security_context
    assert "runAsNonRoot" not in context and context["runAsUser"] == 0
    context = plan("image: alpine\nsecurityContext: {runAsUser: 0, runAsNonRoot: true}").security_context
    assert context["runAsNonRoot"] is True  # as written; Kubernetes will say why it cannot start


def test_privileged_is_refused_by_default() -> None:
    with pytest.raises(PolicyError, match="privileged: true"):
        plan("image: alpine\nsecurityContext: {privileged: true}")
    with pytest.raises(PolicyError, match="allowPrivilegeEscalation: true"):
        plan("image: alpine\nsecurityContext: {allowPrivilegeEscalation: true}")


def test_privileged_allowed_by_setting_drops_the_escalation_default(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        spec = plan(
            "image: alpine\nsecurityContext: {privileged: true}",
            Settings().with_overrides(jobs={"allow_privileged": True}),
        )
    assert spec.security_context["privileged"] is True
    # privileged with allowPrivilegeEscalation: false is refused by the API server
    assert "allowPrivilegeEscalation" not in spec.security_context
    assert "privileged: true" in caplog.text


def test_image_policy_is_checked_for_every_task_before_any_runs() -> None:
    cfg = config(
        """\
        apiVersion: v2
        actions:
          - name: a
            events: [{name: "*"}]
            tasks:
              - {name: ok, image: docker.io/library/alpine}
              - {name: bad, image: docker.io/evil/x}
        """
    )
    settings = Settings().with_overrides(jobs={"allowed_images": ("docker.io/library/*", "docker.io/evil")})
    with pytest.raises(PolicyError) as caught:
        plan_action(make_event(), cfg.actions[0], cfg, settings)
    assert str(caught.value) == "Forbidden: Image docker.io/evil/x does not match configured image allowlist."


def test_spec_fields_from_event_and_config() -> None:
    cfg = config(
        """\
        apiVersion: v2
        actions:
          - name: zero
            events: [{name: nope}]
            tasks: [{name: t, image: i}]
          - name: Run locust
            events: [{name: "*"}]
            tasks:
              - {name: first, image: i}
              - name: second
                image: locustio/locust
                files: [/locust/basic.py]
                workingDir: /keptn
                imagePullPolicy: Always
                annotations: [{key1: value1}]
        """
    )
    event = sample_event("test.triggered.json")
    specs = plan_action(
        event, cfg.actions[1], cfg, Settings().with_overrides(jobs={"labels": (("team", "qa"),)})
    )
    assert [(s.action_index, s.task_index, s.task_name) for s in specs] == [(1, 1, "first"), (1, 2, "second")]
    spec = specs[1]
    assert spec.action_name == "Run locust"
    assert spec.config_digest == cfg.digest
    assert spec.trigger.event_id == event.id and spec.trigger.keptn_context == event.keptn_context
    assert (spec.trigger.project, spec.trigger.stage, spec.trigger.service) == ("sockshop", "dev", "carts")
    assert spec.files == ("locust/basic.py",)
    assert (spec.working_dir, spec.image_pull_policy) == ("/keptn", "Always")
    assert spec.annotations == {"key1": "value1"}
    assert spec.extra_labels == {"team": "qa"}
    with pytest.raises(FrozenInstanceError):
        spec.image = "other"  # type: ignore[misc]


def test_planning_is_deterministic() -> None:
    cfg: JobConfig = config(one_task("image: alpine\nenv: [{name: E, value: $, valueFrom: event, as: json}]"))
    event = sample_event("test.triggered.json")
    first = plan_action(event, cfg.actions[0], cfg, Settings())
    second = plan_action(replace(event), cfg.actions[0], cfg, Settings())
    assert first == second


# ---- what the operator adds, and what the spec carries to the backends ----


def test_the_operators_security_context_is_between_the_default_and_the_tasks() -> None:
    settings = Settings().with_overrides(
        defaults={"security_context": (("runAsUser", 1000), ("readOnlyRootFilesystem", False))}
    )
    context = plan("image: alpine\nsecurityContext: {runAsUser: 7000}", settings).security_context
    assert (context["runAsUser"], context["readOnlyRootFilesystem"]) == (7000, False)
    assert context["runAsGroup"] == 65532  # the built-in layer under both


def test_the_operators_security_context_is_checked_by_the_policy() -> None:
    settings = Settings().with_overrides(defaults={"security_context": (("privileged", True),)})
    with pytest.raises(PolicyError) as caught:
        plan("image: alpine", settings)
    assert str(caught.value) == (
        "Forbidden: task 'task' asks for privileged: true, but privileged jobs are not allowed "
        "(set ALLOW_PRIVILEGED_JOBS=true to permit them)"
    )


def test_a_default_removed_by_both_layers_is_removed_once() -> None:
    # The operator's layer already dropped runAsNonRoot (uid 0) and allowPrivilegeEscalation
    # (privileged); the task's asking for the same again must not fail.
    settings = Settings().with_overrides(
        defaults={"security_context": (("runAsUser", 0), ("privileged", True))},
        jobs={"allow_privileged": True},
    )
    context = plan(
        "image: alpine\nsecurityContext: {runAsUser: 0, privileged: true}", settings
    ).security_context
    assert context["runAsUser"] == 0 and context["privileged"] is True
    assert "runAsNonRoot" not in context and "allowPrivilegeEscalation" not in context


def test_each_plan_has_its_own_security_context() -> None:
    first = plan("image: alpine").security_context
    first["capabilities"]["drop"].append("NET_RAW")
    first["seccompProfile"]["type"] = "Localhost"
    second = plan("image: alpine").security_context
    assert second["capabilities"] == {"drop": ["ALL"]}
    assert second["seccompProfile"] == {"type": "RuntimeDefault"}


def test_a_privileged_refusal_names_the_task() -> None:
    with pytest.raises(PolicyError) as caught:
        plan("image: alpine\nsecurityContext: {privileged: true}")
    assert "task 'task' asks for privileged: true" in str(caught.value)


def test_an_unconfined_apparmor_annotation_is_refused() -> None:
    key = "container.apparmor.security.beta.kubernetes.io/task"
    with pytest.raises(PolicyError) as caught:
        plan(f"image: alpine\nannotations: {{{key}: unconfined}}")
    assert f"annotation {key}: unconfined (baseline rule 'AppArmor')" in str(caught.value)


def test_require_digest_refuses_an_image_without_one() -> None:
    settings = Settings().with_overrides(jobs={"require_digest": True})
    with pytest.raises(PolicyError, match="REQUIRE_IMAGE_DIGEST=true"):
        plan("image: alpine:3.19", settings)
    digest = "sha256:" + "a" * 64
    assert plan(f"image: alpine@{digest}", settings).image == f"alpine@{digest}"


def test_allowed_secrets_are_checked_for_every_task_with_its_name() -> None:
    settings = Settings().with_overrides(defaults={"allowed_secrets": ("ci-*",)})
    ok = plan("image: alpine\nenv: [{name: ci-token, valueFrom: secret}]", settings)
    assert ok.secret_refs == ("ci-token",)
    with pytest.raises(PolicyError) as caught:
        plan("image: alpine\nsecretFiles: [{name: prod-db, mountPath: /etc/db}]", settings)
    assert str(caught.value) == (
        "task 'task' of action 'act': Forbidden: Secret prod-db is not in the allowed list (ALLOWED_SECRET_LIST)."
    )


def test_placement_and_the_pod_context_are_the_operators_with_the_tasks_over_them() -> None:
    toleration = {"key": "gpu", "operator": "Exists"}
    affinity = {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": []}}
    settings = Settings().with_overrides(
        defaults={
            "pod_security_context": (("runAsGroup", 3000),),
            "node_selector": (("disk", "hdd"), ("zone", "a")),
            "tolerations": (toleration,),
            "affinity": tuple(affinity.items()),
        }
    )
    spec = plan(
        "image: alpine\nnodeSelector: {disk: ssd}\nclusterSelector: {platform: arm64}\n"
        "tolerations:\n  - {key: spot, operator: Exists}",
        settings,
    )
    assert spec.pod_security_context == {"fsGroup": 65532, "runAsGroup": 3000}
    assert spec.node_selector == {"disk": "ssd", "zone": "a"}
    assert spec.tolerations == (toleration, {"key": "spot", "operator": "Exists"})
    assert spec.affinity == affinity
    assert spec.cluster_selector == {"platform": "arm64"}


def test_the_image_and_the_init_containers_resources() -> None:
    spec = plan("image: alpine:3.19\nresources: {}")
    assert spec.image == "alpine:3.19"
    assert (spec.init_limits, spec.init_requests) == (
        {"cpu": "1", "memory": "512Mi"},
        {"cpu": "50m", "memory": "128Mi"},
    )


def test_the_event_file_secret_files_and_continue_on_error_reach_the_spec() -> None:
    event = make_event(data=DATA)
    cfg = config(
        one_task(
            "image: alpine\ncontinueOnError: true\nsecretFiles: [{name: kubeconfig, mountPath: /etc/kube}]"
        )
    )
    (spec,) = plan_action(event, cfg.actions[0], cfg, Settings())
    assert spec.event_file == event.to_json()
    assert spec.secret_files == (SecretMount("kubeconfig", "/etc/kube"),)
    assert spec.continue_on_error is True


def test_the_config_level_and_the_commit_are_given_to_every_task() -> None:
    event = make_event(data=DATA, gitcommitid="0123abc")
    cfg = config(one_task("image: alpine"))
    (spec,) = plan_action(event, cfg.actions[0], cfg, Settings(), "service")
    assert spec.trigger.git_commit_id == "0123abc"
    env = env_of(spec)
    assert (env["JOB_CONFIG_LEVEL"], env["GIT_COMMIT_ID"]) == ("service", "0123abc")


def test_a_config_entry_of_a_context_name_wins_and_is_set_once() -> None:
    spec = plan("image: alpine\nenv: [{name: JOB_TASK, valueFrom: string, value: mine}]")
    assert [e.value for e in spec.env if e.name == "JOB_TASK"] == ["mine"]


def test_the_event_subject_and_time_are_given() -> None:
    event = make_event(data=DATA, subject="carts", time="2026-12-02T10:00:00Z")
    cfg = config(one_task("image: alpine"))
    (spec,) = plan_action(event, cfg.actions[0], cfg, Settings())
    assert (env_of(spec)["CE_SUBJECT"], env_of(spec)["CE_TIME"]) == ("carts", "2026-12-02T10:00:00Z")


def test_a_jsonpath_over_its_limit_is_a_plan_error_naming_task_and_variable() -> None:
    big = {"items": ["x" * 1024] * 80}  # over the 64 KiB that a `..` search may visit
    with pytest.raises(PlanError) as caught:
        plan("image: alpine\nenv: [{name: ALL, value: '$..items', valueFrom: event}]", data=big)
    assert str(caught.value).startswith("task 'task': env ALL: jsonpath '$..items' searches the whole event")


def test_a_job_over_what_etcd_stores_is_refused_before_any_task_runs() -> None:
    data = {"blob": "x" * (2 * 1024 * 1024)}
    with pytest.raises(PlanError) as caught:
        plan("image: alpine\nenv: [{name: BLOB, value: $.data.blob, valueFrom: event}]", data=data)
    message = str(caught.value)
    assert message.startswith("task 'task': its Job would be about ")
    assert message.endswith(f"the largest env value is BLOB ({2 * 1024 * 1024} bytes)")


def test_the_event_is_kept_for_the_jobs_annotation_up_to_32_kib() -> None:
    # The Trigger's event_json is the Job's event annotation: whole up to 32 KiB, else left out.
    def event_of_length(length: int) -> Event:
        event = make_event(data={"pad": ""})
        return make_event(data={"pad": "x" * (length - len(event.to_json()))})

    at_limit = event_of_length(MAX_EVENT_ANNOTATION)
    assert len(at_limit.to_json()) == MAX_EVENT_ANNOTATION
    assert trigger_of(at_limit).event_json == at_limit.to_json()
    assert trigger_of(event_of_length(MAX_EVENT_ANNOTATION + 1)).event_json == ""


def test_the_ttl_warning_names_the_task_and_both_values(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="executor.planner"):
        plan("image: alpine\nttlSecondsAfterFinished: 5")
    assert caplog.messages == [
        "task 'task': ttlSecondsAfterFinished 5 is below 60; using 60 so logs can still be read"
    ]
