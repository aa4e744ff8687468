"""Results from jobs: a task's result.json patches the data of its action's finished event.

The file holds either RFC 6902 operations (a JSON list) or an object merged into the data
(RFC 7386 merge patch). What identifies the event to Keptn, and the outcome the executor
decided, cannot be changed by a job: a result that tries is refused with the reason, and so is
one that would make the data something Keptn refuses (check_keptn_data).
"""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonpatch

MAX_RESULT_BYTES = 64 * 1024
# Levels of nested arrays and objects in a result file. Merging, copying and serialising the
# finished event recurse once per level, and Python's stack ends near 1,000: past it a result
# became "internal error". Keptn's data is a few levels deep; 64 leaves room for any report.
MAX_RESULT_DEPTH = 64
PROTECTED = ("project", "stage", "service", "status")
RESULTS = ("pass", "warning", "fail")


class ResultError(ValueError):
    pass


def read_result(raw: bytes, where: str) -> Any:
    """A result file's JSON (None when it is empty), refused with the reason when it is too large,
    not JSON, or nested deeper than MAX_RESULT_DEPTH."""
    if len(raw) > MAX_RESULT_BYTES:
        raise ResultError(f"{where} is larger than {MAX_RESULT_BYTES} bytes")
    if not raw.strip():
        return None
    too_deep = ResultError(f"{where} is nested more than {MAX_RESULT_DEPTH} levels deep; flatten it")
    try:
        # NaN and Infinity are the standard library's extensions, not JSON: in a finished event
        # they would make it one no receiver accepts (as model/events.py refuses them in events).
        document = json.loads(raw, parse_constant=_not_a_number)
    except RecursionError:  # deeper than the parser's own stack allows: far past the bound
        raise too_deep from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ResultError(f"{where} is not valid JSON: {exc}") from None
    if nesting_depth(document, MAX_RESULT_DEPTH) > MAX_RESULT_DEPTH:
        raise too_deep
    return document


def _not_a_number(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number (RFC 8259)")


def nesting_depth(document: Any, limit: int) -> int:
    """Levels of arrays and objects (a scalar is 0, `[]` 1), counted without recursion and only
    up to limit + 1."""
    deepest = 0
    level: list[Any] = [document]
    while level and deepest <= limit:
        nested = [v for v in level if isinstance(v, dict | list)]
        if not nested:
            break
        deepest += 1
        level = [child for v in nested for child in (v.values() if isinstance(v, dict) else v)]
    return deepest


def apply_result(data: dict[str, Any], raw: bytes, task_name: str) -> dict[str, Any]:
    where = f"result file of task '{task_name}'"
    if len(raw) <= MAX_RESULT_BYTES and not raw.strip():
        return data
    document = read_result(raw, where)
    if isinstance(document, list):
        try:
            patched = jsonpatch.JsonPatch(document).apply(copy.deepcopy(data))
        except (
            jsonpatch.JsonPatchException,
            jsonpatch.JsonPointerException,
            TypeError,
            KeyError,
        ) as exc:
            raise ResultError(f"{where} is not a JSON Patch that applies: {exc}") from None
    elif isinstance(document, dict):
        patched = merge_patch(copy.deepcopy(data), document)
    else:
        raise ResultError(f"{where} must hold a JSON object or a JSON Patch list")
    if not isinstance(patched, dict):
        raise ResultError(f"{where} turned the event data into something other than an object")
    for key in PROTECTED:
        if patched.get(key) != data.get(key):
            raise ResultError(f"{where} may not change '{key}'")
    if "result" in data and "result" not in patched:
        raise ResultError(f"{where} removes 'result'; a finished event needs one of {', '.join(RESULTS)}")
    check_keptn_data(patched, where)
    return patched


def check_keptn_data(data: dict[str, Any], where: str) -> None:
    """What Keptn needs of a finished event's data after a result file patched it; otherwise the
    api-service refuses the event (400) and the Keptn task never finishes. go-utils
    pkg/lib/v0_2_0/events.go EventData (labels map[string]string, string fields), result.go
    (pass|warning|fail); keptn/keptn api/handlers/eventvalidation.go (result and status set)."""
    if "result" in data and data["result"] not in RESULTS:
        raise ResultError(f"{where} sets result to {data['result']!r}; use one of {', '.join(RESULTS)}")
    labels = data.get("labels")
    if labels is not None:
        if not isinstance(labels, dict):
            raise ResultError(f"{where} makes 'labels' a {type(labels).__name__}; Keptn labels are an object")
        wrong = sorted(str(k) for k, v in labels.items() if not isinstance(v, str))
        if wrong:
            raise ResultError(
                f"{where} sets label(s) {', '.join(repr(k) for k in wrong[:5])} to non-string values; "
                'Keptn labels map strings to strings (write "1", not 1)'
            )


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return patch
    if not isinstance(target, dict):
        target = {}
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        else:
            target[key] = merge_patch(target.get(key), value)
    return target
