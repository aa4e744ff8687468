"""PATCH bodies: JSON merge patch, strategic merge patch (approximated), JSON patch."""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch

from tests.kubeapi.resources import ApiError

# patchMergeKey of the lists a strategic merge patch merges item by item (the rest are replaced).
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "ports": "containerPort",
    "conditions": "type",
    "ownerReferences": "uid",
    "imagePullSecrets": "name",
}


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    """Strategic merge patch for the lists that matter here (containers, env, ... by key).

    Approximation: ``$patch``/``$retainKeys`` directives other than ``$patch: delete`` on
    list items are ignored, and primitive lists (finalizers) are replaced, not merged.
    """
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$"):
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list) and key in MERGE_KEYS and isinstance(result.get(key), list):
            result[key] = _merge_list(result[key], value, MERGE_KEYS[key])
        elif isinstance(value, dict):
            result[key] = strategic_merge_patch(result.get(key), value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def _merge_list(items: list[Any], patch: list[Any], merge_key: str) -> list[Any]:
    if not all(isinstance(item, dict) and merge_key in item for item in patch):
        return copy.deepcopy(patch)
    merged = copy.deepcopy(items)
    for item in patch:
        index = next(
            (i for i, x in enumerate(merged) if isinstance(x, dict) and x.get(merge_key) == item[merge_key]),
            None,
        )
        if item.get("$patch") == "delete":
            if index is not None:
                del merged[index]
        elif index is None:
            merged.append(strategic_merge_patch({}, item))
        else:
            merged[index] = strategic_merge_patch(merged[index], item)
    return merged


def apply_patch(content_type: str, target: dict[str, Any], patch: Any) -> dict[str, Any]:
    """The patched copy of ``target``; ApiError 415/422 as the API server answers."""
    if content_type == "application/merge-patch+json":
        result = merge_patch(target, patch)
    elif content_type == "application/strategic-merge-patch+json":
        result = strategic_merge_patch(target, patch)
    elif content_type == "application/json-patch+json":
        try:
            result = jsonpatch.apply_patch(target, patch)
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, TypeError) as e:
            raise ApiError(422, f"the server rejected our request due to an error in our request: {e}") from e
    else:
        raise ApiError(
            415,
            "the body of the request was in an unknown format - accepted media types include:"
            " application/json-patch+json, application/merge-patch+json,"
            " application/strategic-merge-patch+json",
        )
    if not isinstance(result, dict):
        raise ApiError(422, "the patch does not result in an object")
    return result
