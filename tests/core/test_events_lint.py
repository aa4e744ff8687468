"""Events (validation of malformed ones, Keptn's view of the data), jsonpath text, and lint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from executor.app.lint import lint_config, lint_file
from executor.config.jsonpaths import (
    MISSING,
    JsonPathSyntaxError,
    as_text,
    compile_path,
    find_all,
    find_first,
)
from executor.model.events import EventError, event_from_json, event_from_mapping, load_event_file
from executor.model.problems import Problem
from executor.settings import Settings

from .conftest import EVENTS, RESOURCES, config

BASE: dict[str, Any] = {"specversion": "1.0", "id": "1", "source": "s", "type": "t"}


# ---- events ----


def test_sample_events_load() -> None:
    for path in sorted(EVENTS.glob("*.json")):
        event = load_event_file(str(path))
        if path.name == "github.push.json":  # the generic sample (issue 19): nothing of Keptn's
            assert not event.type.startswith("sh.keptn.") and not event.project
            continue
        assert event.type.startswith("sh.keptn.event.")
        assert event.project == "sockshop"


def test_keptn_fields() -> None:
    event = load_event_file(str(EVENTS / "test.triggered.json"))
    assert (event.id, event.source) == ("f2b878d3-03c0-4e8f-bc3f-454bc1b3d79b", "shipyard-controller")
    assert (event.project, event.stage, event.service) == ("sockshop", "dev", "carts")
    assert event.keptn_context == "08735340-6f9e-4b32-97ff-3b6c292bc50a"
    assert event.labels == {"testId": "4711", "build-id": "build-17", "owner": "JohnDoe"}
    assert event.git_commit_id == ""
    assert event.document()["data"]["test"]["teststrategy"] == "locust"
    assert json.loads(event.to_json())["id"] == event.id


def test_git_commit_id_from_attribute_or_data() -> None:
    assert event_from_mapping({**BASE, "gitcommitid": "abc"}).git_commit_id == "abc"
    assert event_from_mapping({**BASE, "data": {"gitcommitid": "def"}}).git_commit_id == "def"


def test_label_values_that_are_not_strings_become_json() -> None:
    event = event_from_mapping({**BASE, "data": {"labels": {"n": 3, "l": [1, "a"], "s": "x"}}})
    assert event.labels == {"n": "3", "l": '[1, "a"]', "s": "x"}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([], "a CloudEvent must be a JSON object"),
        ("text", "a CloudEvent must be a JSON object"),
        ({**BASE, "id": None}, "required attribute 'id' is missing"),
        ({k: v for k, v in BASE.items() if k != "type"}, "required attribute 'type' is missing"),
        (
            {k: v for k, v in BASE.items() if k != "specversion"},
            "required attribute 'specversion' is missing",
        ),
        ({**BASE, "source": ""}, "attribute 'source' must be a non-empty string"),
        ({**BASE, "id": 42}, "attribute 'id' must be a non-empty string"),
        ({**BASE, "type": "  "}, "attribute 'type' must be a non-empty string"),
        ({**BASE, "specversion": "0.3"}, "specversion '0.3' is not supported; send 1.0"),
        ({**BASE, "data_base64": "eA=="}, "data_base64 does not decode to JSON"),
        ({**BASE, "datacontenttype": "image/png", "data_base64": "eA=="}, "data_base64 holds binary data"),
        ({**BASE, "Bad-Name": "x"}, "attribute name 'Bad-Name' is invalid"),
        ({**BASE, "a" * 21: "x"}, "is invalid: use 1-20 lower-case letters or digits"),
        ({**BASE, "ext": {"a": 1}}, "attribute 'ext' must be a string, an integer or a boolean"),
        ({**BASE, "ext": 1.5}, "attribute 'ext' must be a string, an integer or a boolean"),
        (
            {**BASE, "datacontenttype": "text/plain", "data": {"a": 1}},
            "datacontenttype 'text/plain' is not JSON, so data must be a string",
        ),
    ],
)
def test_malformed_events_are_refused(raw: Any, message: str) -> None:
    with pytest.raises(EventError) as caught:
        event_from_mapping(raw)
    assert message in str(caught.value)


def test_accepted_edge_cases() -> None:
    event = event_from_mapping({**BASE, "datacontenttype": "application/cloudevents+json", "data": {"a": 1}})
    assert event.data == {"a": 1}
    event = event_from_mapping({**BASE, "datacontenttype": "text/plain"})  # no data: nothing to decode
    assert event.data is None and event.project == ""
    event = event_from_mapping({**BASE, "datacontenttype": "text/plain", "data": "hello"})  # text data
    assert event.data == "hello"
    event = event_from_mapping({**BASE, "data_base64": "eyJhIjogMX0="})  # JSON implied: decoded
    assert event.data == {"a": 1}
    event = event_from_mapping({**BASE, "ext": None, "n": 3})
    assert "ext" not in event.attributes and event.attribute("n") == "3"
    assert event.labels == {} and event.attribute("missing", "d") == "d"


def test_event_from_json_errors() -> None:
    with pytest.raises(EventError, match="body is not valid JSON"):
        event_from_json("{nope")
    with pytest.raises(EventError, match="body is not valid JSON"):
        event_from_json(b"\xff\xfe")


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-32"])
def test_a_body_is_read_in_each_encoding_json_allows(encoding: str) -> None:
    # RFC 8259 8.1 and json.loads: bytes in UTF-8, -16 or -32, told apart by their first bytes.
    body = json.dumps({**BASE, "data": {"name": "Zoë"}}, ensure_ascii=False).encode(encoding)
    assert event_from_json(body).data == {"name": "Zoë"}


def test_a_text_that_starts_with_a_byte_order_mark_is_refused() -> None:
    with pytest.raises(EventError, match="BOM"):
        event_from_json("\ufeff" + json.dumps(BASE))


def test_load_event_file_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(EventError, match=r"nope.json: cannot read file"):
        load_event_file(str(tmp_path / "nope.json"))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**BASE, "specversion": "2.0"}))
    with pytest.raises(EventError, match=rf"{bad}: specversion '2.0' is not supported"):
        load_event_file(str(bad))


# ---- jsonpath ----


DOC = {"data": {"a": [1, 2], "b": {"c": None}, "s": "x", "t": True}}


def test_find_first_and_all() -> None:
    assert find_first("$.data.a[0]", DOC) == 1
    assert find_first("$.data.b.c", DOC) is None  # found: null
    assert find_first("$.data.missing", DOC) is MISSING
    assert find_first("$.data.a[5]", DOC) is MISSING
    assert find_all("$.data.a[*]", DOC) == [1, 2]
    assert find_first("$.data.a[?(@ > 1)]", DOC) == 2  # filters of the extended parser


def test_compile_errors() -> None:
    with pytest.raises(JsonPathSyntaxError, match="jsonpath is empty"):
        compile_path("  ")
    with pytest.raises(JsonPathSyntaxError, match="invalid jsonpath"):
        compile_path("$.[")


@pytest.mark.parametrize(
    ("value", "fmt", "text"),
    [
        ("x", None, "x"),
        (3, None, "3"),
        (True, None, "true"),
        (None, None, "null"),
        ({"a": [1]}, None, '{"a":[1]}'),
        (["ü"], None, '["ü"]'),
        ("x", "json", '"x"'),
        ({"a": 1}, "json", '{"a":1}'),
        ("x", "string", "x"),
        ({"a": 1}, "string", '{"a":1}'),
        ({"a": {"b": [1, 2]}}, "yaml", "a:\n  b:\n  - 1\n  - 2\n"),
    ],
)
def test_as_text(value: Any, fmt: str | None, text: str) -> None:
    assert as_text(value, fmt) == text


# ---- lint ----


def messages(found: list[Problem]) -> list[tuple[int, str, str]]:
    return [(p.line, p.severity, p.message) for p in found]


def test_samples_lint_clean() -> None:
    for path in sorted(RESOURCES.rglob("job/config.yaml")):
        assert lint_file(str(path)) == [], path


@pytest.mark.parametrize(
    "name",
    [
        "sh.keptn.event.test.(triggered|finished)",
        "^sh.keptn.event.test$",
        "sh.keptn.event.\\w+.triggered",
        "sh.keptn.event.[a-z]+",
        "a\\.b",
    ],
)
def test_regex_syntax_in_event_names_is_a_warning(name: str) -> None:
    cfg = config(
        f"apiVersion: v2\nactions:\n  - name: a\n    events:\n      - name: '{name}'\n    tasks: [{{name: t, image: i}}]\n"
    )
    (problem,) = [p for p in lint_config(cfg) if "names are globs" in p.message]
    assert problem.severity == "warning" and problem.line == 5
    assert "names are globs (*, ?, [..], {a,b}) that must match the whole type" in problem.message


@pytest.mark.parametrize(
    ("name", "silent", "warns"),
    [
        ("sh.keptn.event.*.finished", False, True),
        ("sh.keptn.event.test.started", False, True),
        ("sh.keptn.event.*.finished", True, False),
        ("sh.keptn.event.*", False, False),
        ("sh.keptn.event.*.status.changed", False, True),
        ("sh.keptn.event.test.triggered", False, False),
    ],
)
def test_non_silent_action_on_events_that_are_never_answered(name: str, silent: bool, warns: bool) -> None:
    cfg = config(
        f"apiVersion: v2\nactions:\n  - name: a\n    silent: {str(silent).lower()}\n    events:\n"
        f"      - name: '{name}'\n    tasks: [{{name: t, image: i}}]\n"
    )
    found = [p for p in lint_config(cfg) if "no .triggered event" in p.message]
    assert bool(found) == warns
    if found:
        assert found[0].severity == "warning" and found[0].line == 6 and "silent: true" in found[0].message


def test_stars_and_dots_do_not_warn() -> None:
    cfg = config(
        "apiVersion: v2\nactions:\n  - name: a\n    events: [{name: 'sh.keptn.event.*.triggered'}]\n    tasks: [{name: t, image: i}]\n"
    )
    assert lint_config(cfg) == []


def two_actions(first: str, second: str, silent: bool = False) -> str:
    return (
        "apiVersion: v2\nactions:\n"
        "  - name: one\n    events:\n" + first + "    tasks: [{name: t, image: i}]\n"
        "  - name: two\n"
        + ("    silent: true\n" if silent else "")
        + "    events:\n"
        + second
        + "    tasks: [{name: t, image: i}]\n"
    )


def test_two_loud_actions_that_can_both_match_warn() -> None:
    text = two_actions(
        "      - name: sh.keptn.event.*.triggered\n", "      - name: sh.keptn.event.test.triggered\n"
    )
    (problem,) = lint_config(config(text))
    assert problem.severity == "warning" and problem.line == 7  # the second action
    assert "actions 'one' and 'two' can both match 'sh.keptn.event.test.triggered'" in problem.message
    assert str(problem).startswith("job/config.yaml:7: warning: ")


def test_a_silent_action_does_not_warn() -> None:
    text = two_actions(
        "      - name: sh.keptn.event.*\n", "      - name: sh.keptn.event.test.finished\n", silent=True
    )
    assert lint_config(config(text)) == []


def test_disjoint_event_names_do_not_warn() -> None:
    text = two_actions(
        "      - name: sh.keptn.event.*.triggered\n", "      - name: sh.keptn.event.*.finished\n"
    )
    assert [p for p in lint_config(config(text)) if "can both match" in p.message] == []


def test_the_same_jsonpath_with_different_matches_does_not_warn() -> None:
    locust = "      - name: sh.keptn.event.test.triggered\n        jsonpath: {property: $.data.test.teststrategy, match: locust}\n"
    health = "      - name: sh.keptn.event.test.triggered\n        jsonpath: {property: $.data.test.teststrategy, match: health}\n"
    assert lint_config(config(two_actions(locust, health))) == []
    assert len(lint_config(config(two_actions(locust, locust)))) == 1
    plain = "      - name: sh.keptn.event.test.triggered\n"
    assert len(lint_config(config(two_actions(locust, plain)))) == 1  # the plain one matches both


def test_different_jsonpaths_may_both_match() -> None:
    a = "      - name: e\n        jsonpath: {property: $.data.a, match: x}\n"
    b = "      - name: e\n        jsonpath: {property: $.data.b, match: y}\n"
    assert len(lint_config(config(two_actions(a, b)))) == 1


def test_low_ttl_is_a_warning() -> None:
    cfg = config(
        "apiVersion: v2\nactions:\n  - name: a\n    events: [{name: e}]\n    tasks:\n      - {name: t, image: i, ttlSecondsAfterFinished: 10}\n"
    )
    assert messages(lint_config(cfg)) == [
        (6, "warning", "task 't': ttlSecondsAfterFinished 10 will be raised to 60")
    ]


def allowing(*images: str) -> Settings:
    return Settings().with_overrides(jobs={"allowed_images": images})


def test_lint_checks_images_against_an_allow_list() -> None:
    cfg = config(
        "apiVersion: v2\nactions:\n  - name: a\n    events: [{name: e}]\n    tasks:\n      - {name: t, image: docker.io/evil/x}\n"
    )
    assert lint_config(cfg, allowing("docker.io/*")) == []
    assert messages(lint_config(cfg, allowing("docker.io/evil"))) == [
        (6, "error", "task 't': Forbidden: Image docker.io/evil/x does not match configured image allowlist.")
    ]


def test_lint_file_returns_parse_errors(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        "apiVersion: v2\nactions:\n  - name: a\n    events: [{name: e}]\n    tasks: [{name: t}]\n"
    )
    assert [str(p) for p in lint_file(str(path))] == [f"{path}:5: task 1 is missing required field 'image'"]


def test_warnings_are_sorted_by_line() -> None:
    text = two_actions("      - name: 'sh.keptn.event.(a|b)'\n", "      - name: '*'\n")
    found = lint_config(config(text))
    assert [p.line for p in found] == sorted(p.line for p in found) and len(found) == 2


def test_lint_warns_about_event_text_in_a_shell_command_line(tmp_path: Path) -> None:
    """Issue 13 item 6: `sh -c "echo $(KEPTN_SERVICE)"` runs whatever the event put there."""
    body = """apiVersion: v2
actions:
  - name: a
    events: [{name: "sh.keptn.event.test.triggered"}]
    tasks:
      - name: unsafe
        image: alpine
        cmd: ["sh", "-c"]
        args: ["echo checking $(KEPTN_SERVICE)"]
      - name: from-event
        image: alpine
        env: [{name: TARGET, value: "$.data.target", valueFrom: event}]
        cmd: ["/bin/bash", "-c", "curl $(TARGET)"]
      - name: safe
        image: alpine
        cmd: ["sh", "-c", 'echo checking "$KEPTN_SERVICE"; echo $$(KEPTN_SERVICE)']
      - name: no-shell
        image: alpine
        args: ["--service", "$(KEPTN_SERVICE)"]
"""
    path = tmp_path / "config.yaml"
    path.write_text(body)
    warnings = [p.message for p in lint_file(str(path)) if "inject" in p.message]
    assert len(warnings) == 2
    assert warnings[0].startswith("task 'unsafe': $(KEPTN_SERVICE) in a shell command line")
    assert 'use "$KEPTN_SERVICE" (double-quoted) inside the script' in warnings[0]
    assert warnings[1].startswith("task 'from-event': $(TARGET)")


def test_lint_warns_about_names_that_only_match_keptn_non_task_events(tmp_path: Path) -> None:
    """Issue 11 item 4: sequence events and the like run nothing, as in the original."""
    body = """apiVersion: v2
actions:
  - name: a
    events:
      - name: "sh.keptn.event.dev.delivery.triggered"
      - name: "sh.keptn.event.test"
      - name: "sh.keptn.event.*.*.*.triggered"
      - name: "sh.keptn.event.*"
      - name: "sh.keptn.event.test.triggered"
    tasks: [{name: t, image: alpine}]
"""
    path = tmp_path / "config.yaml"
    path.write_text(body)
    problems = lint_file(str(path))
    flagged = [p.line for p in problems if "not task events" in p.message]
    assert flagged == [5, 7]
    # A task name alone was a prefix in JES: the warning says what it most likely meant.
    assert [p.line for p in problems if "did you mean sh.keptn.event.test.triggered?" in p.message] == [6]


MALFORMED_GLOB = """\
apiVersion: v2
actions:
  - name: "tests"
    events:
      - name: "sh.keptn.event.[test.triggered"
    tasks:
      - name: "run"
        image: "alpine:3.20"
"""


def test_an_event_name_that_is_not_a_glob_is_a_lint_error_at_its_line(tmp_path: Path) -> None:
    # serve keeps reading such a config as JES did (the action never matches); lint says so.
    path = tmp_path / "config.yaml"
    path.write_text(MALFORMED_GLOB)
    problems = lint_file(str(path))
    assert [(p.line, p.severity) for p in problems] == [(5, "error")]
    assert problems[0].message == (
        "event name: glob 'sh.keptn.event.[test.triggered': '[' at 16 has no closing ']'; "
        "as it is, it matches no event"
    )
