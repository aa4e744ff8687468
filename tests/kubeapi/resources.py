"""The resource types the fake serves, Status objects and API errors.

Everything here mirrors what a real kube-apiserver puts on the wire: the
``kind: Status`` body of every error, the ``jobs.batch "x" not found`` message
shapes, the field labels each resource supports in ``fieldSelector``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]

# Default reasons of the Status objects, by HTTP code (k8s.io/apimachinery metav1.StatusReason).
REASONS: Mapping[int, str] = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    410: "Expired",
    413: "RequestEntityTooLarge",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


class ApiError(Exception):
    """An error answered as a ``kind: Status`` body with the given HTTP code."""

    def __init__(
        self,
        code: int,
        message: str,
        reason: str | None = None,
        details: Obj | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        # reason "" is metav1.StatusReasonUnknown: the API server omits it (errors it did not map).
        self.reason = reason if reason is not None else REASONS.get(code, "Unknown")
        self.details = details
        self.headers = dict(headers or {})

    def status(self) -> Obj:
        return status_object(self.code, self.reason, self.message, self.details)


def status_object(code: int, reason: str, message: str, details: Obj | None = None) -> Obj:
    body: Obj = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if not reason:
        del body["reason"]
    if details:
        body["details"] = details
    return body


def _dotted(path: str) -> Callable[[Obj], str]:
    keys = path.split(".")

    def get(obj: Obj) -> str:
        value: Any = obj
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        if value is None:
            return ""
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)

    return get


def _fields(*paths: str, **special: Callable[[Obj], str]) -> dict[str, Callable[[Obj], str]]:
    getters = {path: _dotted(path) for path in ("metadata.name", "metadata.namespace", *paths)}
    getters.update({name.replace("__", "."): get for name, get in special.items()})
    return getters


@dataclass(frozen=True)
class ResourceType:
    """One REST resource: where it lives, its kind, and its field selector labels."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    status_subresource: bool = False
    fields: Mapping[str, Callable[[Obj], str]] = field(default_factory=dict, compare=False)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """``jobs.batch`` or ``pods``: how messages of the API server name the resource."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def kind_qualified(self) -> str:
        """``Job.batch`` or ``Pod``: how 422 messages name the kind."""
        return f"{self.kind}.{self.group}" if self.group else self.kind

    @property
    def singular(self) -> str:
        return self.kind.lower()

    def details(self, name: str, **extra: Any) -> Obj:
        details: Obj = {"name": name, "kind": self.plural}
        if self.group:
            details["group"] = self.group
        details.update(extra)
        return details

    def not_found(self, name: str) -> ApiError:
        return ApiError(404, f'{self.qualified} "{name}" not found', details=self.details(name))

    def already_exists(self, name: str) -> ApiError:
        return ApiError(
            409,
            f'{self.qualified} "{name}" already exists',
            reason="AlreadyExists",
            details=self.details(name),
        )

    def conflict(self, name: str, why: str) -> ApiError:
        message = f'Operation cannot be fulfilled on {self.qualified} "{name}": {why}'
        return ApiError(409, message, reason="Conflict", details=self.details(name))


JOBS = ResourceType(
    "batch",
    "v1",
    "jobs",
    "Job",
    status_subresource=True,
    fields=_fields(status__successful=lambda obj: str(obj.get("status", {}).get("succeeded", 0))),
)
PODS = ResourceType(
    "",
    "v1",
    "pods",
    "Pod",
    status_subresource=True,
    fields=_fields(
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
        spec__hostNetwork=lambda obj: "true" if obj.get("spec", {}).get("hostNetwork") else "false",
    ),
)
EVENTS = ResourceType(
    "",
    "v1",
    "events",
    "Event",
    fields=_fields(
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "type",
        source=_dotted("source.component"),
    ),
)
SECRETS = ResourceType("", "v1", "secrets", "Secret", fields=_fields("type"))
CONFIGMAPS = ResourceType("", "v1", "configmaps", "ConfigMap", fields=_fields())
# Cluster-scoped: stored under the namespace "" (kubernetes/kubernetes: pkg/apis/core/types.go Namespace).
NAMESPACES = ResourceType(
    "", "v1", "namespaces", "Namespace", namespaced=False, fields=_fields("status.phase")
)

# Leader election (kubernetes/kubernetes: staging/src/k8s.io/api/coordination/v1/types.go).
LEASES = ResourceType("coordination.k8s.io", "v1", "leases", "Lease", fields=_fields())

RESOURCES: tuple[ResourceType, ...] = (JOBS, PODS, EVENTS, SECRETS, CONFIGMAPS, NAMESPACES, LEASES)
BY_PATH: Mapping[tuple[str, str, str], ResourceType] = {
    (rt.group, rt.version, rt.plural): rt for rt in RESOURCES
}


def resolve(kind: str) -> ResourceType:
    """Find a resource type by plural (``jobs``), kind (``Job``) or singular (``job``)."""
    for rt in RESOURCES:
        if kind in (rt.plural, rt.kind, rt.singular, rt.qualified):
            return rt
    raise KeyError(f"the fake API server does not serve {kind!r}")


def discovery(path: str) -> Obj | None:
    """The discovery documents (``/api``, ``/apis``, ``/api/v1``, ``/apis/batch/v1``, ...)."""
    groups = sorted({rt.group for rt in RESOURCES if rt.group})

    def group_doc(group: str) -> Obj:
        versions = sorted({rt.version for rt in RESOURCES if rt.group == group})
        entries = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
        return {"name": group, "versions": entries, "preferredVersion": entries[0]}

    def resource_list(group: str, version: str) -> Obj:
        resources = []
        for rt in RESOURCES:
            if (rt.group, rt.version) != (group, version):
                continue
            verbs = ["create", "delete", "get", "list", "patch", "update", "watch"]
            resources.append(
                {
                    "name": rt.plural,
                    "singularName": rt.singular,
                    "namespaced": rt.namespaced,
                    "kind": rt.kind,
                    "verbs": verbs,
                }
            )
            if rt.status_subresource:
                sub = {"name": f"{rt.plural}/status", "singularName": "", "namespaced": True}
                resources.append({**sub, "kind": rt.kind, "verbs": ["get"]})
            if rt.plural == "pods":
                sub = {"name": "pods/log", "singularName": "", "namespaced": True}
                resources.append({**sub, "kind": "Pod", "verbs": ["get"]})
        api_version = f"{group}/{version}" if group else version
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": api_version,
            "resources": resources,
        }

    if path == "/api":
        return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
    if path == "/apis":
        return {
            "kind": "APIGroupList",
            "apiVersion": "v1",
            "groups": [group_doc(g) for g in groups],
        }
    if path == "/api/v1":
        return resource_list("", "v1")
    parts = path.strip("/").split("/")
    if len(parts) == 2 and parts[0] == "apis" and parts[1] in groups:
        return {"kind": "APIGroup", "apiVersion": "v1", **group_doc(parts[1])}
    if len(parts) == 3 and parts[0] == "apis" and parts[1] in groups:
        doc = resource_list(parts[1], parts[2])
        return doc if doc["resources"] else None
    return None


VERSION_INFO: Obj = {
    "major": "1",
    "minor": "37",
    "gitVersion": "v1.37.0-fake",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.25",
    "compiler": "gc",
    "platform": "linux/amd64",
}
