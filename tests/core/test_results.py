"""The result-file contract (FEATURES.md, "Results from tasks"): a task's result.json patches the
data of its action's finished event, either as RFC 6902 operations (a list) or as an RFC 7386
merge patch (an object); it may not change project/stage/service/status, `result` must be
pass/warning/fail, and a file that breaks the rules or is not JSON is refused with the reason.

The JSON Patch semantics are those of the `jsonpatch` package (RFC 6902); the merge patch follows
RFC 7386 section 2 (a null deletes a member, an object merges recursively, anything else replaces).
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from executor.model.events import event_from_mapping
from executor.model.tasks import TaskOutcome
from executor.reporter import TaskReport, finished
from executor.results import (
    MAX_RESULT_BYTES,
    MAX_RESULT_DEPTH,
    ResultError,
    apply_result,
    merge_patch,
    nesting_depth,
)
from tests.service.conftest import make_event

DATA: dict[str, Any] = {
    "project": "sockshop",
    "stage": "dev",
    "service": "carts",
    "status": "succeeded",
    "result": "pass",
    "labels": {"owner": "team-a", "tier": "web"},
    "message": "done",
}


def apply(document: Any, data: dict[str, Any] | None = None) -> dict[str, Any]:
    raw = document if isinstance(document, bytes) else json.dumps(document).encode()
    return apply_result(copy.deepcopy(DATA) if data is None else data, raw, "Score")


def refused(document: Any, data: dict[str, Any] | None = None) -> str:
    with pytest.raises(ResultError) as info:
        apply(document, data)
    message = str(info.value)
    assert "result file of task 'Score'" in message, message
    return message


# --- the two forms -------------------------------------------------------------------------


def test_json_patch_list_adds_replaces_and_removes() -> None:
    patched = apply(
        [
            {"op": "add", "path": "/evaluation", "value": {"score": 97}},
            {"op": "replace", "path": "/message", "value": "scored"},
            {"op": "remove", "path": "/labels/tier"},
        ]
    )
    assert patched == {
        **DATA,
        "evaluation": {"score": 97},
        "message": "scored",
        "labels": {"owner": "team-a"},
    }


def test_the_feature_example_adds_the_evaluation() -> None:
    # The example of FEATURES.md, byte for byte as the shell writes it (with a newline).
    raw = b'[{"op": "add", "path": "/evaluation", "value": {"score": 97}}]\n'
    assert apply(raw) == {**DATA, "evaluation": {"score": 97}}


def test_merge_patch_object_merges_recursively() -> None:
    patched = apply({"labels": {"tier": "api", "new": "x"}, "extra": [1, 2]})
    assert patched == {**DATA, "labels": {"owner": "team-a", "tier": "api", "new": "x"}, "extra": [1, 2]}


def test_merge_patch_null_deletes_a_member_at_any_depth() -> None:
    patched = apply({"message": None, "labels": {"owner": None}, "absent": None})
    expected = {k: v for k, v in DATA.items() if k != "message"}
    expected["labels"] = {"tier": "web"}
    assert patched == expected
    assert "absent" not in patched


def test_merge_patch_replaces_a_scalar_with_an_object_and_back() -> None:
    assert apply({"message": {"text": "hi"}})["message"] == {"text": "hi"}
    assert apply({"deployment": {"url": "x"}})["deployment"] == {"url": "x"}
    assert apply({"deployment": {"url": "x"}} | {"deployment": "none"})["deployment"] == "none"


def test_the_input_data_is_not_modified() -> None:
    data = copy.deepcopy(DATA)
    apply({"labels": {"owner": None}, "message": "x"}, data)
    apply([{"op": "remove", "path": "/labels/owner"}], data)
    assert data == DATA


def test_empty_or_blank_file_changes_nothing() -> None:
    data = copy.deepcopy(DATA)
    assert apply(b"", data) is data
    assert apply(b"  \n\t ", data) is data


def test_empty_patch_list_and_empty_object_change_nothing() -> None:
    assert apply([]) == DATA
    assert apply({}) == DATA


# --- merge_patch on its own (RFC 7386 section 2 and appendix A) -----------------------------


@pytest.mark.parametrize(
    ("target", "patch", "expected"),
    [
        ({"a": "b"}, {"a": "c"}, {"a": "c"}),
        ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
        ({"a": "b"}, {"a": None}, {}),
        ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
        ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
        ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
        ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
        ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
        (["a", "b"], ["c", "d"], ["c", "d"]),
        ({"a": "b"}, ["c"], ["c"]),
        ({"a": "foo"}, None, None),
        ({"a": "foo"}, "bar", "bar"),
        ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
        ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
        ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
    ],
)
def test_merge_patch_follows_rfc_7386_appendix_a(target: Any, patch: Any, expected: Any) -> None:
    assert merge_patch(copy.deepcopy(target), patch) == expected


# --- refusals ------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [b"{not json", b"pass", b"\xff\xfe{}", b'{"a": 1'])
def test_non_json_is_refused(raw: bytes) -> None:
    assert "is not valid JSON" in refused(raw)


@pytest.mark.parametrize("document", ["a string", 42, 1.5, True, None])
def test_a_scalar_document_is_refused(document: Any) -> None:
    assert "must hold a JSON object or a JSON Patch list" in refused(document)


@pytest.mark.parametrize("key", ["project", "stage", "service", "status"])
def test_protected_fields_cannot_be_changed_by_a_merge_patch(key: str) -> None:
    assert f"may not change '{key}'" in refused({key: "other"})


@pytest.mark.parametrize("key", ["project", "stage", "service", "status"])
def test_protected_fields_cannot_be_removed(key: str) -> None:
    assert f"may not change '{key}'" in refused({key: None})
    assert f"may not change '{key}'" in refused([{"op": "remove", "path": f"/{key}"}])


@pytest.mark.parametrize("key", ["project", "stage", "service", "status"])
def test_protected_fields_cannot_be_added_when_absent(key: str) -> None:
    data = {k: v for k, v in DATA.items() if k != key}
    assert f"may not change '{key}'" in refused([{"op": "add", "path": f"/{key}", "value": "x"}], data)


def test_protected_fields_may_be_written_with_their_own_value() -> None:
    same = {key: DATA[key] for key in ("project", "stage", "service", "status")}
    assert apply(same) == DATA
    assert apply([{"op": "replace", "path": "/stage", "value": "dev"}]) == DATA


def test_other_fields_are_free_to_change() -> None:
    # Only the four names are protected: a look-alike key is not.
    patched = apply({"projects": "x", "Stage": "y", "labels": None})
    assert patched["projects"] == "x" and patched["Stage"] == "y" and "labels" not in patched


@pytest.mark.parametrize("value", ["pass", "warning", "fail"])
def test_result_accepts_the_three_keptn_values(value: str) -> None:
    assert apply({"result": value})["result"] == value
    assert apply([{"op": "replace", "path": "/result", "value": value}])["result"] == value


@pytest.mark.parametrize("value", ["PASS", "passed", "error", "", 1, None, ["pass"], {"v": "pass"}])
def test_result_must_be_pass_warning_or_fail(value: Any) -> None:
    patch = [{"op": "replace", "path": "/result", "value": value}]
    message = refused(patch)
    assert f"sets result to {value!r}" in message
    assert "use one of pass, warning, fail" in message


def test_result_may_not_be_removed() -> None:
    # Keptn refuses a finished event without a result (issue 11 item 5).
    assert "removes 'result'" in refused({"result": None})
    assert "removes 'result'" in refused([{"op": "remove", "path": "/result"}])


@pytest.mark.parametrize("labels", [{"n": 1}, {"ok": "x", "flag": True}, ["a"], "none"])
def test_labels_stay_strings_to_strings(labels: Any) -> None:
    message = refused({"labels": labels})
    assert "label" in message and ("non-string" in message or "an object" in message)


def test_data_without_result_is_not_checked_for_it() -> None:
    data = {k: v for k, v in DATA.items() if k != "result"}
    assert apply({"message": "x"}, data) == {**data, "message": "x"}


@pytest.mark.parametrize(
    "patch",
    [
        [{"op": "remove", "path": "/nowhere"}],
        [{"op": "replace", "path": "/labels/missing", "value": 1}],
        [{"op": "test", "path": "/message", "value": "other"}],
        [{"op": "add", "path": "/labels/deep/er", "value": 1}],
        [{"op": "jump", "path": "/message"}],
        [{"path": "/message"}],
        [{"op": "add", "path": "no-slash", "value": 1}],
        ["not an operation"],
        [{"op": "move", "from": "/gone", "path": "/x"}],
    ],
)
def test_a_patch_that_does_not_apply_is_refused(patch: Any) -> None:
    assert "is not a JSON Patch that applies" in refused(patch)


def test_a_patch_may_not_replace_the_whole_data() -> None:
    message = refused([{"op": "replace", "path": "", "value": ["x"]}])
    assert "turned the event data into something other than an object" in message


def test_a_patch_replacing_the_whole_data_by_an_object_is_checked_like_any_other() -> None:
    assert "may not change 'project'" in refused([{"op": "replace", "path": "", "value": {}}])
    whole = {**DATA, "message": "new"}
    assert apply([{"op": "replace", "path": "", "value": whole}]) == whole


def test_the_json_patch_test_op_passes_when_it_holds() -> None:
    patch = [{"op": "test", "path": "/message", "value": "done"}, {"op": "add", "path": "/x", "value": 1}]
    assert apply(patch) == {**DATA, "x": 1}


# --- the 64 KiB cap ------------------------------------------------------------------------


def _padded(size: int) -> bytes:
    """A valid merge patch of exactly `size` bytes."""
    head, tail = b'{"pad": "', b'"}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


def test_the_cap_is_64_kib() -> None:
    assert MAX_RESULT_BYTES == 65536


def test_a_file_of_exactly_the_cap_is_accepted() -> None:
    raw = _padded(65536)
    assert len(raw) == 65536
    assert apply(raw)["pad"] == "x" * (65536 - 11)


def test_one_byte_over_the_cap_is_refused_before_parsing() -> None:
    raw = _padded(65537)
    assert "is larger than 65536 bytes" in refused(raw)
    # Even bytes that are not JSON are refused for their size first.
    assert "is larger than 65536 bytes" in refused(b"\xff" * 65537)


# --- the nesting bound ---------------------------------------------------------------------


def _nested(depth: int) -> bytes:
    """A merge patch whose arrays and objects nest `depth` (2 or more) levels deep: the object
    around them is the first level."""
    return b'{"deep": ' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}"


def test_the_nesting_bound_is_64_levels() -> None:
    assert MAX_RESULT_DEPTH == 64
    assert nesting_depth(json.loads(_nested(64)), 100) == 64


def test_a_file_nested_exactly_to_the_bound_is_accepted() -> None:
    assert "deep" in apply(_nested(MAX_RESULT_DEPTH))


def test_one_level_past_the_bound_is_refused_with_the_reason() -> None:
    assert "is nested more than 64 levels deep" in refused(_nested(MAX_RESULT_DEPTH + 1))


@pytest.mark.parametrize("opener", [b"[", b'{"a":'])
def test_a_file_nested_past_the_parsers_stack_is_refused_not_an_internal_error(opener: bytes) -> None:
    # 10,000 levels (under the 64 KiB cap): json.loads itself gives up (RecursionError), which once
    # became "internal error"
    raw = opener * 10_000 + (b"]" if opener == b"[" else b"}") * 10_000
    assert len(raw) <= MAX_RESULT_BYTES
    assert "is nested more than 64 levels deep" in refused(raw)


def test_the_finished_event_says_why_a_too_deep_result_was_refused() -> None:
    event = event_from_mapping(make_event(event_id="deep-result"))
    outcome = TaskOutcome(status="succeeded", logs="scored", result=b"[" * 5000 + b"]" * 5000)
    data = finished(event, "action-0", [TaskReport("Score", outcome)])["data"]
    assert (data["status"], data["result"]) == ("errored", "fail")
    assert "result file of task 'Score' is nested more than 64 levels deep" in data["message"]


# --- what a refusal tells the author (the finished event's message is all they see) ---------


def test_removing_result_names_the_three_values_to_use() -> None:
    message = refused({"result": None})
    assert message.endswith("removes 'result'; a finished event needs one of pass, warning, fail")


@pytest.mark.parametrize(("labels", "kind"), [(["a"], "list"), ("none", "str"), (3, "int"), (True, "bool")])
def test_labels_of_another_type_are_named_by_that_type(labels: Any, kind: str) -> None:
    message = refused({"labels": labels})
    assert message.endswith(f"makes 'labels' a {kind}; Keptn labels are an object")


def test_non_string_labels_are_named_with_how_to_write_them() -> None:
    message = refused({"labels": {"build": 7, "ok": "x", "canary": False}})
    # The merged labels keep team-a/web (strings): only the two offenders are named, sorted.
    assert message.endswith(
        "sets label(s) 'build', 'canary' to non-string values; "
        'Keptn labels map strings to strings (write "1", not 1)'
    )


def test_many_non_string_labels_are_named_five_at_most() -> None:
    # A result may set hundreds of labels: the message (bounded by Keptn's event size) names the
    # first five in order, not all of them.
    message = refused({"labels": {f"k{i}": i for i in range(1, 8)}})
    assert "sets label(s) 'k1', 'k2', 'k3', 'k4', 'k5' to non-string values" in message
    assert "'k6'" not in message and "'k7'" not in message


def test_a_blank_file_of_exactly_the_cap_changes_nothing() -> None:
    # Whitespace is what `echo > $JOB_RESULT_FILE` style scripts leave: up to the cap it is "no
    # result", one byte over it is refused for its size like any other file.
    data = copy.deepcopy(DATA)
    assert apply(b" " * 65536, data) is data
    assert "is larger than 65536 bytes" in refused(b" " * 65537)


def test_nesting_is_counted_only_one_level_past_the_limit() -> None:
    # A deep document is not walked to its bottom: the count stops as soon as it is over.
    deep = json.loads(_nested(500))
    assert nesting_depth(deep, 10) == 11
    assert nesting_depth(deep, 499) == 500
    assert nesting_depth(deep, 500) == 500
    assert nesting_depth("scalar", 10) == 0
    assert nesting_depth([], 10) == 1


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_not_json(constant: str) -> None:
    # Taken in, they would make a finished event that no receiver accepts.
    message = refused(f'{{"result": "pass", "score": {constant}}}'.encode())
    assert "is not valid JSON" in message and f"{constant.lstrip('-')} is not a JSON number" in message
