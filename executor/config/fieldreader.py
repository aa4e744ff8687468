"""Typed reads of a loaded YAML mapping that record a problem, with its line, instead of raising:
the parser's vocabulary (a mapping of known fields, a string, a list of strings, a number, a flag).
"""

from __future__ import annotations

import datetime
import difflib
from typing import Any

from executor.config.fields import FIELDS, REQUIRED
from executor.config.yamlload import Document, Path
from executor.model.problems import Problem


class FieldReader:
    def __init__(self, doc: Document, source: str) -> None:
        self.doc = doc
        self.source = source
        self.problems: list[Problem] = []

    def error(self, path: Path, message: str) -> None:
        self.problems.append(Problem(self.source, self.doc.line(path), message))

    def mapping(self, value: Any, path: Path, kind: str, where: str) -> dict[str, Any] | None:
        if not isinstance(value, dict):
            self.error(path, f"{where} must be a mapping of keys to values, not {kind_of(value)}")
            return None
        allowed = FIELDS[kind]
        for key in value:
            if key not in allowed:
                hint = difflib.get_close_matches(key, allowed, n=1)
                suggestion = f"did you mean '{hint[0]}'?" if hint else f"allowed: {', '.join(allowed)}"
                self.error((*path, key), f"unknown field '{key}' in {where}; {suggestion}")
        for key in REQUIRED.get(kind, ()):
            if key not in value or value[key] is None:
                self.error(path, f"{where} is missing required field '{key}'")
        return value

    def string(self, obj: dict[str, Any], key: str, path: Path, *, scalar_ok: bool = False) -> str | None:
        value = obj.get(key)
        if value is None:
            return None
        if isinstance(value, str):
            return value
        if scalar_ok and isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        self.error((*path, key), f"'{key}' must be a string, not {kind_of(value)}")
        return None

    def strings(self, obj: dict[str, Any], key: str, path: Path) -> tuple[str, ...]:
        value = obj.get(key)
        if value is None:
            return ()
        if not isinstance(value, list):
            self.error((*path, key), f"'{key}' must be a list of strings, not {kind_of(value)}")
            return ()
        out = []
        for i, item in enumerate(value):
            if isinstance(item, bool) or not isinstance(item, (str, int, float)):
                self.error((*path, key, i), f"'{key}' item {i + 1} must be a string, not {kind_of(item)}")
            else:
                out.append(str(item))
        return tuple(out)

    def integer(self, obj: dict[str, Any], key: str, path: Path, *, minimum: int) -> int | None:
        value = obj.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self.error((*path, key), f"'{key}' must be a whole number of seconds, not {kind_of(value)}")
            return None
        if value < minimum:
            self.error((*path, key), f"'{key}' must be at least {minimum}, not {value}")
            return None
        return value

    def boolean(self, obj: dict[str, Any], key: str, path: Path) -> bool:
        value = obj.get(key, False)
        if not isinstance(value, bool):
            self.error((*path, key), f"'{key}' must be true or false, not {kind_of(value)}")
            return False
        return value


def kind_of(value: Any) -> str:
    if value is None:
        return "empty"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "a number"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, (datetime.date, datetime.datetime)):
        return "a date (put it in quotes to write text)"
    return type(value).__name__
