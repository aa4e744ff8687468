"""The job config parser: the accepted format, and every error as FILE:LINE with a way out."""

from __future__ import annotations

import pytest

from executor.config.fields import MAX_ITEMS
from executor.config.model import EnvEntry, JsonPathFilter, Resources
from executor.config.parse import read_config_file
from executor.config.yamlload import MAX_CONFIG_BYTES, MAX_DEPTH, load_yaml
from executor.model.problems import ConfigError, Problem

from .conftest import RESOURCES, config, one_task, problems


def lines(found: list[Problem]) -> list[int]:
    return [p.line for p in found]


def only(found: list[Problem]) -> Problem:
    assert len(found) == 1, [str(p) for p in found]
    return found[0]


# ---- what is accepted ----


def test_full_task_is_read_into_the_model() -> None:
    cfg = config(
        """\
        apiVersion: v2
        actions:
          - name: "Run locust"
            silent: false
            events:
              - name: "sh.keptn.event.test.triggered"
                jsonpath:
                  property: "$.data.test.teststrategy"
                  match: "locust"
            tasks:
              - name: "Run locust tests"
                image: "locustio/locust"
                cmd: [locust]
                args: ["--host", "$(HOST)", 3]
                files: [/locust/basic.py, helm]
                env:
                  - {name: HOST, value: "$.data.url", valueFrom: event}
                  - {name: EVENT, value: "$", valueFrom: event, as: json}
                  - {name: locust-secret, valueFrom: secret}
                  - {name: N, value: 3, valueFrom: string}
                workingDir: /keptn
                resources: {limits: {cpu: 1, memory: 512Mi}, requests: {cpu: 0.5}}
                maxPollDuration: 1200
                namespace: carts
                annotations: {a.example.com/x: "1", b: 2}
                securityContext: {runAsUser: 7000}
                imagePullPolicy: Always
                serviceAccount: runner
                ttlSecondsAfterFinished: 600
                activeDeadlineSeconds: 30
        """
    )
    assert cfg.api_version == "v2" and cfg.source == "job/config.yaml"
    assert len(cfg.digest) == 64
    (action,) = cfg.actions
    assert (action.name, action.silent, action.index, action.line) == ("Run locust", False, 0, 3)
    (selector,) = action.events
    assert selector.jsonpath == JsonPathFilter("$.data.test.teststrategy", "locust")
    assert selector.line == 6
    (task,) = action.tasks
    assert task.line == 11
    assert task.cmd == ("locust",) and task.args == ("--host", "$(HOST)", "3")
    assert task.files == ("locust/basic.py", "helm")
    assert task.env == (
        EnvEntry("HOST", "event", "$.data.url", None, 17),
        EnvEntry("EVENT", "event", "$", "json", 18),
        EnvEntry("locust-secret", "secret", "", None, 19),
        EnvEntry("N", "string", "3", None, 20),
    )
    assert task.resources == Resources({"cpu": "1", "memory": "512Mi"}, {"cpu": "0.5"})
    assert task.annotations == {"a.example.com/x": "1", "b": "2"}
    assert (task.max_poll_duration, task.namespace, task.working_dir) == (1200, "carts", "/keptn")
    assert task.security_context == {"runAsUser": 7000}
    assert (task.image_pull_policy, task.service_account) == ("Always", "runner")
    assert (task.ttl_seconds_after_finished, task.active_deadline_seconds) == (600, 30)


def test_optional_fields_default_to_absent() -> None:
    task = config(one_task("image: alpine")).actions[0].tasks[0]
    assert task.resources is None  # no block: the settings' defaults apply
    assert task.max_poll_duration is None and task.ttl_seconds_after_finished is None
    assert task.security_context is None and task.annotations == {}
    assert task.env == () and task.files == ()


def test_a_null_resources_block_is_absent() -> None:
    # JES: `Resources *Resources` stays nil for `resources:` and the defaults apply.
    assert config(one_task("image: alpine\nresources:")).actions[0].tasks[0].resources is None


@pytest.mark.parametrize("block", ["resources: {}", "resources: {limits: {}, requests: {}}"])
def test_an_empty_resources_block_is_kept_as_empty_not_absent(block: str) -> None:
    task = config(one_task(f"image: alpine\n{block}")).actions[0].tasks[0]
    assert task.resources == Resources({}, {})


def test_resources_with_only_cpu() -> None:
    text = one_task("image: alpine\nresources:\n  limits:\n    cpu: 1\n  requests:\n    cpu: 50m")
    task = config(text).actions[0].tasks[0]
    assert task.resources == Resources({"cpu": "1"}, {"cpu": "50m"})


def test_annotations_as_a_list_of_one_key_maps() -> None:
    text = one_task("image: alpine\nannotations:\n  - key1: value1\n  - key2: value2")
    assert config(text).actions[0].tasks[0].annotations == {"key1": "value1", "key2": "value2"}


@pytest.mark.parametrize(("written", "text"), [("true", "true"), ("3", "3"), ("'x'", "x"), ("1.5", "1.5")])
def test_jsonpath_match_is_kept_as_text(written: str, text: str) -> None:
    cfg = config(
        f"""\
        apiVersion: v2
        actions:
          - name: a
            events:
              - name: e
                jsonpath: {{property: $.data.x, match: {written}}}
            tasks: [{{name: t, image: alpine}}]
        """
    )
    jsonpath = cfg.actions[0].events[0].jsonpath
    assert jsonpath is not None and jsonpath.match == text


def test_action_indexes_follow_config_order() -> None:
    cfg = config(
        """\
        apiVersion: v2
        actions:
          - {name: a, events: [{name: e}], tasks: [{name: t, image: i}]}
          - {name: b, events: [{name: e}], tasks: [{name: t, image: i}]}
        """
    )
    assert [(a.name, a.index) for a in cfg.actions] == [("a", 0), ("b", 1)]


def test_the_samples_parse() -> None:
    found = sorted(RESOURCES.rglob("job/config.yaml"))
    assert len(found) >= 10
    for path in found:
        assert read_config_file(str(path)).actions


# ---- FILE:LINE errors ----


def test_problem_format_is_file_line_message() -> None:
    assert str(Problem("a.yaml", 3, "boom")) == "a.yaml:3: boom"
    assert str(Problem("a.yaml", 3, "hmm", "warning")) == "a.yaml:3: warning: hmm"
    error = ConfigError([Problem("a.yaml", 1, "x"), Problem("a.yaml", 2, "y")])
    assert str(error) == "a.yaml:1: x\na.yaml:2: y"


def test_unknown_field_suggests_the_close_name() -> None:
    found = problems(one_task("image: alpine\nimagePulPolicy: Always"))
    problem = only(found)
    assert problem.file == "job/config.yaml"
    assert problem.line == 9
    assert "unknown field 'imagePulPolicy'" in problem.message
    assert "did you mean 'imagePullPolicy'?" in problem.message


def test_unknown_field_far_from_any_lists_the_allowed_ones() -> None:
    problem = only(
        problems(
            "apiVersion: v2\nzzz: 1\nactions:\n  - {name: a, events: [{name: e}], tasks: [{name: t, image: i}]}\n"
        )
    )
    assert problem.line == 2
    assert "allowed: apiVersion, actions" in problem.message


def test_unknown_field_in_each_kind_of_object() -> None:
    found = problems(
        """\
        apiVersion: v2
        actions:
          - name: a
            silentt: true
            events:
              - name: e
                jsonpth: {}
              - name: f
                jsonpath: {property: $.x, match: y, mach: z}
            tasks:
              - name: t
                image: i
                env:
                  - {name: X, valueFrom: string, value: v, from: x}
                resources: {limit: {}}
                securityContext: {runAsUsr: 1}
        """
    )
    assert lines(found) == [4, 7, 9, 14, 15, 16]
    assert "did you mean 'silent'?" in found[0].message
    assert "did you mean 'jsonpath'?" in found[1].message
    assert "did you mean 'match'?" in found[2].message
    assert "unknown field 'from' in env entry" in found[3].message
    assert "did you mean 'limits'?" in found[4].message
    assert "did you mean 'runAsUser'?" in found[5].message


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("cmd", "echo hi", "'cmd' must be a list of strings, not a string"),
        ("args", "{a: 1}", "'args' must be a list of strings, not a mapping"),
        ("files", "[[a]]", "'files' item 1 must be a string, not a list"),
        ("maxPollDuration", "'300'", "'maxPollDuration' must be a whole number of seconds, not a string"),
        ("maxPollDuration", "0", "'maxPollDuration' must be at least 1, not 0"),
        ("maxPollDuration", "1.5", "must be a whole number of seconds, not a number"),
        ("ttlSecondsAfterFinished", "-1", "'ttlSecondsAfterFinished' must be at least 0, not -1"),
        ("activeDeadlineSeconds", "true", "must be a whole number of seconds, not a boolean"),
        ("env", "HOST", "'env' must be a list, not a string"),
        ("env", "[3]", "env entry must be a mapping of keys to values, not a number"),
        ("workingDir", "keptn", "workingDir 'keptn' must be an absolute path"),
        ("namespace", "Carts_NS", "namespace 'Carts_NS' is not a valid Kubernetes namespace name"),
        ("imagePullPolicy", "always", "imagePullPolicy 'always': write one of Always, IfNotPresent, Never"),
        ("serviceAccount", "My Account", "serviceAccount 'My Account' is not a valid Kubernetes name"),
        ("annotations", "just-text", "'annotations' must be a mapping of names to strings"),
        (
            "annotations",
            "{'bad key': x}",
            "annotation key 'bad key' is not a valid Kubernetes annotation name",
        ),
        ("annotations", "{k: [1]}", "annotation 'k' must have a string value"),
        ("annotations", "[{k: a}, {k: b}]", "annotation 'k' is given twice"),
        ("securityContext", "[]", "'securityContext' must be a mapping, not a list"),
        ("securityContext", "{runAsUser: 'root'}", "securityContext.runAsUser must be int, not a string"),
        ("securityContext", "{privileged: 1}", "securityContext.privileged must be bool, not a number"),
        ("securityContext", "{runAsUser: true}", "securityContext.runAsUser must be int, not a boolean"),
        ("resources", "[]", "resources must be a mapping of keys to values, not a list"),
        ("resources", "{limits: [cpu]}", "'limits' must be a mapping such as cpu: 500m, not a list"),
        ("resources", "{limits: {cpu: lots}}", "limits.cpu: 'lots' is not a Kubernetes quantity"),
        ("resources", "{limits: {cpu: -1}}", "limits.cpu: -1 is not a Kubernetes quantity"),
        ("resources", "{limits: {cpu: 1.5.5}}", "is not a Kubernetes quantity"),
        ("resources", "{requests: {memory: 12 Mi}}", "requests.memory: '12 Mi' is not a Kubernetes quantity"),
        ("resources", "{requests: {'bad name!': 1}}", "'bad name!' is not a resource name"),
        ("files", "[../etc/passwd]", "escapes the resource tree ('..' is not allowed)"),
        ("files", "[/]", "names no file"),
        ("secretFiles", "{name: kube}", "'secretFiles' must be a list of {name, mountPath}, not a mapping"),
        ("secretFiles", "[{name: kube}]", "secretFiles entry is missing required field 'mountPath'"),
        (
            "secretFiles",
            "[{name: kube, mountPath: etc/kube}]",
            "mountPath 'etc/kube' must be an absolute path",
        ),
        ("secretFiles", "[{name: kube, mountPath: /keptn}]", "mountPath '/keptn' is /keptn or inside it"),
        ("secretFiles", "[{name: kube, mountPath: /keptn/kube}]", "is /keptn or inside it"),
        ("secretFiles", "[{name: kube, mountPath: //keptn/}]", "is /keptn or inside it"),
        ("secretFiles", "[{name: kube, mountPath: /etc/../keptn}]", "without '..'"),
        ("secretFiles", "[{name: kube, mountPath: /}]", "must name a folder below /"),
        ("secretFiles", "[{name: Kube_1, mountPath: /etc/kube}]", "secret name 'Kube_1' is not a valid"),
        (
            "secretFiles",
            "[{name: a, mountPath: /etc/kube}, {name: b, mountPath: /etc/kube/b}]",
            "mountPath '/etc/kube/b' overlaps '/etc/kube' of secret 'a'",
        ),
        ("continueOnError", "'true'", "'continueOnError' must be true or false, not a string"),
        ("continueOnError", "", "'continueOnError' must be true or false, not empty"),
    ],
)
def test_wrong_values_of_task_fields(field: str, value: str, expected: str) -> None:
    problem = only(problems(one_task(f"image: alpine\n{field}: {value}")))
    assert problem.line == 9, str(problem)
    assert expected in problem.message, str(problem)


@pytest.mark.parametrize("quantity", ["500m", "1", "0.5", ".5", "128Mi", "2Gi", "1e3", "1E-3", "+1", "10k"])
def test_kubernetes_quantities_are_accepted(quantity: str) -> None:
    task = (
        config(one_task(f"image: alpine\nresources: {{limits: {{cpu: '{quantity}'}}}}")).actions[0].tasks[0]
    )
    assert task.resources is not None and task.resources.limits == {"cpu": quantity}


def test_bad_quantity_line_points_at_the_value() -> None:
    found = problems(one_task("image: alpine\nresources:\n  limits:\n    cpu: 1\n    memory: 512MB"))
    assert lines(found) == [12]
    assert (
        "limits.memory: '512MB' is not a Kubernetes quantity (examples: 500m, 1, 128Mi, 2Gi)"
        in found[0].message
    )


@pytest.mark.parametrize(
    ("text", "line", "expected"),
    [
        ("actions: []\n", 1, "the job config is missing required field 'apiVersion'"),
        ("apiVersion: v1\nactions: []\n", 1, "apiVersion 'v1' is not supported; write 'apiVersion: v2'"),
        ("apiVersion: 2\nactions: []\n", 1, "apiVersion 2 is not supported; write 'apiVersion: v2'"),
        ("apiVersion:\nactions: []\n", 1, "missing required field 'apiVersion'"),
    ],
)
def test_api_version(text: str, line: int, expected: str) -> None:
    found = problems(text)
    assert any(p.line == line and expected in p.message for p in found), [str(p) for p in found]


def test_missing_required_fields_are_reported_where_the_parent_is() -> None:
    found = problems(
        """\
        apiVersion: v2
        actions:
          - name: a
            events:
              - jsonpath: {property: $.x}
            tasks:
              - name: t
              - image: i
        """
    )
    assert [(p.line, p.message) for p in found] == [
        (5, "event is missing required field 'name'"),
        (7, "task 1 is missing required field 'image'"),
        (8, "task 2 is missing required field 'name'"),
    ]


def test_missing_actions_and_wrong_root() -> None:
    # JES (pkg/config/config.go NewConfig) requires only apiVersion: no actions, nothing runs.
    assert config("apiVersion: v2\n").actions == ()
    assert config("apiVersion: v2\nactions:\n").actions == ()
    assert config("apiVersion: v2\nactions: []\n").actions == ()
    assert "must be a mapping of keys to values, not a list" in only(problems("- a\n- b\n")).message
    assert (
        "'actions' must be a list, not a mapping" in only(problems("apiVersion: v2\nactions: {}\n")).message
    )


def test_empty_lists_in_an_action() -> None:
    found = problems("apiVersion: v2\nactions:\n  - name: a\n    events: []\n    tasks: []\n")
    assert [(p.line, p.message) for p in found] == [
        (4, "'events' of action 'a' is empty; add at least one"),
        (5, "'tasks' of action 'a' is empty; add at least one"),
    ]


@pytest.mark.parametrize("name", ["''", "' '"])
def test_empty_action_name_is_an_error_not_a_dropped_action(name: str) -> None:
    found = problems(
        f"apiVersion: v2\nactions:\n  - name: {name}\n    events: [{{name: e}}]\n    tasks: [{{name: t, image: i}}]\n"
    )
    assert only(found).line == 3
    assert "action name is empty" in found[0].message


def test_empty_task_name_and_event_name() -> None:
    found = problems(
        "apiVersion: v2\nactions:\n  - name: a\n    events: [{name: ' '}]\n    tasks: [{name: '', image: i}]\n"
    )
    assert [p.line for p in found] == [4, 5]
    assert "event name is empty" in found[0].message
    assert "task name is empty" in found[1].message


def test_duplicate_names_of_actions_and_tasks() -> None:
    found = problems(
        """\
        apiVersion: v2
        actions:
          - name: a
            events: [{name: e}]
            tasks: [{name: t, image: i}, {name: t, image: i}]
          - name: a
            events: [{name: e}]
            tasks: [{name: t, image: i}]
        """
    )
    assert [(p.line, p.message) for p in found] == [
        (5, "two tasks are named 't'; give each a distinct name"),
        (6, "two actions are named 'a'; give each a distinct name"),
    ]


def test_wrong_types_in_actions_and_events() -> None:
    found = problems(
        """\
        apiVersion: v2
        actions:
          - name: [a]
            silent: "yes"
            events: {name: e}
            tasks:
              - name: t
                image: "two words"
          - just a string
        """
    )
    assert [(p.line, p.message) for p in found] == [
        (3, "'name' must be a string, not a list"),
        (4, "'silent' must be true or false, not a string"),
        (5, "'events' of action 1 must be a list, not a mapping"),
        (8, "image 'two words' is not an image reference (example: alpine:3.20)"),
        (9, "action 2 must be a mapping of keys to values, not a string"),
    ]


def test_silent_must_not_be_empty() -> None:
    found = problems(
        "apiVersion: v2\nactions:\n  - name: a\n    silent:\n    events: [{name: e}]\n    tasks: [{name: t, image: i}]\n"
    )
    assert (only(found).line, found[0].message) == (4, "'silent' must be true or false, not empty")


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("$.data.[", "invalid jsonpath '$.data.['"),
        ("", "jsonpath is empty"),
        ("$.data[?(@.x ==", "invalid jsonpath"),
    ],
)
def test_bad_jsonpath_in_a_selector(expression: str, expected: str) -> None:
    found = problems(
        f"""\
        apiVersion: v2
        actions:
          - name: a
            events:
              - name: e
                jsonpath:
                  property: "{expression}"
                  match: x
            tasks: [{{name: t, image: i}}]
        """
    )
    problem = only(found)
    assert problem.line == 7
    assert expected in problem.message
    assert "write a path such as $.data.test.teststrategy" in problem.message


def test_bad_jsonpath_in_env() -> None:
    problem = only(
        problems(one_task('image: i\nenv:\n  - name: X\n    valueFrom: event\n    value: "$..[["'))
    )
    assert problem.line == 12
    assert "invalid jsonpath" in problem.message


@pytest.mark.parametrize(
    ("entry", "line", "expected"),
    [
        ("{name: X, valueFrom: env}", 10, "valueFrom 'env': write one of event, secret, string"),
        ("{name: X, valueFrom: event, value: $.x, as: xml}", 10, "as 'xml': write one of json, yaml, string"),
        ("{name: X, valueFrom: event}", 10, "an env entry from the event needs 'value': a jsonpath"),
        ("{name: X, valueFrom: string}", 10, "an env entry from a string needs 'value'"),
        ("{name: my-secret, valueFrom: secret, as: json}", 10, "'as' applies to values from the event"),
        (
            "{name: My_Secret, valueFrom: secret}",
            10,
            "secret name 'My_Secret' is not a valid Kubernetes secret name",
        ),
        ("{name: '1=2', valueFrom: string, value: x}", 10, "env name '1=2' is not valid"),
        ("{name: X, valueFrom: string, value: [a]}", 10, "'value' must be a string, not a list"),
        (
            "{name: X, valueFrom: string, value: 2021-01-01}",
            10,
            "'value' must be a string, not a date (put it in quotes",
        ),
        ("{value: x, valueFrom: string}", 10, "env entry is missing required field 'name'"),
        ("{name: X}", 10, "env entry is missing required field 'valueFrom'"),
    ],
)
def test_env_entry_errors(entry: str, line: int, expected: str) -> None:
    problem = only(problems(one_task(f"image: i\nenv:\n  - {entry}")))
    assert problem.line == line, str(problem)
    assert expected in problem.message, str(problem)


def test_every_problem_is_reported_not_just_the_first() -> None:
    found = problems(one_task("image: i\nmaxPollDuration: x\nnamespace: BAD\nimagePullPolicy: sometimes"))
    assert lines(found) == [9, 10, 11]


# ---- YAML level ----


def test_duplicate_key_line() -> None:
    found = problems("apiVersion: v2\nactions:\n  - name: a\n    name: b\n")
    assert (only(found).line, found[0].message) == (4, "duplicate key 'name'")


def test_invalid_yaml_reports_its_line() -> None:
    text = one_task("image: alpine\ncmd: [echo, 'unterminated]\nargs: []")
    problem = only(problems(text))
    # An unclosed quote is reported where it opens, not at the end of the file.
    assert problem.line == 9
    assert problem.message == (
        "invalid YAML: found unexpected end of stream while scanning a quoted scalar that starts here"
    )
    problem = only(problems("apiVersion: v2\nactions:\n  - name: a\n   bad: indent\n"))
    assert problem.line == 4 and problem.message.startswith("invalid YAML")
    problem = only(problems("apiVersion: v2\nactions:\n\t- name: a\n"))
    assert problem.line == 3


@pytest.mark.parametrize(
    "value", ["!!python/object:os.system [ls]", "!!set {a, b}", "!!python/name:os.system ''", "!!omap [a: 1]"]
)
def test_tags_other_than_the_plain_ones_are_refused(value: str) -> None:
    problem = only(problems(f"apiVersion: v2\nactions: {value}\n"))
    assert problem.line == 2 and "invalid value" in problem.message


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "---\n"])
def test_empty_file(text: str) -> None:
    problem = only(problems(text))
    assert str(problem) == (
        "job/config.yaml:1: the file is empty; a job config starts with 'apiVersion: v2' and 'actions:'"
    )


def test_oversized_file(tmp_path: pytest.TempPathFactory) -> None:
    text = "apiVersion: v2\n# " + "x" * MAX_CONFIG_BYTES + "\n"
    problem = only(problems(text))
    assert problem.line == 1 and "the limit is" in problem.message
    path = tmp_path / "config.yaml"  # type: ignore[operator]
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        read_config_file(str(path))
    assert str(caught.value).startswith(f"{path}:1: file is {MAX_CONFIG_BYTES + 1} bytes")


def test_unreadable_file(tmp_path: pytest.TempPathFactory) -> None:
    missing = f"{tmp_path}/nope.yaml"
    with pytest.raises(ConfigError) as caught:
        read_config_file(missing)
    assert str(caught.value) == f"{missing}:0: cannot read file: No such file or directory"


def test_not_utf8() -> None:
    from executor.config.parse import parse_config

    with pytest.raises(ConfigError) as caught:
        parse_config(b"apiVersion: v2\nactions: [\xff]\n", "c.yaml")
    assert "not UTF-8" in str(caught.value)


def test_too_many_actions() -> None:
    action = "  - {name: a%d, events: [{name: e}], tasks: [{name: t, image: i}]}\n"
    text = "apiVersion: v2\nactions:\n" + "".join(action % i for i in range(MAX_ITEMS + 1))
    problem = only(problems(text))
    assert problem.line == 2
    assert f"{MAX_ITEMS + 1} actions; at most {MAX_ITEMS} fit in a job name" in problem.message
    config(
        "apiVersion: v2\nactions:\n" + "".join(action % i for i in range(MAX_ITEMS))
    )  # the limit itself is fine


def test_too_many_tasks() -> None:
    tasks = ", ".join(f"{{name: t{i}, image: i}}" for i in range(MAX_ITEMS + 1))
    problem = only(
        problems(f"apiVersion: v2\nactions:\n  - name: a\n    events: [{{name: e}}]\n    tasks: [{tasks}]\n")
    )
    assert problem.line == 5 and f"at most {MAX_ITEMS}" in problem.message


def test_merge_keys_are_refused() -> None:
    problem = only(problems("base: &b {image: i}\napiVersion: v2\nactions:\n  - <<: *b\n"))
    assert problem.line == 4 and "merge keys" in problem.message


def test_alias_bomb_is_bounded() -> None:
    text = "a: &a [1,1,1,1,1,1,1,1,1,1]\n" + "".join(
        f"{n}: &{n} [{', '.join(['*' + p] * 10)}]\n" for p, n in zip("abcdef", "bcdefg", strict=True)
    )
    assert "more than" in only(problems(text)).message


def test_recursive_alias_is_an_error_not_a_crash() -> None:
    problem = only(problems("apiVersion: v2\nactions: &x [*x]\n"))
    assert problem.line == 2 and "cycle" in problem.message


@pytest.mark.parametrize("depth", [MAX_DEPTH + 5, 2000])
def test_deep_nesting_is_an_error_not_a_crash(depth: int) -> None:
    problem = only(problems("apiVersion: v2\nactions: " + "[" * depth + "]" * depth + "\n"))
    assert "nest more than" in problem.message


def test_lines_of_nested_values() -> None:
    doc = load_yaml("a:\n  b:\n    - x\n    - y: 1\n")
    assert doc.line(("a",)) == 1
    assert doc.line(("a", "b")) == 2
    assert doc.line(("a", "b", 1, "y")) == 4
    assert doc.line(("a", "b", 7)) == 2  # unknown: nearest written ancestor


def test_secret_files_and_continue_on_error_are_read_into_the_model() -> None:
    cfg = config(
        one_task(
            """\
            image: alpine
            continueOnError: true
            secretFiles:
              - name: kubeconfig
                mountPath: /etc/kube/
              - name: registry
                mountPath: /home/app/.docker
            """
        )
    )
    task = cfg.actions[0].tasks[0]
    assert task.continue_on_error is True
    assert [(s.name, s.mount_path, s.line) for s in task.secret_files] == [
        ("kubeconfig", "/etc/kube", 11),
        ("registry", "/home/app/.docker", 13),
    ]
    plain = config(one_task("image: alpine")).actions[0].tasks[0]
    assert (plain.continue_on_error, plain.secret_files) == (False, ())


def test_a_secret_files_mistake_is_reported_at_its_line() -> None:
    found = problems(
        one_task(
            """\
            image: alpine
            secretFiles:
              - name: kubeconfig
                mountPath: /etc/kube
              - name: registry
                mountPath: /keptn/docker
            """
        )
    )
    (problem,) = found
    assert problem.line == 13  # the line of the wrong mountPath, not of the task
    assert problem.message.startswith("mountPath '/keptn/docker' is /keptn or inside it")


# ---- every mistake, each at its own line, with what to write instead ----


def test_every_mistake_in_a_config_is_reported_each_at_its_own_line() -> None:
    found = problems(
        """\
        apiVersion: v2
        actions:
          - events:
              - name: sh.keptn.event.a.triggered
            name: ""
            tasks: [{name: t, image: alpine}]
          - name: b
            events:
              - jsonpath:
                  property: [x]
                  match: [y]
                name: " "
              - name: sh.keptn.event.b.triggered
                jsonpath: [x]
              - jsonpath: {property: $.x}
                name: [e]
            tasks:
              - image: alpine
                name: ""
                env:
                  - name: X
                    valueFrom: env
                  - valueFrom: secret
                    name: My_Secret
                    as: json
                  - valueFrom: string
                    name: "1=2"
                    value: x
                  - valueFrom: event
                    name: "Y"
                    as: xml
                    value: data.project
                  - valueFrom: event
                    name: Z
                    value: [a]
                  - valueFrom: string
                    name: S
                  - valueFrom: event
                    name: E
        """
    )
    assert [(p.file, p.line, p.message) for p in found] == [
        ("job/config.yaml", line, message)
        for line, message in [
            (5, "action name is empty; name the action, e.g. 'Run tests'"),
            (10, "'property' must be a string, not a list"),
            (11, "'match' must be a string, not a list"),
            (12, "event name is empty; write a type such as sh.keptn.event.test.triggered"),
            (14, "jsonpath must be a mapping of keys to values, not a list"),
            (16, "'name' must be a string, not a list"),
            (19, "task name is empty; name the task, e.g. 'Run locust tests'"),
            (22, "valueFrom 'env': write one of event, secret, string"),
            (24, "secret name 'My_Secret' is not a valid Kubernetes secret name"),
            (25, "'as' applies to values from the event, not to secrets"),
            (27, "env name '1=2' is not valid: use letters, digits, '_', '-' or '.'"),
            (31, "as 'xml': write one of json, yaml, string"),
            (32, "jsonpath 'data.project' does not start with '$.'; write $.data.project"),
            (35, "'value' must be a string, not a list"),  # and not also "needs 'value'"
            (36, "an env entry from a string needs 'value'"),
            (38, "an env entry from the event needs 'value': a jsonpath such as $.data.project"),
        ]
    ]


def test_the_root_mistakes_are_reported_at_their_lines() -> None:
    found = problems("# the job config\nactions: {}\napiVersion: v1\n", source="repo/job/config.yaml")
    assert [(p.file, p.line, p.message) for p in found] == [
        ("repo/job/config.yaml", 2, "'actions' must be a list, not a mapping"),
        ("repo/job/config.yaml", 3, "apiVersion 'v1' is not supported; write 'apiVersion: v2'"),
    ]


def test_a_config_parsed_without_a_source_names_it() -> None:
    from executor.config.parse import parse_config

    with pytest.raises(ConfigError) as caught:
        parse_config("apiVersion: v1\n")
    assert str(caught.value) == "<config>:1: apiVersion 'v1' is not supported; write 'apiVersion: v2'"


def test_a_file_that_is_not_utf8_is_refused_with_its_name(tmp_path: pytest.TempPathFactory) -> None:
    path = tmp_path / "config.yaml"  # type: ignore[operator]
    path.write_bytes(b"apiVersion: v2\nactions: [\xff]\n")
    with pytest.raises(ConfigError) as caught:
        read_config_file(str(path))
    assert str(caught.value).startswith(f"{path}:1: file is not UTF-8 text")


def block_task(first: str, field: str, value: str) -> str:
    """A config whose one task is written in block style: `first` from line 6, then `field`."""
    return (
        "apiVersion: v2\nactions:\n  - name: a\n    events: [{name: e}]\n    tasks:\n"
        f"      - {first}\n        {field}: {value}\n"
    )


@pytest.mark.parametrize(
    ("first", "field"),
    [
        ("image: alpine", "name"),
        ("name: t", "image"),
        *(
            ("name: t\n        image: alpine", key)
            for key in ("workingDir", "namespace", "imagePullPolicy", "serviceAccount")
        ),
    ],
)
def test_a_task_text_field_of_the_wrong_type_is_refused_at_its_line(first: str, field: str) -> None:
    found = problems(block_task(first, field, "[x]"))
    line = 7 + first.count("\n")
    assert [(p.line, p.message) for p in found] == [(line, f"'{field}' must be a string, not a list")]


def test_env_fields_of_the_wrong_type_are_refused_at_their_lines() -> None:
    found = problems(
        one_task("image: i\nenv:\n  - value: x\n    name: [X]\n    valueFrom: 3\n    as: [json]")
    )
    assert [(p.line, p.message) for p in found] == [
        (11, "'name' must be a string, not a list"),
        (12, "'valueFrom' must be a string, not a number"),
        (13, "'as' must be a string, not a list"),
    ]


def test_a_duplicate_name_is_reported_even_beside_other_mistakes_at_the_second_entry() -> None:
    found = problems(
        """\
        apiVersion: v2
        actions:
          - name: a
            events: [{name: e}]
            tasks:
              - {image: i}
              - {name: t, image: "two words"}
              - {name: t, image: i}
          - name: a
            events: [{name: e}]
            tasks: [{name: t, image: i}]
          - {name: "", events: [{name: e}], tasks: [{name: t, image: i}]}
          - {name: "", events: [{name: e}], tasks: [{name: t, image: i}]}
        """
    )
    assert [(p.line, p.message) for p in found] == [
        (6, "task 1 is missing required field 'name'"),
        (7, "image 'two words' is not an image reference (example: alpine:3.20)"),
        (8, "two tasks are named 't'; give each a distinct name"),
        (9, "two actions are named 'a'; give each a distinct name"),
        # empty names are one mistake each, not also a duplicate
        (12, "action name is empty; name the action, e.g. 'Run tests'"),
        (13, "action name is empty; name the action, e.g. 'Run tests'"),
    ]


def test_an_unnamed_action_is_called_by_its_number() -> None:
    found = problems(
        "apiVersion: v2\nactions:\n  - name: ''\n    events: []\n    tasks: [{name: t, image: i}]\n"
    )
    assert [(p.line, p.message) for p in found] == [
        (3, "action name is empty; name the action, e.g. 'Run tests'"),
        (4, "'events' of action 1 is empty; add at least one"),
    ]


def test_the_event_selector_as_features_md_says() -> None:
    cfg = config(
        """\
        apiVersion: v2
        actions:
          - name: a
            events:
              - name: sh.keptn.event.test.triggered
              - name: sh.keptn.event.deployment.triggered
                jsonpath: {property: $.data.deployment.deploymentstrategy}
              - name: sh.keptn.event.evaluation.triggered
                jsonpath: {property: $.data.result, match: false}
            tasks: [{name: t, image: alpine}]
        """
    )
    plain, no_match, false = cfg.actions[0].events
    assert (plain.name, plain.jsonpath, plain.line) == ("sh.keptn.event.test.triggered", None, 5)
    # Without `match` the value must be the empty string, as in JES.
    assert no_match.name == "sh.keptn.event.deployment.triggered"
    assert no_match.jsonpath == JsonPathFilter("$.data.deployment.deploymentstrategy", "")
    # Compared as text: `false` is the text "false".
    assert false.jsonpath == JsonPathFilter("$.data.result", "false")


def test_a_bad_jsonpath_without_the_dollar_is_one_mistake() -> None:
    found = problems(one_task("image: i\nenv:\n  - name: X\n    valueFrom: event\n    value: 'data..['"))
    assert [p.line for p in found] == [12]
    assert found[0].message.startswith("invalid jsonpath 'data..['")


@pytest.mark.parametrize(
    ("value", "hint"), [("' Xdata.id'", "write $.Xdata.id"), ("data.project", "write $.data.project")]
)
def test_an_env_jsonpath_without_the_dollar_gets_the_path_to_write(value: str, hint: str) -> None:
    found = problems(one_task(f"image: i\nenv:\n  - name: X\n    valueFrom: event\n    value: {value}"))
    assert [p.line for p in found] == [12]
    assert found[0].message.endswith(f"does not start with '$.'; {hint}")


def test_an_env_jsonpath_may_have_spaces_around_it() -> None:
    task = (
        config(one_task("image: i\nenv:\n  - {name: X, valueFrom: event, value: ' $.data.x '}"))
        .actions[0]
        .tasks[0]
    )
    assert task.env[0].value.strip() == "$.data.x"


def test_the_task_keeps_its_image_and_the_lines_of_its_files() -> None:
    task = config(one_task("image: alpine:3.20\nfiles:\n  - /helm\n  - locust/basic.py")).actions[0].tasks[0]
    assert (task.name, task.image) == ("task", "alpine:3.20")
    assert task.files == ("helm", "locust/basic.py")
    assert task.file_lines == (10, 11)


def test_the_cluster_selector_is_read_as_text() -> None:
    task = (
        config(one_task("image: i\nclusterSelector: {platform: arm64, cores: 8, ratio: 1.5}"))
        .actions[0]
        .tasks[0]
    )
    assert task.cluster_selector == {"platform": "arm64", "cores": "8", "ratio": "1.5"}
    assert config(one_task("image: i")).actions[0].tasks[0].cluster_selector == {}


@pytest.mark.parametrize(
    "value", ["[arm64]", "arm64", "{platform: true}", "{platform: {a: b}}", "{platform: }"]
)
def test_a_cluster_selector_that_is_not_labels_is_refused_at_its_line(value: str) -> None:
    found = problems(one_task(f"image: i\nclusterSelector: {value}"))
    assert [(p.line, p.message) for p in found] == [
        (9, "'clusterSelector' must be a mapping of cluster labels to values, e.g. {platform: arm64}")
    ]


@pytest.mark.parametrize(("length", "ok"), [(63, True), (64, False)])
def test_a_namespace_has_at_most_63_characters(length: int, ok: bool) -> None:
    text = one_task(f"image: i\nnamespace: {'n' * length}")
    if ok:
        assert config(text).actions[0].tasks[0].namespace == "n" * length
    else:
        assert only(problems(text)).message.endswith("is not a valid Kubernetes namespace name")


# Kubernetes' IsQualifiedName: a prefix of at most 253 (a DNS subdomain), "/", a name of at most 63;
# 317 characters in all at most. The schema says the same (tests/core/test_schema.py).
LONGEST_KEY = "p" * 253 + "/" + "n" * 63
TOO_LONG_KEYS = {
    "prefix of 254": "p" * 254 + "/" + "n" * 63,
    "name of 64": "p" * 253 + "/" + "n" * 64,
    "name of 64, no prefix": "n" * 64,
}


def test_the_longest_annotation_key_kubernetes_allows_is_accepted() -> None:
    assert len(LONGEST_KEY) == 317
    for key in (LONGEST_KEY, "n" * 63, "p" * 253 + "/n"):
        task = config(one_task(f"image: i\nannotations:\n  {key}: x")).actions[0].tasks[0]
        assert task.annotations == {key: "x"}


@pytest.mark.parametrize("key", [TOO_LONG_KEYS["prefix of 254"], TOO_LONG_KEYS["name of 64"]])
def test_an_annotation_key_of_318_characters_is_refused_at_its_line(key: str) -> None:
    # (A shorter key with a part over its bound: test_placement_is_read_and_api_server_rules...)
    found = only(problems(one_task(f"image: i\nannotations:\n  {key}: x")))
    assert str(found) == (
        f"job/config.yaml:10: annotation key {key!r} is not a valid Kubernetes annotation name"
    )


@pytest.mark.parametrize("value", ["[a, b]", "3", "[{a: x}, b]"])
def test_annotations_that_are_not_names_to_strings_are_refused(value: str) -> None:
    found = problems(one_task(f"image: i\nannotations: {value}"))
    assert [(p.line, p.message) for p in found] == [
        (9, "'annotations' must be a mapping of names to strings (key: value)")
    ]


def test_an_annotation_value_false_is_the_text_false() -> None:
    task = config(one_task("image: i\nannotations: {a: false, b: true}")).actions[0].tasks[0]
    assert task.annotations == {"a": "false", "b": "true"}


def test_every_resources_mistake_is_reported() -> None:
    found = problems(
        one_task(
            "image: i\nresources:\n  limits: [cpu]\n  requests:\n    'bad name!': 1\n    memory: lots\n    cpu: 12 m"
        )
    )
    assert [(p.line, p.message) for p in found] == [
        (10, "'limits' must be a mapping such as cpu: 500m, not a list"),
        (12, "'bad name!' is not a resource name (cpu, memory, ...)"),
        (13, "requests.memory: 'lots' is not a Kubernetes quantity (examples: 500m, 1, 128Mi, 2Gi)"),
        (14, "requests.cpu: '12 m' is not a Kubernetes quantity (examples: 500m, 1, 128Mi, 2Gi)"),
    ]


def test_an_unknown_security_context_field_far_from_any_gets_no_guess() -> None:
    found = problems(one_task("image: i\nsecurityContext:\n  zzz: 1"))
    assert [(p.line, p.message) for p in found] == [(10, "unknown field 'zzz' in securityContext")]


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("{valueFrom: secret}", "env entry is missing required field 'name'"),
        (f"{{name: S{'s' * 253}, valueFrom: secret}}", "is not a valid Kubernetes secret name"),
    ],
)
def test_a_broken_env_entry_is_one_mistake(entry: str, expected: str) -> None:
    problem = only(problems(one_task(f"image: i\nenv:\n  - {entry}")))
    assert problem.line == 10 and problem.message.endswith(expected)


def test_every_concurrency_mistake_is_reported_at_its_line() -> None:
    head = (
        "apiVersion: v2\nactions:\n  - name: a\n    events: [{name: e}]\n    tasks: [{name: t, image: i}]\n"
    )
    found = problems(
        head + "    concurrency:\n      limit: true\n      key: data.service\n      onConflict: drop\n"
    )
    assert [(p.line, p.message) for p in found] == [
        (7, "concurrency limit must be a whole number, at least 1, not True"),
        (8, "jsonpath 'data.service' does not start with '$.'; write $.data.service"),
        (9, "onConflict 'drop': write one of queue, skip, cancel-previous"),
    ]
    found = problems(head + "    concurrency:\n      key: '$.data[?'\n")
    assert [p.line for p in found] == [7] and found[0].message.startswith("invalid jsonpath '$.data[?'")
    cfg = config(
        head + "    concurrency:\n      limit: 3\n      key: ' $.data.service '\n      onConflict: skip\n"
    )
    concurrency = cfg.actions[0].concurrency
    assert concurrency is not None
    assert (concurrency.limit, concurrency.key, concurrency.on_conflict, concurrency.line) == (
        3,
        "$.data.service",
        "skip",
        6,
    )


def test_placement_is_read_and_api_server_rules_are_reported_at_their_lines() -> None:
    placed = one_task("image: i\nnodeSelector: {disk: ssd}\ntolerations:\n  - {key: k, operator: Exists}")
    task = config(placed).actions[0].tasks[0]
    assert task.node_selector == {"disk": "ssd"}
    assert task.tolerations == ({"key": "k", "operator": "Exists"},)
    name = "n" * 64
    found = problems(one_task(f"image: i\nnodeSelector: [ssd]\ntolerations: x\nannotations:\n  a/{name}: x"))
    assert [(p.line, p.message.split(",")[0]) for p in found] == [
        (9, "nodeSelector must be a mapping of node labels to values"),
        (10, "'tolerations' must be a list of tolerations"),
        (
            12,
            f"annotation key 'a/{name}': the name part after the '/' is 64 characters; Kubernetes allows at most 63",
        ),
    ]


def test_more_root_and_concurrency_mistakes_at_their_lines() -> None:
    found = problems("apiVersion: v2\n\nactions: {}\n")
    assert [(p.line, p.message) for p in found] == [(3, "'actions' must be a list, not a mapping")]
    found = problems("apiVersion: v2\nactions:\n  - name: a\n    events: [{name: e}]\n")
    assert [(p.line, p.message) for p in found] == [(3, "action 1 is missing required field 'tasks'")]
    head = (
        "apiVersion: v2\nactions:\n  - name: a\n    events: [{name: e}]\n    tasks: [{name: t, image: i}]\n"
    )
    found = problems(head + "    concurrency:\n      key: [x]\n      onConflict: [y]\n      limit: 1\n")
    assert [(p.line, p.message) for p in found] == [
        (7, "'key' must be a string, not a list"),
        (8, "'onConflict' must be a string, not a list"),
    ]
    found = problems(head + "    concurrency:\n      key: Xdata.id\n")
    assert [p.message for p in found] == ["jsonpath 'Xdata.id' does not start with '$.'; write $.Xdata.id"]
    concurrency = config(head + "    concurrency: {limit: 1}\n").actions[0].concurrency
    assert concurrency is not None and concurrency.limit == 1
