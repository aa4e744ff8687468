"""The JSON Schema (draft 2020-12) of job/config.yaml, built from the parser's own tables.

Field names, required fields, enums and patterns come from `executor.config.parse`, so the
schema cannot drift from what `lint` accepts: a field added to FIELDS without a type and a
description here makes `build_schema` fail. The package ships the result as
`job-config.schema.json` (a test checks it is current); `python -m executor.config.schema`
prints it.

The schema checks shape; a few rules only the parser can check (jsonpath syntax, unique
action and task names, unique annotation keys across list entries).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from executor.config.bounds import INT32_MAX, INT64_MAX, MAX_ID, MAX_NAME_PART, MAX_SUBDOMAIN
from executor.config.fields import (
    ANNOTATION_KEY,
    API_VERSION,
    DNS_LABEL,
    DNS_SUBDOMAIN,
    ENV_NAME,
    FIELDS,
    FORMAT_PATTERN,
    MAX_ITEMS,
    ON_CONFLICT,
    PULL_POLICIES,
    QUANTITY,
    REQUIRED,
    RESOURCE_NAME,
    SECURITY_CONTEXT_KEYS,
    VALUE_FROM,
)
from executor.config.secretfiles import MOUNT_PATH
from executor.support.podspec import TAINT_EFFECTS, TOLERATION_OPERATORS

SCHEMA_ID = "https://github.com/job-executor/job-executor/raw/main/executor/config/job-config.schema.json"
SCHEMA_FILE = Path(__file__).with_name("job-config.schema.json")

# kind (a key of FIELDS) -> title of its definition in $defs
DEFINITIONS = {
    "action": "Action",
    "concurrency": "Concurrency",
    "event": "EventSelector",
    "jsonpath": "JsonPathFilter",
    "task": "Task",
    "env": "EnvEntry",
    "resources": "Resources",
    "secretFile": "SecretFile",
}

DESCRIPTIONS: dict[str, dict[str, str]] = {
    "config": {
        "": "A job config of Keptn's job-executor-service (job/config.yaml), read unchanged by job-executor.",
        "apiVersion": f"Version of the format; only '{API_VERSION}' is supported.",
        "actions": "What to run for which events. Every action whose events match runs, in this order.",
    },
    "action": {
        "": "A named group of tasks run for the events it lists.",
        "name": "Name of the action, unique in the file; shown in reports and job labels.",
        "silent": "When true, no started/finished events are sent for this action (useful "
        "for actions on .finished events). Default false.",
        "events": "The action runs when an event matches any of these selectors.",
        "tasks": "Tasks run one after the other, each as a Kubernetes Job (or a local process).",
        "concurrency": "Optional: at most 'limit' runs of this action at once per key; what a "
        "run beyond the limit does. Without it: no limit of the action's own.",
    },
    "concurrency": {
        "": "How many runs of an action may go at once, per key, and what happens beyond that.",
        "limit": "Runs of the action at once per key, at least 1. Default 1.",
        "key": "A jsonpath into the event whose value names the key, such as $.data.service. "
        "Default: one key for the whole action. Events where it finds nothing share one key.",
        "onConflict": "queue: wait in arrival order (default); skip: answer the new event at "
        "once with an errored finished event saying why; cancel-previous: stop the oldest run "
        "of the key (reported cancelled, naming the newer event) and run the new one.",
    },
    "event": {
        "": "Selects events by type and, optionally, by a value in the event.",
        "name": "Event type glob: '*' matches any run of characters and the whole type must "
        "match (sh.keptn.event.*.triggered). Other characters, regex syntax included, are "
        "literal.",
        "jsonpath": "Optional: the event matches only when this property's value equals 'match'.",
    },
    "jsonpath": {
        "": "A jsonpath filter on the event.",
        "property": "A jsonpath into the event, such as $.data.test.teststrategy. A path that "
        "finds nothing never matches.",
        "match": "The text the found value must equal (numbers and booleans are compared as their text).",
    },
    "task": {
        "": "One job: a container image with its command, files, environment and limits.",
        "name": "Name of the task, unique in its action.",
        "image": "Container image reference, e.g. alpine:3.20. It must match the operator's "
        "allowed image list (ALLOWED_IMAGE_LIST) when one is set.",
        "cmd": "Entrypoint (Kubernetes command). $(VAR) references are expanded by Kubernetes.",
        "args": "Arguments to the entrypoint. $(VAR) references are expanded by Kubernetes.",
        "files": "Files or folders of the resource tree to stage under /keptn, keeping their "
        "paths; a leading '/' is optional and '..' is refused.",
        "env": "Environment variables: from the event (jsonpath), from a Kubernetes secret "
        "(every key), or a literal string. KEPTN_PROJECT, KEPTN_STAGE, KEPTN_SERVICE and "
        "LABELS_<KEY> are always set.",
        "workingDir": "Absolute working directory of the container, e.g. /keptn.",
        "resources": "Resource limits and requests. When present, even empty, the defaults "
        "(DEFAULT_RESOURCE_LIMITS_CPU and siblings) do not apply.",
        "maxPollDuration": "Seconds to wait for the job to finish before giving up. Default 300.",
        "namespace": "Namespace of the job. Default: JOB_NAMESPACE, else keptn.",
        "annotations": "Annotations of the Job and its pod: a mapping, or a list of one-key mappings.",
        "securityContext": "Container securityContext; each key given overrides the safe "
        "default (non-root, no privilege escalation, all capabilities dropped, read-only "
        "root file system).",
        "imagePullPolicy": "Kubernetes imagePullPolicy of the job container.",
        "serviceAccount": "Service account of the job's pod; naming one also mounts its token. "
        "Default: DEFAULT_JOB_SERVICE_ACCOUNT, with no token mounted.",
        "ttlSecondsAfterFinished": "Seconds a finished Job is kept. Default 21600; values "
        "under 60 are raised to 60.",
        "activeDeadlineSeconds": "Seconds the job may run before Kubernetes stops it; the "
        "stricter of this and TASK_DEADLINE_SECONDS applies.",
        "clusterSelector": "Labels a cluster of CLUSTERS_FILE must have to run this task "
        "(e.g. {platform: arm64}). Without it: any cluster.",
        "secretFiles": "Secrets given as files: each key of the secret is a read-only file "
        "(mode 0400) in the folder mountPath (absolute, outside /keptn).",
        "continueOnError": "When true, a failure of this task is reported but the action's "
        "next tasks run, and the action ends succeeded with result warning. Default false.",
        "nodeSelector": "Node labels the pod's node must have (e.g. {disktype: ssd}); merged over "
        "JOB_NODE_SELECTOR. Ignored by the local backend.",
        "tolerations": "Taints the pod tolerates, added to JOB_TOLERATIONS. Ignored by the local backend.",
    },
    "secretFile": {
        "": "A Kubernetes secret whose keys appear as files in a folder of the task.",
        "name": "Name of the Kubernetes secret (with the local backend, a folder of LOCAL_SECRETS_DIR).",
        "mountPath": "Absolute folder the files appear in, e.g. /etc/credentials; not /keptn or below it.",
    },
    "env": {
        "": "One environment variable, or every key of a secret.",
        "name": "Variable name; for valueFrom: secret, the name of the Kubernetes secret.",
        "value": "For valueFrom: event, a jsonpath into the event (e.g. "
        "$.data.deployment.deploymentURIsLocal[0]); for valueFrom: string, the literal "
        "value.",
        "valueFrom": "Where the value comes from.",
        "as": "How a value from the event is written: default string for a scalar and JSON "
        "for a map or list.",
    },
    "resources": {
        "": "Kubernetes resource limits and requests of the job container.",
        "limits": "Resource limits, e.g. cpu: 500m, memory: 512Mi.",
        "requests": "Resource requests, e.g. cpu: 50m, memory: 128Mi.",
    },
}

_NULL: dict[str, Any] = {"type": "null"}
_STRINGS: dict[str, Any] = {"type": "array", "items": {"type": ["string", "number"]}}


def _items(ref: str) -> dict[str, Any]:
    return {"type": "array", "minItems": 1, "maxItems": MAX_ITEMS, "items": {"$ref": ref}}


def _quantities() -> dict[str, Any]:
    return {
        "type": ["object", "null"],
        "propertyNames": {"pattern": RESOURCE_NAME.pattern},
        "additionalProperties": {
            "anyOf": [{"type": "string", "pattern": QUANTITY.pattern}, {"type": "number", "minimum": 0}]
        },
    }


def _security_context() -> dict[str, Any]:
    json_types = {bool: "boolean", dict: "object", int: "integer", str: "string"}
    properties: dict[str, Any] = {
        key: {"type": json_types[kind]} for key, kind in SECURITY_CONTEXT_KEYS.items()
    }
    for key in ("runAsUser", "runAsGroup"):  # IsValidUserID / IsValidGroupID
        properties[key] = {**properties[key], "minimum": 0, "maximum": MAX_ID}
    return {
        "type": ["object", "null"],
        "properties": properties,
        "additionalProperties": False,
    }


def _toleration() -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "key": {"type": "string"},
            "operator": {"enum": list(TOLERATION_OPERATORS)},
            "value": {"type": "string"},
            "effect": {"enum": [*TAINT_EFFECTS, ""]},
            "tolerationSeconds": {"type": "integer"},
        },
        "additionalProperties": False,
    }


def _annotations() -> dict[str, Any]:
    value = {"type": ["string", "number", "boolean"]}
    # Kubernetes bounds each part of a key (IsQualifiedName), which the pattern does not: the
    # name after the last "/" and the prefix before it, as config/bounds.py checks them.
    too_long = [
        {"pattern": f"[^/]{{{MAX_NAME_PART + 1}}}$"},
        {"pattern": f"^[^/]{{{MAX_SUBDOMAIN + 1}}}[^/]*/"},
    ]
    most = MAX_SUBDOMAIN + 1 + MAX_NAME_PART
    names = {"pattern": ANNOTATION_KEY.pattern, "maxLength": most, "not": {"anyOf": too_long}}
    mapping = {"type": "object", "propertyNames": names, "additionalProperties": value}
    return {"anyOf": [mapping, {"type": "array", "items": mapping}, _NULL]}


# The type of every field, by kind. Optional fields accept null (the parser treats an empty
# value as absent); `build_schema` adds that.
TYPES: dict[str, dict[str, dict[str, Any]]] = {
    # No actions (absent, null or []) is a config that runs nothing, as in JES.
    "config": {"apiVersion": {"const": API_VERSION}, "actions": {**_items("#/$defs/Action"), "minItems": 0}},
    "action": {
        "name": {"type": "string", "minLength": 1},
        "silent": {"type": "boolean"},
        "events": _items("#/$defs/EventSelector"),
        "tasks": _items("#/$defs/Task"),
        "concurrency": {"$ref": "#/$defs/Concurrency"},
    },
    "concurrency": {
        "limit": {"type": "integer", "minimum": 1},
        "key": {"type": "string", "pattern": r"^$|^\s*\$"},
        "onConflict": {"enum": list(ON_CONFLICT)},
    },
    "event": {"name": {"type": "string", "pattern": r"\S"}, "jsonpath": {"$ref": "#/$defs/JsonPathFilter"}},
    "jsonpath": {
        "property": {"type": "string", "pattern": r"\S"},
        "match": {"type": ["string", "number", "boolean"]},
    },
    "task": {
        "name": {"type": "string"},
        "image": {"type": "string", "pattern": r"^\S+$"},
        "cmd": _STRINGS,
        "args": _STRINGS,
        "files": {"type": "array", "items": {"type": "string"}},
        "env": {"type": "array", "items": {"$ref": "#/$defs/EnvEntry"}},
        "workingDir": {"type": "string", "pattern": "^/"},
        "resources": {"$ref": "#/$defs/Resources"},
        "maxPollDuration": {"type": "integer", "minimum": 1},
        "namespace": {"type": "string", "pattern": f"^$|{DNS_LABEL.pattern}", "maxLength": 63},
        "annotations": _annotations(),
        "securityContext": _security_context(),
        "imagePullPolicy": {"enum": [*PULL_POLICIES, ""]},
        "serviceAccount": {"type": "string", "pattern": DNS_SUBDOMAIN.pattern, "maxLength": 253},
        # The Job API's Go types (config/bounds.py): int32 and int64.
        "ttlSecondsAfterFinished": {"type": "integer", "minimum": 0, "maximum": INT32_MAX},
        "activeDeadlineSeconds": {"type": "integer", "minimum": 1, "maximum": INT64_MAX},
        "clusterSelector": {
            "type": "object",
            "additionalProperties": {"type": ["string", "number"]},
        },
        "secretFiles": {"type": "array", "items": {"$ref": "#/$defs/SecretFile"}},
        "continueOnError": {"type": "boolean"},
        "nodeSelector": {"type": "object", "additionalProperties": {"type": ["string", "number"]}},
        "tolerations": {"type": "array", "items": _toleration()},
    },
    "secretFile": {
        "name": {"type": "string", "pattern": DNS_SUBDOMAIN.pattern, "maxLength": 253},
        "mountPath": {"type": "string", "pattern": MOUNT_PATH.pattern},
    },
    "env": {
        "name": {"type": "string"},
        "value": {"type": ["string", "number"]},
        "valueFrom": {"enum": list(VALUE_FROM)},
        "as": {"type": "string", "pattern": FORMAT_PATTERN.pattern},
    },
    "resources": {"limits": _quantities(), "requests": _quantities()},
}

# Optional fields the parser does not accept empty: `silent:` must be true or false.
NOT_NULLABLE = {("action", "silent"), ("task", "continueOnError")}

# Rules between fields that the parser enforces and a schema can say.
EXTRA: dict[str, dict[str, Any]] = {
    "env": {
        "allOf": [
            {
                "if": {"properties": {"valueFrom": {"const": "secret"}}, "required": ["valueFrom"]},
                "then": {"properties": {"name": {"pattern": DNS_SUBDOMAIN.pattern}, "as": {"type": "null"}}},
                "else": {"properties": {"name": {"pattern": ENV_NAME.pattern}}},
            },
            {
                "if": {"properties": {"valueFrom": {"enum": ["event", "string"]}}, "required": ["valueFrom"]},
                "then": {"required": ["value"], "properties": {"value": {"type": ["string", "number"]}}},
            },
        ]
    }
}


def _object(kind: str) -> dict[str, Any]:
    fields = FIELDS[kind]
    required = REQUIRED.get(kind, ())
    types, descriptions = TYPES[kind], DESCRIPTIONS[kind]
    missing = [f for f in fields if f not in types or f not in descriptions]
    extra = [f for f in (*types, *descriptions) if f and f not in fields]
    if missing or extra:
        raise RuntimeError(f"schema tables of {kind!r} do not match FIELDS: missing {missing}, extra {extra}")
    properties: dict[str, Any] = {}
    for name in fields:
        spec = dict(types[name])
        if name not in required and (kind, name) not in NOT_NULLABLE:
            spec = _nullable(spec)
        properties[name] = {"description": descriptions[name], **spec}
    out: dict[str, Any] = {"description": descriptions[""], "type": "object"}
    if kind in DEFINITIONS:
        out = {"title": DEFINITIONS[kind], **out}
    out["properties"] = properties
    if required:
        out["required"] = list(required)
    out["additionalProperties"] = False
    out.update(EXTRA.get(kind, {}))
    return out


def _nullable(spec: dict[str, Any]) -> dict[str, Any]:
    if "type" in spec and "anyOf" not in spec:
        kinds = spec["type"] if isinstance(spec["type"], list) else [spec["type"]]
        if "null" in kinds:
            return spec
        if "enum" not in spec and "const" not in spec:
            return {**spec, "type": [*kinds, "null"]}
    if "anyOf" in spec and _NULL in spec["anyOf"]:
        return spec
    if "enum" in spec:
        return {**spec, "enum": [*spec["enum"], None]}
    return {"anyOf": [spec, _NULL]}


def build_schema() -> dict[str, Any]:
    root = _object("config")
    defs = {title: _object(kind) for kind, title in DEFINITIONS.items()}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "job-executor job config (job/config.yaml, apiVersion v2)",
        **root,
        "$defs": defs,
    }


def schema_text() -> str:
    return json.dumps(build_schema(), indent=2, ensure_ascii=False) + "\n"


def load_schema() -> dict[str, Any]:
    """The shipped schema, as editors and users see it."""
    result: dict[str, Any] = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    return result


def main() -> int:
    sys.stdout.write(schema_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
