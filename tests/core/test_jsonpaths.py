"""Values found in an event: how they read as env vars (FEATURES.md, env `as`), what a path that
finds nothing gives, and the bound on recursive descent over large events."""

from __future__ import annotations

from typing import Any

import pytest

from executor.config.jsonpaths import (
    MAX_DESCENT_BYTES,
    MISSING,
    JsonPathLimitError,
    JsonPathSyntaxError,
    as_text,
    compile_path,
    find_first,
)

# ---- as_text: the default, `as: json` and `as: yaml` ----


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("plain text", "plain text"),  # a string stays as it is, unquoted
        ("ü", "ü"),
        (3, "3"),
        (1.5, "1.5"),
        (True, "true"),
        (None, "null"),
        ({"a": [1, "ü"], "b": None}, '{"a":[1,"ü"],"b":null}'),  # compact, UTF-8 kept
        ([1, 2], "[1,2]"),
    ],
)
def test_default_text(value: Any, expected: str) -> None:
    assert as_text(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("plain text", '"plain text"'),  # json always encodes, strings included
        ("ü", '"ü"'),
        (3, "3"),
        ({"b": 1, "a": [1, 2]}, '{"b":1,"a":[1,2]}'),  # the event's key order, no spaces
    ],
)
def test_json_text(value: Any, expected: str) -> None:
    assert as_text(value, "json") == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        # Block style in the event's key order, as yaml.v2 (JES) wrote it.
        ({"b": 1, "a": {"c": [1, 2]}}, "b: 1\na:\n  c:\n  - 1\n  - 2\n"),
        (["x", "y"], "- x\n- y\n"),
        # A bare scalar without PyYAML's document end marker ("...").
        ("hello", "hello\n"),
        (3, "3\n"),
        (None, "null\n"),
        ("...", "'...'\n"),  # quoted, so no marker to take off
    ],
)
def test_yaml_text(value: Any, expected: str) -> None:
    assert as_text(value, "yaml") == expected


# ---- find_first ----


def test_a_path_through_jsonpath_ng_that_finds_nothing_is_missing() -> None:
    document = {"data": {"items": [{"n": 1}]}}
    assert find_first("$.data.items[*].absent", document) is MISSING
    assert find_first("$.data.items[?(@.n > 5)].n", document) is MISSING
    assert find_first("$..absent", document) is MISSING


def _document_of(size: int) -> dict[str, Any]:
    """A document whose compact UTF-8 JSON is exactly `size` bytes."""
    return {"a": "x" * (size - 8)}  # {"a":""} is 8 bytes


def test_recursive_descent_is_refused_over_the_bound_with_what_to_do() -> None:
    with pytest.raises(JsonPathLimitError) as caught:
        find_first("$..a", _document_of(MAX_DESCENT_BYTES + 1))
    message = str(caught.value)
    assert "'$..a'" in message
    assert "over 64 KiB" in message
    assert "name the path to the value instead" in message


def test_recursive_descent_runs_up_to_the_bound() -> None:
    document = _document_of(MAX_DESCENT_BYTES)
    assert find_first("$..a", document) == document["a"]


def test_the_bound_counts_utf8_bytes_not_escapes() -> None:
    # "ü" is 2 bytes of UTF-8 but 6 as a JSON \u escape: the event as sent is what counts.
    document = {"a": "ü" * ((MAX_DESCENT_BYTES - 8) // 2)}
    assert find_first("$..a", document) == document["a"]


def test_only_descent_is_bounded() -> None:
    # Named paths, plain or through jsonpath-ng, read large events whole.
    big = {"data": {"items": [{"n": 1}]}, "pad": "x" * (2 * MAX_DESCENT_BYTES)}
    assert find_first("$.data.items[*].n", big) == 1
    assert find_first("$.data.items[0].n", big) == 1
    # A key spelled with two dots is a name, not a descent.
    assert find_first("$['a..b']", {"a..b": 7, "pad": big["pad"]}) == 7


# ---- compile_path ----


@pytest.mark.parametrize(
    ("expression", "words"),
    [
        ("", "jsonpath is empty"),
        ("   ", "jsonpath is empty"),
        ("$.data[?(@.name =~ 'a.*')]", "regex filters (=~) are not supported"),
        ("$.data[", "invalid jsonpath '$.data['"),
    ],
)
def test_bad_paths_say_what_to_fix(expression: str, words: str) -> None:
    with pytest.raises(JsonPathSyntaxError) as caught:
        compile_path(expression)
    assert words in str(caught.value)
