"""JSONPath expressions over an event, compiled once and rendered as text the Keptn way."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

import yaml
from jsonpath_ng import JSONPath
from jsonpath_ng.exceptions import JsonPathLexerError, JsonPathParserError
from jsonpath_ng.ext.parser import parse as _parse


class JsonPathSyntaxError(ValueError):
    pass


@lru_cache(maxsize=4096)
def compile_path(expression: str) -> JSONPath:
    if not expression.strip():
        raise JsonPathSyntaxError("jsonpath is empty; write one such as $.data.project")
    try:
        return _parse(expression)
    except (JsonPathLexerError, JsonPathParserError, Exception) as exc:  # the lexer raises bare Exception
        raise JsonPathSyntaxError(f"invalid jsonpath {expression!r}: {exc}") from None


_MISSING = object()


def find_all(expression: str, document: Any) -> list[Any]:
    return [m.value for m in compile_path(expression).find(document)]


def find_first(expression: str, document: Any) -> Any:
    """The first value found, or `MISSING` when the path finds nothing."""
    found = compile_path(expression).find(document)
    return found[0].value if found else _MISSING


MISSING = _MISSING


def as_text(value: Any, fmt: str | None = None) -> str:
    """A found value as an env var or match text.

    Default: a string stays as it is, other scalars use their JSON spelling (true, 3, null) and
    maps and lists are JSON. `yaml` dumps block YAML; `json` always JSON-encodes.
    """
    if fmt == "yaml":
        return yaml.safe_dump(value, default_flow_style=False, sort_keys=False)
    if fmt == "json":
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
