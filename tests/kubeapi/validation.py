"""What the API server refuses with 422 Invalid: schema violations and semantic checks.

The schema check is the official OpenAPI schema through ``kubernetes_validate``
(strict: unknown fields are errors). Mode ``"full"`` calls
``kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)`` for every object;
``"cached"`` runs the very same validator over the very same schema files but
builds it once per kind (about 50x faster: 0.25 ms instead of 12 ms per Job, what
a benchmark creating thousands of Jobs needs); ``"off"`` skips it.

The semantic checks are the API server's own (ValidateObjectMeta, ValidateJob,
ValidatePodTemplate, ValidateSecret) for the rules a Job renderer can break:
names, labels, annotations, restartPolicy, container names and images,
environment variable names, volume mounts, resource quantities and
requests <= limits, non-negative counts, immutable pod template on update.
Messages have the API server's shape: ``field: Invalid value: "x": detail``.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import cache
from importlib import resources as importlib_resources
from typing import Any, Literal

import jsonschema
import kubernetes_validate
from referencing import Registry, Resource

from tests.kubeapi.resources import JOBS, LEASES, PODS, SECRETS, ApiError, Obj, ResourceType

KUBE_VERSION = "1.37.0"
TOTAL_ANNOTATION_SIZE_LIMIT = 256 * 1024
ValidationMode = Literal["full", "cached", "off"]

_DNS1123_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN = rf"{_DNS1123_LABEL}(\.{_DNS1123_LABEL})*"
_QUALIFIED_NAME = r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_LABEL_VALUE = rf"({_QUALIFIED_NAME})?"
_QUANTITY = r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"

_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or"
    " '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex"
    f" used for validation is '{_DNS1123_SUBDOMAIN}')"
)
_LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and"
    " must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex"
    f" used for validation is '{_DNS1123_LABEL}')"
)
_NAME_PART_MSG = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end"
    " with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used"
    f" for validation is '{_QUALIFIED_NAME}')"
)
_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or"
    " '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or"
    f" 'my_value',  or '12345', regex used for validation is '{_LABEL_VALUE}')"
)


def _too_long(n: int) -> str:
    return f"must be no more than {n} characters"


def dns1123_subdomain_errors(value: str, max_len: int = 253) -> list[str]:
    errors = [] if len(value) <= max_len else [_too_long(max_len)]
    if not re.fullmatch(_DNS1123_SUBDOMAIN, value):
        errors.append(_SUBDOMAIN_MSG)
    return errors


def dns1123_label_errors(value: str) -> list[str]:
    errors = [] if len(value) <= 63 else [_too_long(63)]
    if not re.fullmatch(_DNS1123_LABEL, value):
        errors.append(_LABEL_MSG)
    return errors


def label_key_errors(key: str) -> list[str]:
    """Errors of a qualified name (label or annotation key): ``[prefix/]name``."""
    prefix, _, name = key.rpartition("/")
    errors: list[str] = []
    if "/" in key and not prefix:
        errors.append("prefix part must be non-empty")
    elif prefix:
        errors += [f"prefix part {e}" for e in dns1123_subdomain_errors(prefix)]
    if not name:
        errors.append("name part must be non-empty")
    else:
        if len(name) > 63:
            errors.append(f"name part {_too_long(63)}")
        if not re.fullmatch(_QUALIFIED_NAME, name):
            errors.append(_NAME_PART_MSG)
    return errors


def label_value_errors(value: str) -> list[str]:
    errors = [] if len(value) <= 63 else [_too_long(63)]
    if not re.fullmatch(_LABEL_VALUE, value):
        errors.append(_VALUE_MSG)
    return errors


@dataclass(frozen=True)
class FieldError:
    """One cause of a 422, as the API server's field.Error renders it."""

    field: str
    type: str  # "Invalid value", "Required value", "Unsupported value", "Duplicate value", ...
    value: Any = None
    detail: str = ""

    @property
    def reason(self) -> str:
        return {
            "Invalid value": "FieldValueInvalid",
            "Required value": "FieldValueRequired",
            "Unsupported value": "FieldValueNotSupported",
            "Duplicate value": "FieldValueDuplicate",
            "Not found": "FieldValueNotFound",
            "Forbidden": "FieldValueForbidden",
            "Too long": "FieldValueTooLong",
        }.get(self.type, "FieldValueInvalid")

    def cause_message(self) -> str:
        text = self.type
        if self.value is not None:
            value = self.value if isinstance(self.value, str) else json.dumps(self.value)
            text += f': "{value}"' if isinstance(self.value, str) else f": {value}"
        if self.detail:
            text += f": {self.detail}"
        return text

    def __str__(self) -> str:
        return f"{self.field}: {self.cause_message()}"


def invalid(rt: ResourceType, name: str, errors: list[FieldError]) -> ApiError:
    """The 422 Invalid Status with one cause per error, as the API server answers."""
    joined = str(errors[0]) if len(errors) == 1 else "[" + ", ".join(map(str, errors)) + "]"
    causes = [{"reason": e.reason, "message": e.cause_message(), "field": e.field} for e in errors]
    return ApiError(
        422,
        f'{rt.kind_qualified} "{name}" is invalid: {joined}',
        reason="Invalid",
        details=rt.details(name, causes=causes),
    )


# ---------------------------------------------------------------------------------------------
# Schema validation (kubernetes_validate)


@cache
def _cached_validator(kind: str, api_version: str) -> jsonschema.protocols.Validator | None:
    """The validator ``kubernetes_validate.validate`` builds per call, built once."""
    version = KUBE_VERSION.rsplit(".", 1)[0]
    files = importlib_resources.files("kubernetes_validate").joinpath("kubernetes-json-schema")
    schema_dir = files.joinpath(f"v{version}.0-local-strict")
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    path = schema_dir.joinpath(f"{kind.lower()}-{group_version}.json")
    if not path.is_file():
        return None
    schema = json.loads(path.read_text())
    definitions = json.loads(schema_dir.joinpath("_definitions.json").read_text())
    registry: Registry[Any] = Resource.from_contents(schema) @ Registry()
    registry = Resource.from_contents(definitions) @ registry
    return jsonschema.validators.Draft202012Validator(schema, registry=registry)


def _path(items: Iterable[Any]) -> str:
    text = ""
    for item in items:
        text += f"[{item}]" if isinstance(item, int) else (f".{item}" if text else str(item))
    return text or "<root>"


def schema_error(obj: Obj, mode: ValidationMode) -> FieldError | None:
    """The first schema violation of ``obj`` (strict: unknown fields too), or None."""
    if mode == "off":
        return None
    try:
        if mode == "full":
            kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
        else:
            validator = _cached_validator(obj["kind"], obj["apiVersion"])
            if validator is not None:
                validator.validate(obj)
    except kubernetes_validate.SchemaNotFoundError:
        return None
    except jsonschema.ValidationError as e:
        return FieldError(_path(e.path), "Invalid value", None, e.message)
    return None


# ---------------------------------------------------------------------------------------------
# Semantic validation


def meta_errors(rt: ResourceType, meta: Obj, field: str = "metadata") -> list[FieldError]:
    """ValidateObjectMeta: name, labels, annotations (name only when ``field`` is metadata)."""
    errors: list[FieldError] = []
    if field == "metadata":
        name = meta.get("name")
        if not name:
            errors.append(
                FieldError("metadata.name", "Required value", None, "name or generateName is required")
            )
        elif rt.kind == "Namespace":  # ValidateNamespaceName: a DNS-1123 label
            for detail in dns1123_label_errors(name):
                errors.append(FieldError("metadata.name", "Invalid value", name, detail))
        else:
            max_len = 63 if rt is JOBS else 253
            for detail in dns1123_subdomain_errors(name, max_len):
                errors.append(FieldError("metadata.name", "Invalid value", name, detail))
    for key, value in (meta.get("labels") or {}).items():
        for detail in label_key_errors(key):
            errors.append(FieldError(f"{field}.labels", "Invalid value", key, detail))
        if not isinstance(value, str):
            continue  # the schema check reports it
        for detail in label_value_errors(value):
            errors.append(FieldError(f"{field}.labels", "Invalid value", value, detail))
    annotations = meta.get("annotations") or {}
    for key in annotations:
        for detail in label_key_errors(key.lower()):
            errors.append(FieldError(f"{field}.annotations", "Invalid value", key, detail))
    # ValidateAnnotations (staging/src/k8s.io/apimachinery/pkg/api/validation/objectmeta.go): Go's
    # len() of keys and values, i.e. UTF-8 bytes, against TotalAnnotationSizeLimitB (256 KiB);
    # field.TooLong words it "may not be more than N bytes" (apimachinery/pkg/util/validation/field).
    size = sum(len(k.encode()) + len(str(v).encode()) for k, v in annotations.items())
    if size > TOTAL_ANNOTATION_SIZE_LIMIT:
        detail = f"may not be more than {TOTAL_ANNOTATION_SIZE_LIMIT} bytes"
        errors.append(FieldError(f"{field}.annotations", "Too long", None, detail))
    return errors


_SUFFIXES = {
    "": Decimal(1),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
    "Pi": Decimal(2**50),
    "Ei": Decimal(2**60),
}


def parse_quantity(value: str | int | float) -> Decimal:
    """A resource.Quantity (``100m``, ``1Gi``, ``1e3``, ``2``) as a Decimal; ValueError if bad."""
    text = str(value).strip()
    m = re.match(_QUANTITY, text)
    if not m:
        raise ValueError(text)
    try:
        number = Decimal(m[1])
    except InvalidOperation:
        raise ValueError(text) from None
    suffix = m[2]
    if suffix in _SUFFIXES:
        return number * _SUFFIXES[suffix]
    exp = re.fullmatch(r"[eE]([-+]?[0-9]+)", suffix)
    if not exp:
        raise ValueError(text)
    return number * Decimal(10) ** int(exp[1])


def _container_errors(c: Obj, path: str, volumes: set[str]) -> list[FieldError]:
    errors: list[FieldError] = []
    name = c.get("name") or ""
    if not name:
        errors.append(FieldError(f"{path}.name", "Required value"))
    else:
        for detail in dns1123_label_errors(name):
            errors.append(FieldError(f"{path}.name", "Invalid value", name, detail))
    if not c.get("image"):
        errors.append(FieldError(f"{path}.image", "Required value"))
    policy = c.get("imagePullPolicy")
    if policy is not None and policy not in ("Always", "IfNotPresent", "Never"):
        errors.append(
            FieldError(
                f"{path}.imagePullPolicy",
                "Unsupported value",
                policy,
                'supported values: "Always", "IfNotPresent", "Never"',
            )
        )
    for i, env in enumerate(c.get("env") or []):
        env_name = env.get("name") or ""
        if not env_name:
            errors.append(FieldError(f"{path}.env[{i}].name", "Required value"))
        elif "=" in env_name or not all(32 <= ord(ch) < 127 for ch in env_name):
            detail = "a valid environment variable name must consist only of printable ASCII characters other than '='"
            errors.append(FieldError(f"{path}.env[{i}].name", "Invalid value", env_name, detail))
    mount_paths: set[str] = set()
    for i, mount in enumerate(c.get("volumeMounts") or []):
        if mount.get("name") not in volumes:
            errors.append(FieldError(f"{path}.volumeMounts[{i}].name", "Not found", mount.get("name")))
        if not mount.get("mountPath"):
            errors.append(FieldError(f"{path}.volumeMounts[{i}].mountPath", "Required value"))
        elif mount["mountPath"] in mount_paths:  # validation.go ValidateVolumeMounts
            errors.append(
                FieldError(
                    f"{path}.volumeMounts[{i}].mountPath",
                    "Invalid value",
                    mount["mountPath"],
                    "must be unique",
                )
            )
        mount_paths.add(mount.get("mountPath") or "")
    resources = c.get("resources") or {}
    parsed: dict[str, dict[str, Decimal]] = {}
    for kind in ("limits", "requests"):
        for res, qty in (resources.get(kind) or {}).items():
            try:
                parsed.setdefault(kind, {})[res] = parse_quantity(qty)
            except ValueError:
                detail = f"quantities must match the regular expression '{_QUANTITY}'"
                errors.append(
                    FieldError(f"{path}.resources.{kind}[{res}]", "Invalid value", str(qty), detail)
                )
    for res, request in parsed.get("requests", {}).items():
        limit = parsed.get("limits", {}).get(res)
        if limit is not None and request > limit:
            qty = str(resources["requests"][res])
            detail = f"must be less than or equal to {res} limit of {resources['limits'][res]}"
            errors.append(FieldError(f"{path}.resources.requests", "Invalid value", qty, detail))
    return errors


def pod_spec_errors(spec: Obj, path: str, *, job: bool) -> list[FieldError]:
    errors: list[FieldError] = []
    volumes: set[str] = set()
    for i, volume in enumerate(spec.get("volumes") or []):
        vname = volume.get("name") or ""
        for detail in dns1123_label_errors(vname):
            errors.append(FieldError(f"{path}.volumes[{i}].name", "Invalid value", vname, detail))
        if vname in volumes:
            errors.append(FieldError(f"{path}.volumes[{i}].name", "Duplicate value", vname))
        volumes.add(vname)
    containers = spec.get("containers") or []
    if not containers:
        errors.append(FieldError(f"{path}.containers", "Required value"))
    seen: set[str] = set()
    for key in ("initContainers", "containers"):
        for i, container in enumerate(spec.get(key) or []):
            errors += _container_errors(container, f"{path}.{key}[{i}]", volumes)
            cname = container.get("name")
            if cname and cname in seen:
                errors.append(FieldError(f"{path}.{key}[{i}].name", "Duplicate value", cname))
            seen.add(cname)
    policy = spec.get("restartPolicy")
    if job and policy is None:
        detail = 'valid values: "OnFailure", "Never"'
        errors.append(FieldError(f"{path}.restartPolicy", "Required value", None, detail))
    elif job and policy not in ("OnFailure", "Never"):
        detail = 'supported values: "OnFailure", "Never"'
        errors.append(FieldError(f"{path}.restartPolicy", "Unsupported value", policy, detail))
    account = spec.get("serviceAccountName")
    if account:
        for detail in dns1123_subdomain_errors(account):
            errors.append(FieldError(f"{path}.serviceAccountName", "Invalid value", account, detail))
    return errors


def job_errors(job: Obj, old: Obj | None = None) -> list[FieldError]:
    """ValidateJob (create) or ValidateJobUpdate (``old`` given) for the rules that matter here."""
    spec = job.get("spec") or {}
    errors: list[FieldError] = []
    for key in ("parallelism", "completions", "backoffLimit", "ttlSecondsAfterFinished"):
        value = spec.get(key)
        if isinstance(value, int) and value < 0:
            detail = "must be greater than or equal to 0"
            errors.append(FieldError(f"spec.{key}", "Invalid value", value, detail))
    deadline = spec.get("activeDeadlineSeconds")
    if isinstance(deadline, int) and deadline <= 0:
        errors.append(
            FieldError("spec.activeDeadlineSeconds", "Invalid value", deadline, "must be greater than 0")
        )
    if old is None and spec.get("selector") and not spec.get("manualSelector"):
        detail = "`selector` will be auto-generated"
        errors.append(FieldError("spec.selector", "Invalid value", spec["selector"], detail))
    template = spec.get("template") or {}
    errors += meta_errors(JOBS, template.get("metadata") or {}, "spec.template.metadata")
    errors += pod_spec_errors(template.get("spec") or {}, "spec.template.spec", job=True)
    if old is not None and template != old["spec"].get("template"):
        errors.append(FieldError("spec.template", "Invalid value", None, "field is immutable"))
    return errors


def secret_errors(secret: Obj) -> list[FieldError]:
    errors: list[FieldError] = []
    for key, value in (secret.get("data") or {}).items():
        if not re.fullmatch(r"[-._a-zA-Z0-9]+", key):
            detail = "a valid config key must consist of alphanumeric characters, '-', '_' or '.'"
            errors.append(FieldError("data", "Invalid value", key, detail))
        try:
            base64.b64decode(str(value), validate=True)
        except binascii.Error:
            errors.append(FieldError(f"data[{key}]", "Invalid value", None, "illegal base64 data"))
    return errors


def semantic_errors(rt: ResourceType, obj: Obj, old: Obj | None = None) -> list[FieldError]:
    errors = meta_errors(rt, obj.get("metadata") or {})
    if rt is JOBS:
        errors += job_errors(obj, old)
    elif rt is PODS:
        errors += pod_spec_errors(obj.get("spec") or {}, "spec", job=False)
    elif rt is SECRETS:
        errors += secret_errors(obj)
    elif rt is LEASES:
        errors += lease_errors(obj.get("spec") or {})
    return errors


def lease_errors(spec: Obj) -> list[FieldError]:
    """ValidateLeaseSpec (kubernetes/kubernetes: pkg/apis/coordination/validation/validation.go):
    a duration and a transition count, when given, positive and not negative."""
    errors: list[FieldError] = []
    duration = spec.get("leaseDurationSeconds")
    if duration is not None and duration <= 0:
        errors.append(
            FieldError("spec.leaseDurationSeconds", "Invalid value", duration, "must be greater than 0")
        )
    transitions = spec.get("leaseTransitions")
    if transitions is not None and transitions < 0:
        errors.append(
            FieldError(
                "spec.leaseTransitions", "Invalid value", transitions, "must be greater than or equal to 0"
            )
        )
    return errors
