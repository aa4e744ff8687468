"""Issue 15 items 4-6: what the operator gives every task (default secrets, fixed variables, the
Secrets configs may name), install-time security contexts, and placement (operator defaults and
the task fields `nodeSelector` and `tolerations`)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from executor.app.lint import lint_file
from executor.app.runonce import ignored_note
from executor.app.service import Service
from executor.backends.local.backend import LocalBackend
from executor.config.schema import build_schema
from executor.planner import plan_action
from executor.policy import PolicyError, check_operator_contexts, warn_if_secrets_open
from executor.settings import Settings
from executor.support.envvars import SettingsError

from .conftest import config, make_event, one_task, problems
from .test_cli import job_executor
from .test_render import job_for, specs_for


def settings_of(**env: str) -> Settings:
    return Settings.from_env(env)


def container_env(job: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}


# ---- item 4: default secrets, extra env, the allowed Secrets ----

SECRET_TASK = """
image: alpine:3.20
env:
  - {name: db-creds, valueFrom: secret}
  - {name: HTTP_PROXY, valueFrom: string, value: http://task-proxy}
"""


def test_default_secrets_come_first_so_the_tasks_own_win() -> None:
    settings = settings_of(JOB_DEFAULT_SECRETS="registry-creds, db-creds")
    job = job_for(SECRET_TASK, settings)
    env_from = job["spec"]["template"]["spec"]["containers"][0]["envFrom"]
    # Later envFrom entries win on Kubernetes: the task's db-creds after the operator's defaults.
    assert env_from == [{"secretRef": {"name": "registry-creds"}}, {"secretRef": {"name": "db-creds"}}]
    assert job_for("image: alpine:3.20", settings)["spec"]["template"]["spec"]["containers"][0][
        "envFrom"
    ] == [
        {"secretRef": {"name": "registry-creds"}},
        {"secretRef": {"name": "db-creds"}},
    ]


def test_extra_env_reaches_every_task_and_the_task_wins() -> None:
    settings = settings_of(
        JOB_EXTRA_ENV=json.dumps({"HTTP_PROXY": "http://proxy:3128", "TEAM": "qa", "KEPTN_PROJECT": "fake"})
    )
    env = container_env(job_for(SECRET_TASK, settings))
    assert env["TEAM"] == "qa"
    assert env["HTTP_PROXY"] == "http://task-proxy"  # the task's env entry
    assert env["KEPTN_PROJECT"] == "sockshop"  # the event's, not the operator's
    assert container_env(job_for("image: alpine:3.20", settings))["HTTP_PROXY"] == "http://proxy:3128"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("JOB_EXTRA_ENV", '["A=1"]', "JOB_EXTRA_ENV must be a JSON object of variable names to strings"),
        ("JOB_EXTRA_ENV", '{"A B": "1"}', "'A B' is not a variable name"),
        ("JOB_EXTRA_ENV", "{A: 1}", "JOB_EXTRA_ENV is not JSON"),
        ("JOB_DEFAULT_SECRETS", "Bad_Secret", "JOB_DEFAULT_SECRETS='Bad_Secret': write a Kubernetes name"),
        ("ALLOWED_SECRET_LIST", " , ", "ALLOWED_SECRET_LIST=' , ' names no Secret"),
    ],
)
def test_operator_env_settings_are_checked_at_start(name: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError) as caught:
        settings_of(**{name: value})
    assert message in str(caught.value)


TWO_ACTIONS = """\
apiVersion: v2
actions:
  - name: "first"
    events: [{name: "sh.keptn.event.test.triggered"}]
    tasks:
      - name: "fine"
        image: "alpine:3.20"
        env: [{name: ci-token, valueFrom: secret}]
  - name: "second"
    events: [{name: "sh.keptn.event.other.triggered"}]
    tasks:
      - name: "greedy"
        image: "alpine:3.20"
        env:
          - name: prod-db
            valueFrom: secret
"""


def test_a_config_naming_a_secret_outside_the_list_runs_nothing() -> None:
    cfg = config(TWO_ACTIONS)
    settings = settings_of(ALLOWED_SECRET_LIST="ci-*,shared")
    # The event matches the first action only, whose Secret is allowed; the config still runs nothing.
    with pytest.raises(PolicyError) as caught:
        plan_action(make_event(), cfg.actions[0], cfg, settings)
    assert str(caught.value) == (
        "task 'greedy' of action 'second': Forbidden: Secret prod-db is not in the allowed list "
        "(ALLOWED_SECRET_LIST)."
    )
    # Empty: any Secret (with a warning at start); the default secrets need no entry.
    assert plan_action(make_event(), cfg.actions[0], cfg, Settings())
    listed = settings_of(ALLOWED_SECRET_LIST="ci-*,prod-*", JOB_DEFAULT_SECRETS="registry")
    (spec,) = plan_action(make_event(), cfg.actions[0], cfg, listed)
    assert spec.secret_refs == ("registry", "ci-token")


def test_lint_names_the_forbidden_secret_at_its_line(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(TWO_ACTIONS)
    found = [str(p) for p in lint_file(str(path), settings_of(ALLOWED_SECRET_LIST="ci-*"))]
    assert found == [
        f"{path}:15: task 'greedy': Forbidden: Secret prod-db is not in the allowed list (ALLOWED_SECRET_LIST)."
    ]


def test_an_open_secret_list_is_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        warn_if_secrets_open(())
        warn_if_secrets_open(("ci-*",))
    assert [r.getMessage() for r in caplog.records if "ALLOWED_SECRET_LIST" in r.getMessage()] == [
        "ALLOWED_SECRET_LIST is empty or '*': a config may name any Secret in its namespace; set a list of globs"
    ]


def test_the_local_backend_gives_default_secrets_from_its_folder(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    (secrets / "registry-creds").mkdir(parents=True)
    (secrets / "registry-creds" / "REGISTRY_USER").write_text("robot\n")
    (secrets / "db-creds").mkdir()
    (secrets / "db-creds" / "REGISTRY_USER").write_text("task-wins\n")
    (secrets / "db-creds" / "DB_PASSWORD").write_text("hunter2\n")
    (tmp_path / "keptn").mkdir()
    settings = settings_of(JOB_DEFAULT_SECRETS="registry-creds", JOB_EXTRA_ENV='{"TEAM": "qa"}')
    (spec,) = specs_for(one_task(SECRET_TASK + "cmd: [env]"), settings=settings)
    _argv, env, _cwd = LocalBackend(tmp_path / "work", secrets_dir=secrets)._command(spec, str(tmp_path))
    assert (env["REGISTRY_USER"], env["DB_PASSWORD"], env["TEAM"]) == ("task-wins", "hunter2", "qa")
    (only_default,) = specs_for(one_task("image: alpine:3.20\ncmd: [env]"), settings=settings)
    _argv, env, _cwd = LocalBackend(tmp_path / "work", secrets_dir=secrets)._command(
        only_default, str(tmp_path)
    )
    assert env["REGISTRY_USER"] == "robot" and "DB_PASSWORD" not in env


# ---- item 5: security contexts at install time ----


def test_task_context_over_the_operators_over_the_built_in() -> None:
    settings = settings_of(
        JOB_SECURITY_CONTEXT='{"runAsUser": 1000, "runAsGroup": 1000, "readOnlyRootFilesystem": false}',
        JOB_POD_SECURITY_CONTEXT='{"fsGroup": 2000, "supplementalGroups": [3000]}',
    )
    job = job_for("image: alpine:3.20\nsecurityContext: {runAsUser: 7000}", settings)
    pod = job["spec"]["template"]["spec"]
    assert pod["containers"][0]["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 7000,  # the task's
        "runAsGroup": 1000,  # the operator's
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": False,  # the operator's
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert pod["securityContext"] == {"fsGroup": 2000, "supplementalGroups": [3000]}


def test_the_pod_has_an_fs_group_so_keptn_is_writable_for_any_user() -> None:
    pod = job_for("image: alpine:3.20\nsecurityContext: {runAsUser: 4242}")["spec"]["template"]["spec"]
    assert pod["securityContext"] == {"fsGroup": 65532}
    assert pod["volumes"][0] == {"name": "job-volume", "emptyDir": {}}


def test_the_privileged_policy_judges_the_merged_context() -> None:
    settings = settings_of(JOB_SECURITY_CONTEXT='{"capabilities": {"add": ["NET_BIND_SERVICE"]}}')
    job = job_for("image: alpine:3.20", settings)
    assert job["spec"]["template"]["spec"]["containers"][0]["securityContext"]["capabilities"] == {
        "drop": ["ALL"],
        "add": ["NET_BIND_SERVICE"],
    }
    with pytest.raises(PolicyError, match=r"asks for capabilities\.add SYS_PTRACE"):
        job_for("image: alpine:3.20\nsecurityContext: {capabilities: {add: [SYS_PTRACE]}}", settings)
    # The operator's privileged context is refused at start unless privileged jobs are allowed.
    privileged = settings_of(JOB_SECURITY_CONTEXT='{"privileged": true}')
    with pytest.raises(SettingsError, match=r"JOB_SECURITY_CONTEXT: asks for privileged: true"):
        check_operator_contexts(privileged.defaults, allow_privileged=False)
    check_operator_contexts(privileged.defaults, allow_privileged=True)
    unconfined = settings_of(JOB_POD_SECURITY_CONTEXT='{"seccompProfile": {"type": "Unconfined"}}')
    with pytest.raises(
        SettingsError, match=r"JOB_POD_SECURITY_CONTEXT: asks for seccompProfile.type: Unconfined"
    ):
        check_operator_contexts(unconfined.defaults, allow_privileged=False)
    bad_id = settings_of(JOB_POD_SECURITY_CONTEXT='{"fsGroup": -1}')
    with pytest.raises(SettingsError, match=r"securityContext.fsGroup -1 must be between 0 and 2147483647"):
        check_operator_contexts(bad_id.defaults, allow_privileged=True)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("JOB_SECURITY_CONTEXT", '{"runAsUsr": 1}', "JOB_SECURITY_CONTEXT: unknown field 'runAsUsr'"),
        ("JOB_SECURITY_CONTEXT", '{"runAsUser": "1"}', "JOB_SECURITY_CONTEXT.runAsUser must be int, not str"),
        ("JOB_POD_SECURITY_CONTEXT", '{"fsGroup": true}', "JOB_POD_SECURITY_CONTEXT.fsGroup must be int"),
        ("JOB_POD_SECURITY_CONTEXT", "[]", "JOB_POD_SECURITY_CONTEXT must be an object"),
    ],
)
def test_security_context_settings_are_checked_at_start(name: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError) as caught:
        settings_of(**{name: value})
    assert message in str(caught.value)


# ---- item 6: placement ----

AFFINITY = {
    "nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [
                {"matchExpressions": [{"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]}]}
            ]
        }
    }
}
PLACED = settings_of(
    JOB_NODE_SELECTOR='{"pool": "jobs", "disktype": "hdd"}',
    JOB_TOLERATIONS='[{"key": "dedicated", "operator": "Equal", "value": "jobs", "effect": "NoSchedule"}]',
    JOB_AFFINITY=json.dumps(AFFINITY),
)
PLACED_TASK = """
image: alpine:3.20
nodeSelector: {disktype: ssd, zone: 1}
tolerations:
  - {key: gpu, operator: Exists, effect: NoSchedule}
  - {key: spot, operator: Exists, effect: NoExecute, tolerationSeconds: 300}
"""


def test_operator_placement_reaches_every_pod_and_the_task_adds_its_own() -> None:
    pod = job_for(PLACED_TASK, PLACED)["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"pool": "jobs", "disktype": "ssd", "zone": "1"}
    assert pod["tolerations"] == [
        {"key": "dedicated", "operator": "Equal", "value": "jobs", "effect": "NoSchedule"},
        {"key": "gpu", "operator": "Exists", "effect": "NoSchedule"},
        {"key": "spot", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
    ]
    assert pod["affinity"] == AFFINITY
    plain = job_for("image: alpine:3.20")["spec"]["template"]["spec"]
    assert not {"nodeSelector", "tolerations", "affinity"} & set(plain)


def test_render_shows_placement(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(one_task(PLACED_TASK))
    event = tmp_path / "event.json"
    event.write_text(make_event().to_json())
    result = job_executor("render", "--config", str(path), "--event", str(event), env=dict(PLACED_ENV))
    assert result.returncode == 0, result.stderr
    assert "nodeSelector:" in result.stdout and "tolerationSeconds: 300" in result.stdout
    assert "nodeAffinity:" in result.stdout


PLACED_ENV = {
    "JOB_NODE_SELECTOR": '{"pool": "jobs"}',
    "JOB_AFFINITY": json.dumps(AFFINITY),
}


@pytest.mark.parametrize(
    ("lines", "line", "message"),
    [
        ("nodeSelector: [ssd]", 9, "nodeSelector must be a mapping of node labels to values"),
        ("nodeSelector: {disk_type/x: ssd}", 9, "nodeSelector: 'disk_type/x' is not a valid label key"),
        ("tolerations: {key: gpu}", 9, "'tolerations' must be a list of tolerations"),
        (
            "tolerations:\n  - {key: gpu, operator: Exist}",
            10,
            "tolerations[0].operator 'Exist': write Equal or Exists",
        ),
        (
            "tolerations:\n  - {key: gpu, effect: NoExecute}\n  - {value: x}",
            11,
            "tolerations[1]: operator must be Exists when key is empty",
        ),
        (
            "tolerations:\n  - {key: gpu, operator: Exists, tolerationSeconds: 5}",
            10,
            "tolerationSeconds needs effect NoExecute",
        ),
        (
            "tolerations:\n  - {key: gpu, operator: Exists, value: x}",
            10,
            "value must be empty when operator is Exists",
        ),
        ("tolerations:\n  - {key: gpu, operater: Exists}", 10, "unknown field 'operater'"),
    ],
)
def test_lint_reports_placement_mistakes_at_their_line(
    tmp_path: Path, lines: str, line: int, message: str
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(one_task("image: alpine:3.20\n" + lines))
    found = [str(p) for p in lint_file(str(path), Settings())]
    assert any(text.startswith(f"{path}:{line}: ") and message in text for text in found), found


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("JOB_NODE_SELECTOR", '{"pool": 1}', "JOB_NODE_SELECTOR.pool: 1 is not a valid label value"),
        ("JOB_NODE_SELECTOR", '["pool"]', "JOB_NODE_SELECTOR must be a mapping of node labels"),
        ("JOB_TOLERATIONS", '{"key": "a"}', "JOB_TOLERATIONS must be a JSON list of tolerations"),
        ("JOB_TOLERATIONS", '[{"key": "a", "effect": "Never"}]', "JOB_TOLERATIONS[0].effect 'Never'"),
        ("JOB_AFFINITY", '{"nodeAfinity": {}}', "JOB_AFFINITY: 'nodeAfinity' is not nodeAffinity"),
        ("JOB_AFFINITY", "nodeAffinity", "JOB_AFFINITY is not JSON"),
    ],
)
def test_placement_settings_are_checked_at_start(name: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError) as caught:
        settings_of(**{name: value})
    assert message in str(caught.value)


def test_the_schema_knows_the_placement_fields() -> None:
    validator = Draft202012Validator(build_schema())
    good = yaml.safe_load(one_task(PLACED_TASK))
    assert not list(validator.iter_errors(good))
    bad = yaml.safe_load(one_task("image: alpine:3.20\ntolerations: [{key: gpu, operator: Exist}]"))
    assert list(validator.iter_errors(bad))
    assert problems(one_task("image: alpine:3.20\ntolerations: [{key: gpu, operator: Exist}]"))


def test_run_says_the_local_backend_ignores_placement() -> None:
    (task,) = config(one_task(PLACED_TASK)).actions[0].tasks
    assert ignored_note(task) == (
        "note: task 'task' runs its cmd on this host; ignored: image alpine:3.20, nodeSelector, tolerations"
    )


SECRET_AS_FILES = """\
apiVersion: v2
actions:
  - name: "deploy"
    events:
      - name: "sh.keptn.event.deployment.triggered"
    tasks:
      - name: "kubectl"
        image: "alpine:3.20"
        secretFiles:
          - name: prod-kubeconfig
            mountPath: /etc/kube
"""


def test_a_secret_given_as_files_is_held_to_the_allowed_list_too(tmp_path: Path) -> None:
    cfg = config(SECRET_AS_FILES)
    with pytest.raises(PolicyError) as caught:
        plan_action(make_event(), cfg.actions[0], cfg, settings_of(ALLOWED_SECRET_LIST="ci-*"))
    assert "Forbidden: Secret prod-kubeconfig is not in the allowed list" in str(caught.value)
    assert plan_action(make_event(), cfg.actions[0], cfg, settings_of(ALLOWED_SECRET_LIST="prod-*"))
    path = tmp_path / "config.yaml"
    path.write_text(SECRET_AS_FILES)
    found = [str(p) for p in lint_file(str(path), settings_of(ALLOWED_SECRET_LIST="ci-*"))]
    assert found == [
        f"{path}:10: task 'kubectl': Forbidden: Secret prod-kubeconfig is not in the allowed list "
        "(ALLOWED_SECRET_LIST)."
    ]


@pytest.mark.parametrize(
    ("variable", "value"),
    [("ALLOWED_IMAGE_LIST", "docker.io/library/*,ghcr.io/[org/*"), ("ALLOWED_SECRET_LIST", "ci-*,{prod")],
)
def test_an_allow_list_entry_that_is_not_a_glob_stops_the_start(variable: str, value: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Service(settings_of(**{variable: value, "STATE_DIR": "/nonexistent-never-created"}))
    assert str(caught.value).startswith(f"{variable}: entry ")
    assert "is not a glob" in str(caught.value)
