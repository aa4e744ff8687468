"""JSONPath expressions over an event, compiled once and rendered as text the Keptn way."""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Any

import yaml
from jsonpath_ng import JSONPath
from jsonpath_ng.exceptions import JsonPathLexerError, JsonPathParserError
from jsonpath_ng.ext.parser import parse as _parse


class JsonPathSyntaxError(ValueError):
    pass


# Bounded work per event: a regex filter (`=~`) runs Python's backtracking `re` over event
# text, exponential in the worst case and not interruptible, so it is refused; recursive
# descent (`..`) visits the whole event, so it runs only over events up to this size.
MAX_DESCENT_BYTES = 64 * 1024


class JsonPathLimitError(ValueError):
    """A jsonpath would do unbounded work on this event; the message says which bound and why."""


@lru_cache(maxsize=4096)
def compile_path(expression: str) -> JSONPath:
    if not expression.strip():
        raise JsonPathSyntaxError("jsonpath is empty; write one such as $.data.project")
    if "=~" in expression:
        raise JsonPathSyntaxError(
            f"jsonpath {expression!r}: regex filters (=~) are not supported, a regular expression "
            "over event data can take exponential time; compare with == instead"
        )
    try:
        return _parse(expression)
    except (JsonPathLexerError, JsonPathParserError, Exception) as exc:  # the lexer raises bare Exception
        raise JsonPathSyntaxError(f"invalid jsonpath {expression!r}: {exc}") from None


_MISSING = object()


def find_all(expression: str, document: Any) -> list[Any]:
    return [m.value for m in compile_path(expression).find(document)]


# `$.data.test.teststrategy`, `$.data.uris[0]`, `$['a b']`: nearly every path in real configs.
_STEP = re.compile(r"\.([A-Za-z_][A-Za-z0-9_-]*)|\[(\d+)\]|\['([^'\\]*)'\]")
_Steps = tuple[str | int, ...]


@lru_cache(maxsize=4096)
def _plain_steps(expression: str) -> _Steps | None:
    """The keys and indexes of a path without wildcards, filters or slices; else None.

    Walking them directly gives the same answer as jsonpath-ng at a fraction of the cost, and
    matching runs every configured filter for every event.
    """
    if not expression.startswith("$"):
        return None
    steps: list[str | int] = []
    position = 1
    while position < len(expression):
        match = _STEP.match(expression, position)
        if match is None:
            return None
        name, index, quoted = match.groups()
        steps.append(int(index) if index is not None else (name if name is not None else quoted))
        position = match.end()
    return tuple(steps)


def find_first(expression: str, document: Any) -> Any:
    """The first value found, or `MISSING` when the path finds nothing."""
    steps = _plain_steps(expression)
    if steps is None:
        if ".." in expression and _size(document) > MAX_DESCENT_BYTES:
            raise JsonPathLimitError(
                f"jsonpath {expression!r} searches the whole event (..), which is over "
                f"{MAX_DESCENT_BYTES // 1024} KiB; name the path to the value instead"
            )
        found = compile_path(expression).find(document)
        return found[0].value if found else _MISSING
    value = document
    for step in steps:
        if isinstance(step, int):
            if not isinstance(value, list) or step >= len(value):
                return _MISSING
        elif not isinstance(value, dict) or step not in value:
            return _MISSING
        value = value[step]
    return value


MISSING = _MISSING


def _size(document: Any) -> int:
    return len(json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode())


def as_text(value: Any, fmt: str | None = None) -> str:
    """A found value as an env var or match text.

    Default: a string stays as it is, other scalars use their JSON spelling (true, 3, null) and
    maps and lists are JSON. `yaml` dumps block YAML; `json` always JSON-encodes.
    """
    if fmt == "yaml":
        text = yaml.safe_dump(value, default_flow_style=False, sort_keys=False)
        # A bare scalar gets PyYAML's document end marker; yaml.v2 (JES) writes none.
        return text.removesuffix("...\n") if not isinstance(value, (dict, list)) else text
    if fmt == "json":
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
