"""Who may do what, and where: bearer tokens, RBAC Roles per namespace, namespaces that must exist.

Authentication: a request must carry ``Authorization: Bearer <token>`` of a known user, else
401 Unauthorized (kubernetes/kubernetes: staging/src/k8s.io/apiserver/pkg/endpoints/filters/
authentication.go answers ``Unauthorized`` with a Status).

Authorization is RBAC's shape: a user holds a Role per namespace (a RoleBinding) and may hold
one for every namespace and the cluster scope (a ClusterRoleBinding, key ``"*"``). A Role is a
list of rules, each verbs x API groups x resources (``jobs``, ``pods/log``: subresources are
named as in RBAC). A request no rule allows is 403 Forbidden with the API server's message
(staging/src/k8s.io/apiserver/pkg/endpoints/handlers/responsewriters/errors.go
``forbiddenMessage``, wrapped by staging/src/k8s.io/apimachinery/pkg/api/errors/errors.go
``NewForbidden``)::

    jobs.batch is forbidden: User "u" cannot create resource "jobs" in API group "batch" in the namespace "x"

Discovery and ``/version`` are allowed to every authenticated user (the
``system:discovery`` ClusterRole binds them to ``system:authenticated``).

Namespaces: an object created in a namespace that does not exist is 404
``namespaces "x" not found`` (the NamespaceLifecycle admission plugin,
kubernetes/kubernetes: plugin/pkg/admission/namespace/lifecycle/admission.go). Reads need no
namespace (a list in a missing namespace is empty, a get is the object's 404), as on a cluster.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from tests.kubeapi.resources import ApiError, Obj, ResourceType

ANY = "*"
CLUSTER = "*"  # the roles key of a ClusterRoleBinding: every namespace and the cluster scope
DEFAULT_TOKEN = "fake-token"
DEFAULT_USER = "kubernetes-admin"
# What a fresh cluster has (kube-apiserver creates them: pkg/controlplane/controller/systemnamespaces).
CLUSTER_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
READ = ("get", "list", "watch")
WRITE = ("create", "update", "patch", "delete")


@dataclass(frozen=True)
class Rule:
    """One PolicyRule: verbs on resources of API groups (``"*"`` matches any)."""

    verbs: frozenset[str]
    resources: frozenset[str]
    api_groups: frozenset[str] = frozenset({ANY})

    def allows(self, verb: str, group: str, resource: str) -> bool:
        return (
            (ANY in self.verbs or verb in self.verbs)
            and (ANY in self.api_groups or group in self.api_groups)
            and (ANY in self.resources or resource in self.resources)
        )


@dataclass(frozen=True)
class Role:
    """A Role (or ClusterRole): its rules."""

    rules: tuple[Rule, ...] = ()

    @classmethod
    def of(cls, grants: Mapping[str, Iterable[str]]) -> Role:
        """A Role from ``{"jobs.batch": ["create", "get"], "pods/log": ["get"], "events": READ}``:
        keys are ``resource[.group][/subresource]`` (no group: the core group "")."""
        rules = []
        for key, verbs in grants.items():
            name, _, rest = key.partition(".")
            group, _, sub = rest.partition("/")
            if "/" in name:
                name, _, sub = name.partition("/")
            resource = f"{name}/{sub}" if sub else name
            rules.append(Rule(frozenset(verbs), frozenset({resource}), frozenset({group})))
        return cls(tuple(rules))

    def allows(self, verb: str, group: str, resource: str) -> bool:
        return any(rule.allows(verb, group, resource) for rule in self.rules)


ADMIN = Role((Rule(frozenset({ANY}), frozenset({ANY})),))


@dataclass
class User:
    """An authenticated user and its bindings: namespace (or ``CLUSTER``) -> Role."""

    name: str
    roles: dict[str, Role] = field(default_factory=dict)

    def can(self, verb: str, group: str, resource: str, namespace: str) -> bool:
        cluster = self.roles.get(CLUSTER)
        if cluster is not None and cluster.allows(verb, group, resource):
            return True
        role = self.roles.get(namespace) if namespace else None
        return role is not None and role.allows(verb, group, resource)


def verb_of(method: str, name: str | None, watch: bool) -> str:
    """The RBAC verb of a request (staging/src/k8s.io/apiserver/pkg/endpoints/request/requestinfo.go)."""
    if method == "GET":
        return "get" if name else ("watch" if watch else "list")
    if method == "DELETE":
        return "delete" if name else "deletecollection"
    return {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(method, method.lower())


def forbidden(
    user: str, verb: str, rt: ResourceType, sub: str | None, namespace: str, name: str | None
) -> ApiError:
    """403 Forbidden as ``responsewriters.Forbidden`` writes it (RBAC gives no reason suffix)."""
    resource = f"{rt.plural}/{sub}" if sub else rt.plural
    where = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
    why = f'User "{user}" cannot {verb} resource "{resource}" in API group "{rt.group}" {where}'
    subject = f'{rt.qualified} "{name}"' if name else rt.qualified
    details: Obj = {"kind": rt.plural}
    if name:
        details["name"] = name
    if rt.group:
        details["group"] = rt.group
    return ApiError(403, f"{subject} is forbidden: {why}", details=details)


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized")


def namespace_not_found(namespace: str) -> ApiError:
    """The NamespaceLifecycle refusal of a create into a namespace that does not exist."""
    return ApiError(
        404, f'namespaces "{namespace}" not found', details={"name": namespace, "kind": "namespaces"}
    )


def namespace_object(name: str) -> Obj:
    """A Namespace as the API server stores it (defaults: pkg/apis/core/v1/defaults.go, the
    ``kubernetes.io/metadata.name`` label: pkg/registry/core/namespace/strategy.go)."""
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}},
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    }
