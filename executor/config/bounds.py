"""What kube-apiserver (or etcd behind it) refuses in a Job, checked before one is sent.

A Job the API server refuses is a 422 (or a 400, or etcd's 500) that the user sees only as a
failed create, after the action has begun. These rules are checked earlier instead, with the rule
named: those that depend on the config alone when it is parsed (so `lint` reports them with
FILE:LINE and `serve` refuses the config), those that depend on the event when the task is planned
(the finished event says why). Each rule cites the kubernetes/kubernetes source it mirrors.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from executor.config.model import Task
from executor.model.tasks import TaskSpec
from executor.support.quantities import parse_quantity

# apimachinery/pkg/api/validation/objectmeta.go TotalAnnotationSizeLimitB: keys and values
# together, counted in bytes (Go's len of the strings).
MAX_ANNOTATION_BYTES = 256 * 1024
# etcd's default --max-request-bytes: a larger object is refused with "request is too large".
MAX_OBJECT_BYTES = 1572864
# What a rendered Job holds besides the parts counted one by one below (labels, fixed fields,
# the init container, what the API server adds: managedFields, status): generously more than
# the few KiB it takes, so the estimate is never below the real size.
JOB_FIXED_BYTES = 64 * 1024
# The keys of the annotations the renderer adds (backends/naming.py job_annotations): ten keys
# of about 20 characters; counted as more.
OWN_ANNOTATION_KEY_BYTES = 512
# apimachinery/pkg/util/validation/validation.go: qualified names.
MAX_NAME_PART = 63
MAX_SUBDOMAIN = 253
# Go field types of the Job API (k8s.io/api/batch/v1 JobSpec): a larger number fails to decode.
INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1
# pkg/apis/core/validation: IsValidUserID / IsValidGroupID.
MAX_ID = 2**31 - 1
# helper.IsStandardContainerResourceName: the names a container may use without a domain.
STANDARD_RESOURCES = ("cpu", "memory", "ephemeral-storage")
SECCOMP_TYPES = ("Localhost", "RuntimeDefault", "Unconfined")

Subpath = tuple[str | int, ...]
Found = list[tuple[Subpath, str]]


# ---- rules on the config (the parser reports each at its line) ----


def task_problems(task: Task) -> Found:
    """Each rule the task breaks, with the path below the task where it is written."""
    found: Found = []
    found += _annotation_problems(task.annotations)
    found += _number_problems(task)
    if task.resources is not None:
        found += resource_problems(task.resources.limits, task.resources.requests, ("resources",))
    if task.security_context:
        found += security_context_problems(task.security_context, ("securityContext",))
    for i, entry in enumerate(task.env):
        if entry.value_from == "secret" and len(entry.name) > MAX_SUBDOMAIN:
            found.append(
                (
                    ("env", i, "name"),
                    f"secret name {entry.name[:40]}... is {len(entry.name)} characters; a Kubernetes "
                    f"Secret name has at most {MAX_SUBDOMAIN} (ValidateSecretName)",
                )
            )
    return found


def _annotation_problems(annotations: Mapping[str, str]) -> Found:
    found: Found = []
    for key in annotations:
        prefix, _, name = key.rpartition("/")
        if len(name) > MAX_NAME_PART:
            found.append(
                (
                    ("annotations", key),
                    f"annotation key {key!r}: the name part after the '/' is {len(name)} characters; "
                    f"Kubernetes allows at most {MAX_NAME_PART}",
                )
            )
        elif len(prefix) > MAX_SUBDOMAIN:
            found.append(
                (
                    ("annotations", key),
                    f"annotation key {key[:40]!r}...: the prefix before the '/' is {len(prefix)} "
                    f"characters; Kubernetes allows at most {MAX_SUBDOMAIN}",
                )
            )
    size = annotation_bytes(annotations.items())
    if size > MAX_ANNOTATION_BYTES:
        found.append(
            (
                ("annotations",),
                f"the annotations take {size} bytes; Kubernetes allows {MAX_ANNOTATION_BYTES} bytes "
                "of annotations per object (keys and values together)",
            )
        )
    return found


def _number_problems(task: Task) -> Found:
    found: Found = []
    for key, value, top, go in (
        ("ttlSecondsAfterFinished", task.ttl_seconds_after_finished, INT32_MAX, "int32"),
        ("activeDeadlineSeconds", task.active_deadline_seconds, INT64_MAX, "int64"),
    ):
        if value is not None and value > top:
            found.append(
                (
                    (key,),
                    f"'{key}' {value} is over {top}, the largest value the Job API holds "
                    f"({go}); the API server would refuse the Job",
                )
            )
    return found


def resource_problems(limits: Mapping[str, str], requests: Mapping[str, str], where: Subpath) -> Found:
    """ValidateResourceRequirements (pkg/apis/core/validation/validation.go): names, a request not
    above its limit, and extended resources as whole numbers with the request equal to the limit."""
    found: Found = []
    for kind, values in (("limits", limits), ("requests", requests)):
        for name, qty in values.items():
            at = (*where, kind, name)
            if "/" not in name and name not in STANDARD_RESOURCES and not name.startswith("hugepages-"):
                found.append(
                    (
                        at,
                        f"{kind}.{name}: {name!r} is not a standard resource "
                        f"({', '.join(STANDARD_RESOURCES)}, hugepages-<size>); an extended resource "
                        f"needs its domain, such as example.com/{name}",
                    )
                )
            elif _extended(name) and not _whole(qty):
                found.append((at, f"{kind}.{name}: extended resources are whole numbers, not {qty!r}"))
    for name, qty in requests.items():
        at = (*where, "requests", name)
        limit = limits.get(name)
        overcommit = not _extended(name) and not name.startswith("hugepages-")
        if overcommit:
            if limit is not None and _value(qty) > _value(limit):
                found.append(
                    (
                        at,
                        f"requests.{name} {qty} is above limits.{name} {limit}; Kubernetes refuses a "
                        "request above its limit",
                    )
                )
        elif limit is None:
            found.append(
                (
                    at,
                    f"requests.{name}: {name} cannot be overcommitted, so it needs limits.{name} too "
                    "(equal to the request)",
                )
            )
        elif _value(qty) != _value(limit):
            found.append(
                (
                    at,
                    f"requests.{name} {qty} differs from limits.{name} {limit}; {name} cannot be "
                    "overcommitted, so Kubernetes needs the two equal",
                )
            )
    return found


def _extended(name: str) -> bool:
    """Not helper.IsNativeResource: a domain other than kubernetes.io."""
    return "/" in name and "kubernetes.io/" not in name


def _value(qty: str) -> Decimal:
    try:
        return parse_quantity(qty)
    except ValueError:
        return Decimal(0)  # the parser reported the quantity itself


def _whole(qty: str) -> bool:
    value = _value(qty)
    return value == value.to_integral_value()


def security_context_problems(context: Mapping[str, Any], where: Subpath) -> Found:
    """IsValidUserID/IsValidGroupID and validateSeccompProfileField."""
    found: Found = []
    for key in ("runAsUser", "runAsGroup", "fsGroup"):
        value = context.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and not 0 <= value <= MAX_ID:
            found.append(
                ((*where, key), f"securityContext.{key} {value} must be between 0 and {MAX_ID}, inclusive")
            )
    profile = context.get("seccompProfile")
    if isinstance(profile, Mapping):
        at = (*where, "seccompProfile")
        kind, local = profile.get("type"), profile.get("localhostProfile")
        if kind not in SECCOMP_TYPES:
            found.append((at, f"seccompProfile.type {kind!r}: write one of {', '.join(SECCOMP_TYPES)}"))
        elif kind == "Localhost" and not isinstance(local, str):
            found.append(
                (
                    at,
                    "seccompProfile of type Localhost needs localhostProfile: the profile's path "
                    "relative to the kubelet's seccomp folder (such as profiles/audit.json)",
                )
            )
        elif (
            kind == "Localhost"
            and isinstance(local, str)
            and (local.startswith("/") or ".." in local.split("/"))
        ):
            found.append((at, f"seccompProfile.localhostProfile {local!r} must be a relative path"))
        elif kind != "Localhost" and local is not None:
            found.append(
                (at, f"seccompProfile.localhostProfile can only be set with type Localhost, not {kind}")
            )
    return found


# ---- rules on a planned task: what the event adds ----


def annotation_bytes(pairs: Iterable[tuple[str, str]]) -> int:
    return sum(_utf8(key) + _utf8(value) for key, value in pairs)


def _annotation_values(spec: TaskSpec) -> list[str]:
    """The texts of the annotations the renderer writes (the task's and ours), keys of the task's
    included; our own keys are counted as OWN_ANNOTATION_KEY_BYTES. A task annotation that ours
    replace is counted too: an estimate a little high, never low."""
    t = spec.trigger
    own = [t.event_id, t.event_source, t.event_type, t.keptn_context, t.project, t.stage, t.service]
    own += [spec.action_name, spec.task_name, t.event_json]
    return [*(part for pair in spec.annotations.items() for part in pair), *own]


def job_annotation_bytes(spec: TaskSpec) -> int:
    return sum(_utf8(text) for text in _annotation_values(spec)) + OWN_ANNOTATION_KEY_BYTES


def job_bytes(spec: TaskSpec) -> int:
    """An upper estimate of the Job's size as stored: each string as JSON writes it (escaped,
    with room for its key), the annotations twice (the Job's and its pod template's), each env
    name twice more (the API server's managedFields list every entry by name), the rest as
    JOB_FIXED_BYTES."""
    strings = [*spec.cmd, *spec.args, *spec.files, *spec.secret_refs, spec.image, spec.working_dir or ""]
    strings += [part for e in spec.env for part in (e.name, e.name, e.value)]
    annotations = sum(_json_bytes(text) for text in _annotation_values(spec)) + OWN_ANNOTATION_KEY_BYTES
    return sum(_json_bytes(text) for text in strings) + 2 * annotations + JOB_FIXED_BYTES


def _json_bytes(text: str) -> int:
    return len(json.dumps(text)) + 32


def spec_problem(spec: TaskSpec) -> str:
    """Why the API server would refuse this task's Job, or ""."""
    size = job_annotation_bytes(spec)
    if size > MAX_ANNOTATION_BYTES:
        return (
            f"its Job's annotations would take about {size} bytes with this event's attributes "
            f"(the event source is {_utf8(spec.trigger.event_source)} bytes, its type "
            f"{_utf8(spec.trigger.event_type)}), over the {MAX_ANNOTATION_BYTES} bytes Kubernetes "
            "allows per object"
        )
    total = job_bytes(spec)
    if total > MAX_OBJECT_BYTES:
        largest = max(spec.env, key=lambda e: len(e.value), default=None)
        hint = f"; the largest env value is {largest.name} ({len(largest.value)} bytes)" if largest else ""
        return (
            f"its Job would be about {total} bytes, over the {MAX_OBJECT_BYTES} bytes etcd stores "
            f"in one object (1.5 MiB){hint}"
        )
    return ""


def _utf8(text: str) -> int:
    # Go counts bytes; a lone surrogate (which JSON can carry) is counted as its three.
    return len(text.encode("utf-8", "surrogatepass"))
