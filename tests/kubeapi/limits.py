"""API server rules beyond the schema and ``validation.py``: decoding, size limits, and the pod
rules a Job renderer breaks (extended resources, user ids, seccomp, secret references).

Each rule names the kube-apiserver source it mirrors; messages keep the server's shape.

* Decoding (before admission and validation): a number that does not fit its Go field
  (``int32``/``int64``, or a fraction for an integer) is 400 BadRequest
  ``Job in version "v1" cannot be handled as a Job: json: cannot unmarshal number 3000000000
  into Go struct field JobSpec.spec.ttlSecondsAfterFinished of type int32``
  (staging/src/k8s.io/apiserver/pkg/endpoints/handlers/rest.go ``transformDecodeError`` over
  sigs.k8s.io/json's UnmarshalTypeError). The OpenAPI schema's ``format: int32`` is not checked
  by the schema validator (jsonschema does not assert formats), hence this walk.
* Storage: etcd refuses a request over 1.5 MiB (``--max-request-bytes`` 1572864); the API server
  passes the error on unmapped, 500 with no reason and message ``etcdserver: request is too
  large`` (staging/src/k8s.io/apiserver/pkg/endpoints/handlers/responsewriters/status.go
  ``ErrorToAPIStatus``). The fake measures the object's compact JSON; etcd holds protobuf,
  which is somewhat smaller, so the fake is a little stricter than a cluster.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources as importlib_resources
from typing import Any

from tests.kubeapi.resources import JOBS, PODS, ApiError, Obj, ResourceType
from tests.kubeapi.validation import KUBE_VERSION, FieldError, dns1123_subdomain_errors, parse_quantity

ETCD_MAX_REQUEST_BYTES = 1572864
_RANGES = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}
_MAX_ID = 2**31 - 1
_STANDARD = {"cpu", "memory", "ephemeral-storage"}


# ---------------------------------------------------------------------------------------------
# Decoding


@cache
def _definitions() -> dict[str, Any]:
    version = KUBE_VERSION.rsplit(".", 1)[0]
    folder = importlib_resources.files("kubernetes_validate").joinpath("kubernetes-json-schema")
    text = folder.joinpath(f"v{version}.0-local-strict", "_definitions.json").read_text()
    defs: dict[str, Any] = json.loads(text)["$defs"]
    return defs


def _resolve(schema: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
    ref = schema.get("$ref")
    if not ref:
        return None, schema
    name = ref.rsplit("/", 1)[-1]
    return name, _definitions().get(name, {})


def _walk(value: Any, schema: dict[str, Any], struct: str, path: list[str]) -> str | None:
    """The first unmarshal error of ``value`` against ``schema``, as encoding/json words it."""
    name, schema = _resolve(schema)
    if name:
        struct = name.rsplit(".", 1)[-1]
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            sub = props.get(key) if key in props else (extra if isinstance(extra, dict) else None)
            if sub is not None:
                found = _walk(item, sub, struct, [*path, key])
                if found:
                    return found
        return None
    if isinstance(value, list):
        items = schema.get("items")
        for item in value if isinstance(items, dict) else ():
            found = _walk(item, items, struct, path)
            if found:
                return found
        return None
    fmt = schema.get("format")
    if fmt in _RANGES and isinstance(value, int | float) and not isinstance(value, bool):
        low, high = _RANGES[fmt]
        if value != int(value) or not low <= int(value) <= high:
            number = json.dumps(value)
            return f"json: cannot unmarshal number {number} into Go struct field {struct}.{'.'.join(path)} of type {fmt}"
    return None


def decode_check(rt: ResourceType, obj: Obj) -> None:
    """400 BadRequest when a number does not fit its Go type (Jobs and Pods)."""
    if rt not in (JOBS, PODS):
        return
    prefix = "io.k8s.api.core." if not rt.group else f"io.k8s.api.{rt.group}."
    root = prefix + f"{rt.version}.{rt.kind}"
    schema = _definitions().get(root)
    if schema is None:
        return
    error = _walk(obj, schema, rt.kind, [])
    if error:
        message = f'{rt.kind} in version "{rt.version}" cannot be handled as a {rt.kind}: {error}'
        raise ApiError(400, message, reason="BadRequest")


# ---------------------------------------------------------------------------------------------
# Storage


def check_stored_size(obj: Obj) -> None:
    """500 ``etcdserver: request is too large`` for an object over etcd's request limit."""
    size = len(json.dumps(obj, separators=(",", ":")).encode())
    if size > ETCD_MAX_REQUEST_BYTES:
        raise ApiError(500, "etcdserver: request is too large", reason="")


# ---------------------------------------------------------------------------------------------
# Pod rules (kubernetes/kubernetes: pkg/apis/core/validation/validation.go)


def _native(name: str) -> bool:
    """helper.IsNativeResource: no domain, or a ``kubernetes.io/`` one."""
    return "/" not in name or "kubernetes.io/" in name


def _resource_errors(resources: Obj, path: str) -> list[FieldError]:
    """ValidateResourceRequirements: names (validateContainerResourceName), integer extended
    resources, and requests equal to limits where overcommit is not allowed."""
    errors: list[FieldError] = []
    limits = resources.get("limits") or {}
    requests = resources.get("requests") or {}
    for kind, values in (("limits", limits), ("requests", requests)):
        for name, qty in values.items():
            at = f"{path}.{kind}[{name}]"
            if "/" not in name:
                if name not in _STANDARD and not name.startswith("hugepages-"):
                    errors.append(
                        FieldError(at, "Invalid value", name, "must be a standard resource for containers")
                    )
            elif not _native(name):
                prefix, _, short = name.partition("/")
                if name.startswith("requests.") or dns1123_subdomain_errors(prefix) or not short:
                    errors.append(
                        FieldError(
                            at, "Invalid value", name, "doesn't follow extended resource name standard"
                        )
                    )
                try:
                    number = parse_quantity(qty)
                except ValueError:
                    continue  # validation.py reports the quantity
                if number != number.to_integral_value():
                    errors.append(FieldError(at, "Invalid value", str(qty), "must be an integer"))
    for name, qty in requests.items():
        if _native(name) and not name.startswith("hugepages-"):
            continue  # overcommit allowed: validation.py checks request <= limit
        if name not in limits:
            detail = "Limit must be set for non overcommitable resources"
            errors.append(FieldError(f"{path}.limits", "Required value", None, detail))
            continue
        try:
            equal = parse_quantity(qty) == parse_quantity(limits[name])
        except ValueError:
            continue
        if not equal:
            detail = f"must be equal to {name} limit of {limits[name]}"
            errors.append(FieldError(f"{path}.requests", "Invalid value", str(qty), detail))
    return errors


def _id_errors(context: Obj, path: str, keys: tuple[str, ...]) -> list[FieldError]:
    """validation.IsValidUserID / IsValidGroupID: 0 <= id <= 2147483647."""
    errors = []
    for key in keys:
        value = context.get(key)
        if isinstance(value, int) and not 0 <= value <= _MAX_ID:
            detail = f"must be between 0 and {_MAX_ID}, inclusive"
            errors.append(FieldError(f"{path}.{key}", "Invalid value", value, detail))
    return errors


def _seccomp_errors(context: Obj, path: str) -> list[FieldError]:
    """validateSeccompProfileField."""
    profile = context.get("seccompProfile")
    if not isinstance(profile, dict):
        return []
    at = f"{path}.seccompProfile"
    kind = profile.get("type")
    local = profile.get("localhostProfile")
    if kind == "Localhost":
        if local is None:
            return [
                FieldError(
                    f"{at}.localhostProfile",
                    "Required value",
                    None,
                    "must be set when seccomp type is Localhost",
                )
            ]
        if local.startswith("/") or ".." in local.split("/"):
            return [FieldError(f"{at}.localhostProfile", "Invalid value", local, "must be a relative path")]
        return []
    if kind in ("RuntimeDefault", "Unconfined"):
        if local is not None:
            detail = "can only be set when seccomp type is Localhost"
            return [FieldError(f"{at}.localhostProfile", "Invalid value", local, detail)]
        return []
    detail = 'supported values: "Localhost", "RuntimeDefault", "Unconfined"'
    return [FieldError(f"{at}.type", "Unsupported value", kind, detail)]


def _ref_name_errors(name: Any, at: str) -> list[FieldError]:
    """ValidateSecretName / ValidateConfigMapName: a DNS-1123 subdomain (at most 253)."""
    if not isinstance(name, str) or not name:
        return [] if name is None else [FieldError(at, "Required value")]
    return [FieldError(at, "Invalid value", name, detail) for detail in dns1123_subdomain_errors(name)]


def _container_rules(c: Obj, path: str) -> list[FieldError]:
    errors = _resource_errors(c.get("resources") or {}, f"{path}.resources")
    context = c.get("securityContext") or {}
    errors += _id_errors(context, f"{path}.securityContext", ("runAsUser", "runAsGroup"))
    errors += _seccomp_errors(context, f"{path}.securityContext")
    for i, env in enumerate(c.get("env") or []):
        source = env.get("valueFrom") or {}
        for ref in ("secretKeyRef", "configMapKeyRef"):
            if isinstance(source.get(ref), dict):
                at = f"{path}.env[{i}].valueFrom.{ref}.name"
                errors += _ref_name_errors(source[ref].get("name"), at)
    for i, env in enumerate(c.get("envFrom") or []):
        for ref in ("secretRef", "configMapRef"):
            if isinstance(env.get(ref), dict):
                errors += _ref_name_errors(env[ref].get("name"), f"{path}.envFrom[{i}].{ref}.name")
    return errors


def pod_rule_errors(rt: ResourceType, obj: Obj) -> list[FieldError]:
    """The rules above for a Job's pod template or a Pod."""
    if rt is JOBS:
        spec, path = ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}, "spec.template.spec"
    elif rt is PODS:
        spec, path = obj.get("spec") or {}, "spec"
    else:
        return []
    errors: list[FieldError] = []
    context = spec.get("securityContext") or {}
    errors += _id_errors(context, f"{path}.securityContext", ("runAsUser", "runAsGroup", "fsGroup"))
    errors += _seccomp_errors(context, f"{path}.securityContext")
    for key in ("initContainers", "containers"):
        for i, c in enumerate(spec.get(key) or []):
            errors += _container_rules(c, f"{path}.{key}[{i}]")
    for i, volume in enumerate(spec.get("volumes") or []):
        if isinstance(volume.get("secret"), dict):
            errors += _ref_name_errors(
                volume["secret"].get("secretName"), f"{path}.volumes[{i}].secret.secretName"
            )
        if isinstance(volume.get("configMap"), dict):
            errors += _ref_name_errors(volume["configMap"].get("name"), f"{path}.volumes[{i}].configMap.name")
    return errors
