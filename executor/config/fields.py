"""The job config language's tables: which fields each object has, which are required, and the
patterns values must match. The parser (parse.py) and the JSON Schema (schema.py) both read them.
"""

from __future__ import annotations

import re

from executor.config.model import Format, OnConflict, ValueFrom
from executor.support.podspec import CONTAINER_SECURITY_CONTEXT
from executor.support.quantities import QUANTITY_TEXT

API_VERSION = "v2"
# Job names carry the action and task index in three digits.
MAX_ITEMS = 999

FIELDS: dict[str, tuple[str, ...]] = {
    "config": ("apiVersion", "actions"),
    "action": ("name", "silent", "events", "tasks", "concurrency"),
    "concurrency": ("limit", "key", "onConflict"),
    "event": ("name", "jsonpath"),
    "jsonpath": ("property", "match"),
    "task": (
        "name",
        "image",
        "cmd",
        "args",
        "files",
        "env",
        "workingDir",
        "resources",
        "maxPollDuration",
        "namespace",
        "annotations",
        "securityContext",
        "imagePullPolicy",
        "serviceAccount",
        "ttlSecondsAfterFinished",
        "activeDeadlineSeconds",
        "clusterSelector",
        "secretFiles",
        "continueOnError",
        "nodeSelector",
        "tolerations",
    ),
    "env": ("name", "value", "valueFrom", "as"),
    "secretFile": ("name", "mountPath"),
    "resources": ("limits", "requests"),
}
REQUIRED: dict[str, tuple[str, ...]] = {
    # JES (pkg/config/config.go NewConfig) requires only apiVersion: no actions means none run.
    "config": ("apiVersion",),
    "action": ("name", "events", "tasks"),
    "event": ("name",),
    # A missing `match` is the empty string, as in JES (a plain Go string there).
    "jsonpath": ("property",),
    "task": ("name", "image"),
    "env": ("name", "valueFrom"),
    "secretFile": ("name", "mountPath"),
}

# The keys of a Kubernetes (container) SecurityContext; nested values are left to the API
# server's own validation, but a misspelt top-level key would otherwise be silently dropped.
SECURITY_CONTEXT_KEYS = CONTAINER_SECURITY_CONTEXT
PULL_POLICIES = ("Always", "IfNotPresent", "Never")
VALUE_FROM: tuple[ValueFrom, ...] = ("event", "secret", "string")
FORMATS: tuple[Format, ...] = ("json", "yaml", "string")
ON_CONFLICT: tuple[OnConflict, ...] = ("queue", "skip", "cancel-previous")

# Kubernetes resource.Quantity, serialised form.
QUANTITY = re.compile(f"^$|^{QUANTITY_TEXT}$")  # "" leaves the default
RESOURCE_NAME = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[a-zA-Z0-9]([-a-zA-Z0-9_.]*[a-zA-Z0-9])?$")
ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
# `as:` is read case-insensitively, as JES did (strings.EqualFold in pkg/k8sutils/job.go).
FORMAT_PATTERN = re.compile(r"^([Jj][Ss][Oo][Nn]|[Yy][Aa][Mm][Ll]|[Ss][Tt][Rr][Ii][Nn][Gg])$")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
ANNOTATION_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)
