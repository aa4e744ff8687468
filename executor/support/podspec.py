"""The parts of a Job's pod an operator (settings) or a task (job config) may set, and the checks
both apply: security context keys, node selectors, tolerations, affinity. Each check returns the
mistakes as text, so the settings can raise them and the parser can put them at their line.

The rules are the API server's (kubernetes/kubernetes pkg/apis/core/validation/validation.go:
ValidateNodeSelector's label rules, validateTolerations, the PodSecurityContext fields).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

# The keys of a container SecurityContext, by type; nested values are left to the API server.
CONTAINER_SECURITY_CONTEXT: dict[str, type] = {
    "allowPrivilegeEscalation": bool,
    "appArmorProfile": dict,
    "capabilities": dict,
    "privileged": bool,
    "procMount": str,
    "readOnlyRootFilesystem": bool,
    "runAsGroup": int,
    "runAsNonRoot": bool,
    "runAsUser": int,
    "seLinuxOptions": dict,
    "seccompProfile": dict,
    "windowsOptions": dict,
}
# The keys of a PodSecurityContext.
POD_SECURITY_CONTEXT: dict[str, type] = {
    "appArmorProfile": dict,
    "fsGroup": int,
    "fsGroupChangePolicy": str,
    "runAsGroup": int,
    "runAsNonRoot": bool,
    "runAsUser": int,
    "seLinuxChangePolicy": str,
    "seLinuxOptions": dict,
    "seccompProfile": dict,
    "supplementalGroups": list,
    "supplementalGroupsPolicy": str,
    "sysctls": list,
    "windowsOptions": dict,
}
TOLERATION_KEYS = ("key", "operator", "value", "effect", "tolerationSeconds")
TOLERATION_OPERATORS = ("Equal", "Exists")
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
AFFINITY_KEYS = ("nodeAffinity", "podAffinity", "podAntiAffinity")

_PREFIX = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def label_key_ok(key: str) -> bool:
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or len(prefix) > 253 or not _PREFIX.match(prefix)):
        return False
    return 0 < len(name) <= 63 and bool(_NAME.match(name))


def label_value_ok(value: str) -> bool:
    return len(value) <= 63 and bool(_VALUE.match(value))


def security_context_problems(value: Any, keys: Mapping[str, type], what: str) -> list[str]:
    if not isinstance(value, dict):
        return [f'{what} must be an object such as {{"runAsUser": 1000}}']
    problems = []
    for key, item in value.items():
        expected = keys.get(key)
        if expected is None:
            problems.append(f"{what}: unknown field {key!r}; allowed: {', '.join(keys)}")
        elif not isinstance(item, expected) or (expected is int and isinstance(item, bool)):
            problems.append(f"{what}.{key} must be {expected.__name__}, not {type(item).__name__}")
    return problems


def node_selector_problems(value: Any, what: str) -> list[str]:
    if not isinstance(value, dict):
        return [f"{what} must be a mapping of node labels to values, such as {{disktype: ssd}}"]
    problems = []
    for key, item in value.items():
        if not isinstance(key, str) or not label_key_ok(key):
            problems.append(f"{what}: {key!r} is not a valid label key")
        elif not isinstance(item, str) or not label_value_ok(item):
            problems.append(f"{what}.{key}: {item!r} is not a valid label value (a string of at most 63)")
    return problems


def toleration_problems(value: Any, what: str) -> list[str]:
    """validateTolerations: the fields, the operator, the effect, and their combinations."""
    if not isinstance(value, dict):
        return [f"{what} must be a mapping such as {{key: gpu, operator: Exists, effect: NoSchedule}}"]
    problems = [
        f"{what}: unknown field {k!r}; allowed: {', '.join(TOLERATION_KEYS)}"
        for k in value
        if k not in TOLERATION_KEYS
    ]
    key, operator = value.get("key", ""), value.get("operator", "Equal")
    item, effect, seconds = value.get("value", ""), value.get("effect", ""), value.get("tolerationSeconds")
    if not all(isinstance(v, str) for v in (key, operator, item, effect)):
        return [*problems, f"{what}: key, operator, value and effect must be strings"]
    if key and not label_key_ok(key):
        problems.append(f"{what}.key {key!r} is not a valid label key")
    if operator not in TOLERATION_OPERATORS:
        problems.append(f"{what}.operator {operator!r}: write Equal or Exists")
    elif operator == "Exists" and item:
        problems.append(f"{what}: value must be empty when operator is Exists")
    elif operator == "Equal" and not key:
        problems.append(f"{what}: operator must be Exists when key is empty")
    elif item and not label_value_ok(item):
        problems.append(f"{what}.value {item!r} is not a valid label value")
    if effect and effect not in TAINT_EFFECTS:
        problems.append(
            f"{what}.effect {effect!r}: write one of {', '.join(TAINT_EFFECTS)} (or leave it out)"
        )
    if seconds is not None:
        if isinstance(seconds, bool) or not isinstance(seconds, int):
            problems.append(f"{what}.tolerationSeconds must be a whole number")
        elif effect != "NoExecute":
            problems.append(f"{what}: tolerationSeconds needs effect NoExecute")
    return problems


def affinity_problems(value: Any, what: str) -> list[str]:
    if not isinstance(value, dict):
        return [f"{what} must be an object with nodeAffinity, podAffinity or podAntiAffinity"]
    return [
        f"{what}: {key!r} is not {', '.join(AFFINITY_KEYS)}, or is not an object"
        for key, item in value.items()
        if key not in AFFINITY_KEYS or not isinstance(item, dict)
    ]
