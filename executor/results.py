"""Results from jobs: a task's result.json patches the data of its action's finished event.

The file holds either RFC 6902 operations (a JSON list) or an object merged into the data
(RFC 7386 merge patch). What identifies the event to Keptn, and the outcome the executor
decided, cannot be changed by a job: a result that tries is refused with the reason.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonpatch

MAX_RESULT_BYTES = 64 * 1024
PROTECTED = ("project", "stage", "service", "status")
RESULTS = ("pass", "warning", "fail")


class ResultError(ValueError):
    pass


def apply_result(data: dict[str, Any], raw: bytes, task_name: str) -> dict[str, Any]:
    where = f"result file of task '{task_name}'"
    if len(raw) > MAX_RESULT_BYTES:
        raise ResultError(f"{where} is larger than {MAX_RESULT_BYTES} bytes")
    if not raw.strip():
        return data
    try:
        document = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ResultError(f"{where} is not valid JSON: {exc}") from None
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
    if "result" in patched and patched["result"] not in RESULTS:
        raise ResultError(f"{where} sets result to {patched['result']!r}; use one of {', '.join(RESULTS)}")
    return patched


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
