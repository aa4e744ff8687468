"""CLUSTERS_FILE: the clusters Jobs may run in, each with its capacity, read and checked at once.

```yaml
clusters:
  - name: east                 # unique, DNS-safe (a DNS-1123 label)
    kubeconfig: /etc/job-executor/east.kubeconfig   # omitted: in-cluster config (or KUBECONFIG)
    context: ""                # optional kubeconfig context
    namespace: jobs            # where tasks that name no namespace run (default JOB_NAMESPACE)
    maxConcurrentJobs: 20      # Jobs of ours not yet ended, at most
    enabled: true
    priority: 0                # lower first when free capacity ties
    labels: {platform: x86_64} # what a task's clusterSelector matches
```

The file is read whole and every problem reported as `FILE:LINE: message`, so a typo never
half-applies. What comes out is frozen (tuples and read-only mappings): the backend hands the
same object to every task it places, and a reload swaps the reference instead of changing it,
so no task ever sees another's view change under it (atomic-reactor deep-copies its cluster
config per build for the same reason: osbs/utils cluster config reading).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from executor.config.yamlload import Document, YamlError, load_yaml
from executor.support.envvars import SettingsError

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_KEYS = ("name", "kubeconfig", "context", "namespace", "maxConcurrentJobs", "enabled", "priority", "labels")


class ClustersFileError(SettingsError):
    """CLUSTERS_FILE cannot be used; one `FILE:LINE: message` per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class ClusterSpec:
    name: str
    kubeconfig: str = ""  # "": the in-cluster service account (or KUBECONFIG outside a pod)
    context: str = ""
    namespace: str = ""  # "": JOB_NAMESPACE
    max_concurrent_jobs: int = 20
    enabled: bool = True
    priority: int = 0
    labels: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    def matches(self, selector: Mapping[str, str]) -> bool:
        return all(self.labels.get(key) == value for key, value in selector.items())

    def where(self) -> tuple[str, str]:
        """What the API client is made from; a reload may not change it for a known name."""
        return (self.kubeconfig, self.context)


@dataclass(frozen=True)
class Clusters:
    """The clusters of one reading of the file, in the file's order."""

    members: tuple[ClusterSpec, ...]
    source: str = ""

    def get(self, name: str) -> ClusterSpec | None:
        return next((c for c in self.members if c.name == name), None)

    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.members)


def read_clusters(path: str | Path, default_namespace: str = "") -> Clusters:
    """The clusters of the file at `path`, or a ClustersFileError naming each problem's line."""
    where = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ClustersFileError(
            [f"{where}:1: cannot read the clusters file: {exc.strerror or exc}"]
        ) from None
    try:
        doc = load_yaml(raw)
    except YamlError as exc:
        raise ClustersFileError([f"{where}:{exc.line}: {exc.message}"]) from None
    return parse_clusters(doc, where, default_namespace)


def parse_clusters(doc: Document, where: str, default_namespace: str = "") -> Clusters:
    problems: list[str] = []

    def problem(path: tuple[str | int, ...], message: str) -> None:
        problems.append(f"{where}:{doc.line(path)}: {message}")

    top = doc.value
    if not isinstance(top, dict) or not isinstance(top.get("clusters"), list):
        raise ClustersFileError([f"{where}:1: write a mapping with a list `clusters:` of clusters"])
    for key in top:
        if key != "clusters":
            problem((key,), f"unknown key {key!r} (only `clusters` is read)")
    members: list[ClusterSpec] = []
    seen: set[str] = set()
    for i, entry in enumerate(top["clusters"]):
        at: tuple[str | int, ...] = ("clusters", i)
        if not isinstance(entry, dict):
            problem(at, "each cluster is a mapping with at least `name`")
            continue
        spec = _cluster(entry, at, problem, default_namespace)
        if spec is None:
            continue
        if spec.name in seen:
            problem((*at, "name"), f"cluster name {spec.name!r} is used twice; names must be unique")
        seen.add(spec.name)
        members.append(spec)
    if not top["clusters"]:
        problem(("clusters",), "the list of clusters is empty; name at least one")
    if problems:
        raise ClustersFileError(problems)
    return Clusters(tuple(members), where)


def _cluster(
    entry: dict[str, Any], at: tuple[str | int, ...], problem: Any, namespace: str
) -> ClusterSpec | None:
    ok = True

    def bad(key: str, message: str) -> None:
        nonlocal ok
        ok = False
        problem((*at, key), message)

    for key in entry:
        if key not in _KEYS:
            bad(key, f"unknown key {key!r}; a cluster has {', '.join(_KEYS)}")
    name = entry.get("name")
    if not isinstance(name, str) or not _DNS_LABEL.match(name):
        bad("name", f"name {name!r}: write a DNS-1123 label (lower-case letters, digits, '-'; at most 63)")
    texts = {}
    for key in ("kubeconfig", "context", "namespace"):
        value = entry.get(key, "")
        if value is None:
            value = ""
        if not isinstance(value, str):
            bad(key, f"{key}: write a string")
        texts[key] = str(value)
    if texts["namespace"] and not _DNS_LABEL.match(texts["namespace"]):
        bad("namespace", f"namespace {texts['namespace']!r}: write a DNS-1123 label")
    limit = entry.get("maxConcurrentJobs", 20)
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        bad("maxConcurrentJobs", f"maxConcurrentJobs {limit!r}: write a whole number, 0 or more")
    enabled = entry.get("enabled", True)
    if not isinstance(enabled, bool):
        bad("enabled", f"enabled {enabled!r}: write true or false")
    priority = entry.get("priority", 0)
    if isinstance(priority, bool) or not isinstance(priority, int):
        bad("priority", f"priority {priority!r}: write a whole number (lower is chosen first)")
    labels = entry.get("labels") or {}
    if not isinstance(labels, dict) or not all(
        isinstance(k, str) and isinstance(v, str | int | float) and not isinstance(v, bool)
        for k, v in labels.items()
    ):
        bad("labels", "labels: write a mapping of names to text values, e.g. {platform: arm64}")
        labels = {}
    if not ok:
        return None
    return ClusterSpec(
        name=str(name),
        kubeconfig=texts["kubeconfig"],
        context=texts["context"],
        namespace=texts["namespace"] or namespace,
        max_concurrent_jobs=int(limit),
        enabled=bool(enabled),
        priority=int(priority),
        labels=MappingProxyType({str(k): str(v) for k, v in labels.items()}),
    )
