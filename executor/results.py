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
