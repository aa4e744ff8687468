"""Issue 12, items 1-9: configs that JES accepts must mean here what they meant in JES.

JES sources (keptn-contrib/job-executor-service) behind the expected values:
- pkg/utils/imagefilterlist.go: the allow-list is a list of github.com/gobwas/glob patterns.
- pkg/config/config.go: the config structs (yaml.v2, `*Resources`, plain strings for namespace,
  imagePullPolicy and quantities, `JSONPath{Property, Match}`) and Action.IsEventMatch.
- pkg/k8sutils/job.go: CreateK8sJob, generateEnvFromEvent, generateK8sJobLabels.
- pkg/k8sutils/resourcerequirements.go: empty quantities are skipped.
- pkg/eventhandler/eventhandlers.go: job name and JobDetails (TaskIndex: index, name index+1).
- cmd/job-executor-service/main.go: settings, FULL_DEPLOYMENT_NAME, start-up checks.
- test/data/e2e/envvar.config.yaml, test/events/e2e/envvar.triggered.json, test/e2e/envvar_test.go.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from datetime import datetime
from pathlib import Path

import pytest

from .conftest import (
    cli,
    env_of,
    finished,
    free_port,
    job_container,
    jobs,
    make_event,
    objects,
    one_task,
    output,
    write_config,
)

# --- item 1: allow-list glob syntax ---------------------------------------------------------


def allowed(tmp_path: Path, image: str, allow_list: str) -> bool:
    """Whether `render` lets `image` run under ALLOWED_IMAGE_LIST=`allow_list`."""
    config = write_config(tmp_path / re.sub(r"[^A-Za-z0-9]", "_", image), one_task(image))
    event = make_event(tmp_path / "event.json")
    result = cli("render", "--config", str(config), "--event", str(event), "--allowed-images", allow_list)
    if result.returncode == 0:
        assert jobs(result.stdout), result.stderr
        return True
    assert "does not match configured image allowlist" in result.stderr, result.stderr
    return False


# gobwas/glob syntax (pkg/utils/imagefilterlist.go compiles each entry with glob.Compile and no
# separators, so `*` also crosses `/`): `?` one character, `[AB]` a class, `[!a]` a negated
# class, `{a,b}` alternatives.
@pytest.mark.parametrize(
    ("allow_list", "image", "expected"),
    [
        ("docker.io/[AB]/x", "docker.io/A/x", True),
        ("docker.io/[AB]/x", "docker.io/C/x", False),
    ],
)
def test_item01_allowlist_character_class(
    tmp_path: Path, allow_list: str, image: str, expected: bool
) -> None:
    assert allowed(tmp_path, image, allow_list) is expected


@pytest.mark.parametrize(
    ("allow_list", "image", "expected"),
    [
        ("docker.io/?lpine", "docker.io/alpine", True),
        ("docker.io/?lpine", "docker.io/lpine", False),
    ],
)
def test_item01_allowlist_question_mark(tmp_path: Path, allow_list: str, image: str, expected: bool) -> None:
    assert allowed(tmp_path, image, allow_list) is expected


@pytest.mark.parametrize(
    ("allow_list", "image", "expected"),
    [
        ("docker.io/[!b]lpine", "docker.io/alpine", True),
        ("docker.io/[!b]lpine", "docker.io/blpine", False),
    ],
)
def test_item01_allowlist_negated_class(tmp_path: Path, allow_list: str, image: str, expected: bool) -> None:
    assert allowed(tmp_path, image, allow_list) is expected


@pytest.mark.parametrize(
    ("allow_list", "image", "expected"),
    [
        ("docker.io/{alpine,busybox}:*", "docker.io/busybox:1.36", True),
        ("docker.io/{alpine,busybox}:*", "docker.io/nginx:1.27", False),
    ],
)
def test_item01_allowlist_alternatives(tmp_path: Path, allow_list: str, image: str, expected: bool) -> None:
    assert allowed(tmp_path, image, allow_list) is expected


# --- item 2: env names with '-' -------------------------------------------------------------

# JES's own end-to-end case: test/data/e2e/envvar.config.yaml (the secret task left out: `run`
# has no cluster) with test/events/e2e/envvar.triggered.json; expected lines from
# test/e2e/envvar_test.go. JES put the names into the pod spec unchanged (pkg/k8sutils/job.go
# generateEnvFromEvent), and `E2E-x` is a valid Kubernetes env name (C_IDENTIFIER is not required
# since Kubernetes 1.8's relaxed env var names).
ENVVAR_CONFIG = """
apiVersion: v2
actions:
  - name: "Env vars e2e test"
    events:
      - name: "sh.keptn.event.deployment.triggered"
    tasks:
      - name: "Print Labels"
        image: "alpine"
        cmd: ["sh"]
        args: ["-c", "env|grep LABELS_"]
      - name: "Print json path from event"
        image: "alpine"
        env:
          - name: "E2E-jsonPathLabel"
            value: "$.data.labels.jsonPathLabel"
            valueFrom: event
          - name: "E2E-jsonPathArray"
            value: "$.data.additionalData.jsonPathArray[1]"
            valueFrom: event
          - name: "E2E-EVENT"
            value: "$.data.additionalData"
            valueFrom: event
            as: json
        # JES's e2e config runs `sh -c "env|grep E2E"` in alpine, whose busybox sh passes on
        # names with '-'; on a host whose /bin/sh is dash the task's own shell would drop them,
        # so the task prints its environment itself (what reaches the task is what is tested).
        cmd: ["env"]
      - name: "Print from string literal"
        image: "alpine"
        env:
          - name: E2E_DATA_DIR
            valueFrom: string
            value: /tmp/data
        cmd: ["sh"]
        args: ["-c", "env|grep E2E"]
"""


def test_item02_env_names_with_hyphen_reach_the_task(tmp_path: Path) -> None:
    config = write_config(tmp_path, ENVVAR_CONFIG)
    event = make_event(
        tmp_path / "event.json",
        "sh.keptn.event.deployment.triggered",
        labels={"e2e-label": "EXAMPLE_LABEL", "jsonPathLabel": "JSON_PATH_LABEL_VALUE"},
        additionalData={"jsonPathArray": ["<not-displayed>", "<displayed>"]},
    )
    result = cli("run", "--config", str(config), "--event", str(event), timeout=90)
    assert result.returncode == 0, output(result)
    data = finished(result.stdout)["data"]
    assert (data["status"], data["result"]) == ("succeeded", "pass")
    lines = set(data["message"].splitlines())
    assert "LABELS_E2E_LABEL=EXAMPLE_LABEL" in lines
    assert "LABELS_JSONPATHLABEL=JSON_PATH_LABEL_VALUE" in lines
    assert "E2E_DATA_DIR=/tmp/data" in lines
    # The three names with '-' (dropped today by the local backend):
    assert "E2E-jsonPathLabel=JSON_PATH_LABEL_VALUE" in lines
    assert "E2E-jsonPathArray=<displayed>" in lines
    # JES printed Go's HTML-escaped JSON (\u003c); JSON text is the contract, so plain '<'.
    assert 'E2E-EVENT={"jsonPathArray":["<not-displayed>","<displayed>"]}' in lines


def test_item02_env_names_with_hyphen_are_rendered(tmp_path: Path) -> None:
    # Kubernetes side of the same case (passes today: guards the render path).
    config = write_config(tmp_path, ENVVAR_CONFIG)
    event = make_event(
        tmp_path / "event.json",
        "sh.keptn.event.deployment.triggered",
        labels={"jsonPathLabel": "JSON_PATH_LABEL_VALUE"},
        additionalData={"jsonPathArray": ["a", "b"]},
    )
    result = cli("render", "--config", str(config), "--event", str(event))
    assert result.returncode == 0, result.stderr
    env = env_of(job_container(jobs(result.stdout)[1]))
    assert env["E2E-jsonPathLabel"] == "JSON_PATH_LABEL_VALUE"
    assert env["E2E-jsonPathArray"] == "b"


# --- item 3: `as:` case-insensitive; YAML without the end marker ----------------------------


def as_config(json_word: str, yaml_word: str) -> str:
    env = "env:\n"
    for name, value, word in (
        ("E2E_JSON", "$.data.deployment", json_word),
        ("E2E_YAML", "$.data.deployment.deploymentstrategy", yaml_word),
        ("E2E_YAML_MAP", "$.data.deployment", yaml_word),
    ):
        env += f'  - name: {name}\n    value: "{value}"\n    valueFrom: event\n    as: {word}\n'
    return one_task(extra=env)


@pytest.mark.parametrize(("json_word", "yaml_word"), [("JSON", "Yaml"), ("Json", "YAML")])
def test_item03_as_is_case_insensitive(tmp_path: Path, json_word: str, yaml_word: str) -> None:
    # pkg/k8sutils/job.go generateEnvFromEvent: strings.EqualFold(env.Formatting, "yaml"/"json").
    config = write_config(tmp_path, as_config(json_word, yaml_word))
    lint = cli("lint", str(config))
    assert lint.returncode == 0, output(lint)
    event = make_event(tmp_path / "event.json", deployment={"deploymentstrategy": "user_managed"})
    result = cli("render", "--config", str(config), "--event", str(event))
    assert result.returncode == 0, result.stderr
    env = env_of(job_container(jobs(result.stdout)[0]))
    assert json.loads(env["E2E_JSON"]) == {"deploymentstrategy": "user_managed"}


def test_item03_yaml_scalar_has_no_end_marker(tmp_path: Path) -> None:
    # JES: yaml.Marshal("user_managed") == "user_managed\n" (gopkg.in/yaml.v2); PyYAML's
    # safe_dump of a bare scalar adds the document end marker "...\n", which JES never wrote.
    config = write_config(tmp_path, as_config("json", "yaml"))
    event = make_event(tmp_path / "event.json", deployment={"deploymentstrategy": "user_managed"})
    result = cli("render", "--config", str(config), "--event", str(event))
    assert result.returncode == 0, result.stderr
    env = env_of(job_container(jobs(result.stdout)[0]))
    assert env["E2E_YAML"] == "user_managed\n"
    assert env["E2E_YAML_MAP"] == "deploymentstrategy: user_managed\n"


# --- item 4: `resources:` null means absent ---------------------------------------------------

DEFAULTS = [
    "--default-limits-cpu",
    "1",
    "--default-limits-memory",
    "512Mi",
    "--default-requests-cpu",
    "50m",
    "--default-requests-memory",
    "128Mi",
]


def test_item04_null_resources_get_defaults(tmp_path: Path) -> None:
    # pkg/config/config.go: `Resources *Resources`; yaml.v2 leaves a null pointer nil, and
    # pkg/k8sutils/job.go uses jobSettings.DefaultResourceRequirements when task.Resources == nil.
    config = write_config(tmp_path, one_task(extra="resources:\n"))
    event = make_event(tmp_path / "event.json")
    result = cli("render", "--config", str(config), "--event", str(event), *DEFAULTS)
    assert result.returncode == 0, result.stderr
    resources = job_container(jobs(result.stdout)[0])["resources"]
    assert resources == {
        "limits": {"cpu": "1", "memory": "512Mi"},
        "requests": {"cpu": "50m", "memory": "128Mi"},
    }


# --- item 5: empty strings JES treats as unset ------------------------------------------------


def render_one(tmp_path: Path, extra: str, *args: str, **data: object) -> dict[str, object]:
    config = write_config(tmp_path, one_task(extra=extra))
    lint = cli("lint", str(config))
    assert lint.returncode == 0, output(lint)
    event = make_event(tmp_path / "event.json", **data)
    result = cli("render", "--config", str(config), "--event", str(event), *args)
    assert result.returncode == 0, result.stderr
    (job,) = jobs(result.stdout)
    return job


def test_item05_empty_namespace_means_job_namespace(tmp_path: Path) -> None:
    # pkg/eventhandler/eventhandlers.go: namespace := JobNamespace; if len(task.Namespace) > 0 {...}
    job = render_one(tmp_path, 'namespace: ""', "--namespace", "jobs")
    assert job["metadata"]["namespace"] == "jobs"  # type: ignore[index]


def test_item05_empty_pull_policy_is_unset(tmp_path: Path) -> None:
    # pkg/k8sutils/job.go: ImagePullPolicy: v1.PullPolicy(task.ImagePullPolicy): "" is omitted and
    # Kubernetes applies its default.
    job = render_one(tmp_path, 'imagePullPolicy: ""')
    assert "imagePullPolicy" not in job_container(job)


def test_item05_empty_quantity_is_left_out(tmp_path: Path) -> None:
    # pkg/k8sutils/resourcerequirements.go createResourceList: `if cpu != ""` / `if memory != ""`.
    extra = (
        'resources:\n  limits:\n    cpu: ""\n    memory: 512Mi\n  requests:\n    cpu: 50m\n    memory: ""\n'
    )
    job = render_one(tmp_path, extra)
    assert job_container(job)["resources"] == {"limits": {"memory": "512Mi"}, "requests": {"cpu": "50m"}}


def jsonpath_without_match(tmp_path: Path, marker: object) -> subprocess.CompletedProcess[str]:
    config = write_config(
        tmp_path,
        """
        apiVersion: v2
        actions:
          - name: "Action"
            events:
              - name: "sh.keptn.event.test.triggered"
                jsonpath:
                  property: "$.data.marker"
            tasks:
              - name: "Task"
                image: "alpine:3.20"
                cmd: ["true"]
        """,
    )
    lint = cli("lint", str(config))
    assert lint.returncode == 0, output(lint)
    event = make_event(tmp_path / f"event-{marker}.json", marker=marker)
    return cli("render", "--config", str(config), "--event", str(event))


def test_item05_jsonpath_without_match_matches_empty_string(tmp_path: Path) -> None:
    # pkg/config/config.go: JSONPath.Match is a plain string, "" when absent, and IsEventMatch
    # compares `value == event.JSONPath.Match`.
    result = jsonpath_without_match(tmp_path, "")
    assert result.returncode == 0, result.stderr
    assert len(jobs(result.stdout)) == 1
    result = jsonpath_without_match(tmp_path, "x")
    assert result.returncode == 0, result.stderr
    assert jobs(result.stdout) == []


@pytest.mark.parametrize(
    "text", ["apiVersion: v2\nactions:\n", "apiVersion: v2\n", "apiVersion: v2\nactions: null\n"]
)
def test_item05_null_or_absent_actions(tmp_path: Path, text: str) -> None:
    # pkg/config/config.go NewConfig: only apiVersion is required; `Actions []Action` stays empty.
    config = tmp_path / "job" / "config.yaml"
    config.parent.mkdir(parents=True)
    config.write_text(text)
    lint = cli("lint", str(config))
    assert lint.returncode == 0, output(lint)
    result = cli("render", "--config", str(config), "--event", str(make_event(tmp_path / "e.json")))
    assert result.returncode == 0, result.stderr
    assert objects(result.stdout) == []


# --- item 6: labels ---------------------------------------------------------------------------

TWO_TASKS = """
apiVersion: v2
actions:
  - name: "Grüße Welt"
    events:
      - name: "sh.keptn.event.test.triggered"
    tasks:
      - name: "Grüße Welt"
        image: "alpine:3.20"
        cmd: ["true"]
      - name: "-{long}.yz"
        image: "alpine:3.20"
        cmd: ["true"]
""".replace("{long}", "x" * 61)


def render_two(tmp_path: Path, env: dict[str, str] | None = None) -> list[dict[str, object]]:
    config = write_config(tmp_path, TWO_TASKS)
    event = make_event(tmp_path / "event.json")
    result = cli("render", "--config", str(config), "--event", str(event), env=env)
    assert result.returncode == 0, result.stderr
    found = jobs(result.stdout)
    assert len(found) == 2
    return found


def labels(job: dict[str, object]) -> dict[str, str]:
    return job["metadata"]["labels"]  # type: ignore[index,no-any-return]


def test_item06_task_index_label_is_zero_based(tmp_path: Path) -> None:
    # pkg/eventhandler/eventhandlers.go: JobDetails{TaskIndex: index} (0-based) while the Job name
    # ends in fmt.Sprintf("-%03d-%03d", actionIndex, index+1); pkg/k8sutils/job.go writes
    # strconv.Itoa(jobDetails.TaskIndex). JES's pkg/k8sutils/job_test.go expects "0" for the
    # first task.
    first, second = render_two(tmp_path)
    assert labels(first)["keptn.sh/jes-task-index"] == "0"
    assert labels(second)["keptn.sh/jes-task-index"] == "1"
    assert labels(first)["keptn.sh/jes-action-index"] == "0"
    assert first["metadata"]["name"].endswith("-000-001")  # type: ignore[index]
    assert second["metadata"]["name"].endswith("-000-002")  # type: ignore[index]


def test_item06_label_runs_of_invalid_characters_collapse(tmp_path: Path) -> None:
    # pkg/k8sutils/job.go sanitizeLabel: regexp `[^-a-z\dA-Z_.]+` -> "_" (one per run, on runes),
    # then cut to 63, then strings.Trim(label, "-_.").
    first, second = render_two(tmp_path)
    assert labels(first)["keptn.sh/jes-action"] == "Gr_e_Welt"
    assert labels(first)["keptn.sh/jes-task"] == "Gr_e_Welt"
    assert labels(second)["keptn.sh/jes-task"] == "x" * 61  # cut to 63 first, then trimmed


def test_item06_managed_by_follows_full_deployment_name(tmp_path: Path) -> None:
    # cmd/job-executor-service/main.go: FULL_DEPLOYMENT_NAME -> JobSettings.JesDeploymentName,
    # written as app.kubernetes.io/managed-by on the Job and on its pod template (pkg/k8sutils/job.go).
    for job in render_two(tmp_path, env={"FULL_DEPLOYMENT_NAME": "my-jes"}):
        assert labels(job)["app.kubernetes.io/managed-by"] == "my-jes"
        template_labels = job["spec"]["template"]["metadata"]["labels"]  # type: ignore[index]
        assert template_labels["app.kubernetes.io/managed-by"] == "my-jes"


# --- item 7: every setting is checked at start ------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DEFAULT_RESOURCE_LIMITS_CPU", "abc"),
        ("DEFAULT_RESOURCE_LIMITS_MEMORY", "lots"),
        ("DEFAULT_RESOURCE_REQUESTS_CPU", "x"),
        ("DEFAULT_RESOURCE_REQUESTS_MEMORY", "12 MB"),
        ("JOB_NAMESPACE", "Bad_Namespace"),
        ("DEFAULT_JOB_SERVICE_ACCOUNT", "Bad_Account"),
    ],
)
def test_item07_invalid_setting_is_refused_naming_it(tmp_path: Path, name: str, value: str) -> None:
    # cmd/job-executor-service/main.go: CreateResourceRequirements on the DEFAULT_RESOURCE_* values
    # at start, log.Fatalf("unable to create default resource requirements: ...").
    config = write_config(tmp_path, one_task())
    event = make_event(tmp_path / "event.json")
    result = cli("render", "--config", str(config), "--event", str(event), env={name: value})
    assert result.returncode != 0, f"{name}={value} rendered:\n{result.stdout}"
    assert name in result.stderr


def test_item07_invalid_default_flag_is_refused_naming_it(tmp_path: Path) -> None:
    config = write_config(tmp_path, one_task())
    event = make_event(tmp_path / "event.json")
    result = cli("render", "--config", str(config), "--event", str(event), "--default-limits-cpu", "abc")
    assert result.returncode != 0, result.stdout
    assert "DEFAULT_RESOURCE_LIMITS_CPU" in result.stderr or "--default-limits-cpu" in result.stderr


def test_item07_serve_refuses_invalid_default_at_start(tmp_path: Path) -> None:
    env = {"DEFAULT_RESOURCE_LIMITS_CPU": "abc", "STATE_DIR": str(tmp_path / "state")}
    try:
        result = cli(
            "serve", "--port", str(free_port()), "--state-dir", str(tmp_path / "state"), env=env, timeout=15
        )
    except subprocess.TimeoutExpired as exc:  # it started and served: the setting was not checked
        pytest.fail(f"serve started with DEFAULT_RESOURCE_LIMITS_CPU=abc: {exc.stderr!r}")
    assert result.returncode != 0
    assert "DEFAULT_RESOURCE_LIMITS_CPU" in output(result)


# --- item 8: lint applies the same policy as render -------------------------------------------


@pytest.mark.parametrize(
    "security_context",
    [
        "securityContext:\n  privileged: true\n",
        "securityContext:\n  allowPrivilegeEscalation: true\n",
        "securityContext:\n  capabilities:\n    add: [SYS_ADMIN]\n",
    ],
    ids=["privileged", "escalation", "sys-admin"],
)
def test_item08_lint_refuses_what_render_refuses(tmp_path: Path, security_context: str) -> None:
    # pkg/k8sutils/job.go: ErrPrivilegedContainerNotAllowed unless AllowPrivilegedJobs.
    config = write_config(tmp_path, one_task(extra=security_context))
    event = make_event(tmp_path / "event.json")
    render = cli("render", "--config", str(config), "--event", str(event))
    assert render.returncode == 1, render.stdout  # the policy in force (passes today)
    lint = cli("lint", str(config))
    assert lint.returncode == 1, output(lint)
    assert re.search(rf"^{re.escape(str(config))}:\d+: .*ALLOW_PRIVILEGED_JOBS", output(lint), re.M), output(
        lint
    )


def test_item08_lint_reads_allow_privileged_jobs(tmp_path: Path) -> None:
    config = write_config(tmp_path, one_task(extra="securityContext:\n  privileged: true\n"))
    lint = cli("lint", str(config), env={"ALLOW_PRIVILEGED_JOBS": "true"})
    assert lint.returncode == 0, output(lint)
    lint = cli("lint", str(config), env={"ALLOW_PRIVILEGED_JOBS": "false"})
    assert lint.returncode == 1, output(lint)


# --- item 9: maxPollDuration is never early ---------------------------------------------------


def test_item09_max_poll_duration_is_not_early(tmp_path: Path) -> None:
    # JES (pkg/k8sutils/job.go AwaitK8sJobDone) compares time.Now() against
    # pollingStart.Add(maxPollDuration), both full-precision times. Here the task prints its own
    # start time; the run must not stop it before maxPollDuration has passed. The launch is timed
    # so the task starts late in a second, where rounding the start down shows most.
    limit = 2
    config = write_config(
        tmp_path,
        one_task(extra=f"maxPollDuration: {limit}\n").replace(
            '["sh", "-c", "echo hello"]', '["sh", "-c", "date +%s.%N; sleep 30"]'
        ),
    )
    event = make_event(tmp_path / "event.json")
    for _ in range(40):  # wait (at most 1 s) for the fraction of the second to be about .5
        if 0.45 <= time.time() % 1 <= 0.55:
            break
        time.sleep(0.025)
    result = cli("run", "--config", str(config), "--event", str(event), timeout=60)
    ended = time.time()
    assert result.returncode != 0
    message = finished(result.stdout)["data"]["message"]
    assert "maxPollDuration" in message
    started = float(re.search(r"^(\d{9,}\.\d+)$", message, re.M).group(1))  # type: ignore[union-attr]
    assert ended - started >= limit, f"stopped after {ended - started:.3f} s"
    stopped = finished(result.stdout)["time"]
    reported = datetime.fromisoformat(stopped.replace("Z", "+00:00")).timestamp()
    assert reported - started >= limit - 0.01, f"finished event {reported - started:.3f} s after the start"
