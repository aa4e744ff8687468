"""Validate a loaded job config into the frozen model, collecting every problem with its line.

Each object type declares its fields once (config/fields.py); the JSON Schema is built from the
same tables, so the published schema cannot drift from what is accepted.
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Callable
from typing import Any, cast

from executor.config import placement
from executor.config.bounds import MAX_NAME_PART, MAX_SUBDOMAIN, task_problems
from executor.config.fieldreader import FieldReader, kind_of
from executor.config.fields import (
    ANNOTATION_KEY,
    API_VERSION,
    DNS_LABEL,
    DNS_SUBDOMAIN,
    ENV_NAME,
    FORMATS,
    MAX_ITEMS,
    ON_CONFLICT,
    PULL_POLICIES,
    QUANTITY,
    RESOURCE_NAME,
    SECURITY_CONTEXT_KEYS,
    VALUE_FROM,
)
from executor.config.jsonpaths import JsonPathSyntaxError, compile_path
from executor.config.model import (
    Action,
    Concurrency,
    EnvEntry,
    EventSelector,
    Format,
    JobConfig,
    JsonPathFilter,
    OnConflict,
    Resources,
    Task,
    ValueFrom,
)
from executor.config.paths import PathEscapeError, normalise_file_path
from executor.config.secretfiles import read_secret_files
from executor.config.yamlload import MAX_CONFIG_BYTES, Path, YamlError, load_yaml
from executor.model.problems import ConfigError, Problem


def parse_config(data: str | bytes, source: str = "<config>") -> JobConfig:
    """Parse job/config.yaml text; raises ConfigError listing every problem."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    try:
        doc = load_yaml(raw)
    except YamlError as exc:
        raise ConfigError([Problem(source, exc.line, exc.message)]) from None
    parser = _Parser(doc, source)
    config = parser.config(hashlib.sha256(raw).hexdigest())
    if parser.problems:
        raise ConfigError(sorted(parser.problems, key=lambda p: p.line))
    assert config is not None
    return config


def read_config_file(path: str) -> JobConfig:
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError([Problem(path, 0, f"cannot read file: {exc.strerror}")]) from None
    return parse_config(data, source=path)


class _Parser(FieldReader):
    """The config tree, object by object; the typed reads and problem list are FieldReader's."""

    # ---- the tree ----
    def config(self, digest: str) -> JobConfig | None:
        root = self.doc.value
        if root is None:
            message = "the file is empty; a job config starts with 'apiVersion: v2' and 'actions:'"
            self.problems.append(Problem(self.source, 1, message))
            return None
        obj = self.mapping(root, (), "config", "the job config")
        if obj is None:
            return None
        version = obj.get("apiVersion")
        if version is not None and str(version) != API_VERSION:
            self.error(("apiVersion",), f"apiVersion {version!r} is not supported; write 'apiVersion: v2'")
        actions_raw = obj.get("actions")
        actions: list[Action] = []
        if actions_raw is not None:
            if not isinstance(actions_raw, list):
                self.error(("actions",), f"'actions' must be a list, not {kind_of(actions_raw)}")
            elif len(actions_raw) > MAX_ITEMS:
                self.error(("actions",), f"{len(actions_raw)} actions; at most {MAX_ITEMS} fit in a job name")
            else:
                for i, item in enumerate(actions_raw):
                    action = self.action(item, ("actions", i), i)
                    if action is not None:
                        actions.append(action)
                self.unique(actions_raw, ("actions",), "action")
        return JobConfig(API_VERSION, tuple(actions), source=self.source, digest=digest)

    def unique(self, raw: Any, path: Path, what: str) -> None:
        seen: set[str] = set()  # names as written: reported even when an entry has other mistakes
        for i, item in enumerate(raw if isinstance(raw, list) else []):
            name = item.get("name") if isinstance(item, dict) else None
            if isinstance(name, str) and name.strip():
                if name in seen:
                    self.error((*path, i), f"two {what}s are named '{name}'; give each a distinct name")
                seen.add(name)

    def action(self, value: Any, path: Path, index: int) -> Action | None:
        obj = self.mapping(value, path, "action", f"action {index + 1}")
        if obj is None:
            return None
        name = self.string(obj, "name", path) or ""
        if "name" in obj and isinstance(obj["name"], str) and not name.strip():
            self.error((*path, "name"), "action name is empty; name the action, e.g. 'Run tests'")
            name = ""
        where = f"action '{name}'" if name else f"action {index + 1}"
        silent = self.boolean(obj, "silent", path)
        events = self.items(obj, "events", path, where, self.event)
        tasks = self.items(obj, "tasks", path, where, self.task)
        self.unique(obj.get("tasks"), (*path, "tasks"), "task")
        count = len(self.problems)
        concurrency = self.concurrency(obj, path)
        if (
            not name
            or len(events) != len(obj.get("events") or [])
            or len(tasks) != len(obj.get("tasks") or [])
            or len(self.problems) != count
        ):
            return None
        return Action(name, tuple(events), tuple(tasks), silent, index, self.doc.line(path), concurrency)

    def concurrency(self, obj: dict[str, Any], path: Path) -> Concurrency | None:
        """`concurrency: {limit: 1, key: $.data.service, onConflict: queue}`; every part optional."""
        if obj.get("concurrency") is None:
            return None
        where = (*path, "concurrency")
        block = self.mapping(obj["concurrency"], where, "concurrency", "concurrency")
        if block is None:
            return None
        limit = block.get("limit")
        if limit is None:
            limit = 1
        elif isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            self.error(
                (*where, "limit"), f"concurrency limit must be a whole number, at least 1, not {limit!r}"
            )
            limit = 1
        key = self.string(block, "key", where) or ""
        if key and self.jsonpath(key, (*where, "key")) and not key.lstrip().startswith("$"):
            self.error((*where, "key"), f"jsonpath {key!r} does not start with '$.'; write $.{key.strip()}")
        mode = self.string(block, "onConflict", where) or "queue"
        if mode not in ON_CONFLICT:
            self.error((*where, "onConflict"), f"onConflict {mode!r}: write one of {', '.join(ON_CONFLICT)}")
            mode = "queue"
        return Concurrency(limit, key.strip(), cast(OnConflict, mode), self.doc.line(where))

    def items(
        self, obj: dict[str, Any], key: str, path: Path, where: str, build: Callable[[Any, Path], Any]
    ) -> list[Any]:
        raw = obj.get(key)
        if raw is None:
            return []
        if not isinstance(raw, list):
            self.error((*path, key), f"'{key}' of {where} must be a list, not {kind_of(raw)}")
            return []
        if not raw:
            self.error((*path, key), f"'{key}' of {where} is empty; add at least one")
        if len(raw) > MAX_ITEMS:
            self.error((*path, key), f"'{key}' of {where} has {len(raw)} entries; at most {MAX_ITEMS}")
            return []
        built = [build(item, (*path, key, i)) for i, item in enumerate(raw)]
        return [b for b in built if b is not None]

    def event(self, value: Any, path: Path) -> EventSelector | None:
        obj = self.mapping(value, path, "event", "event")
        if obj is None:
            return None
        name = self.string(obj, "name", path)
        if name is not None and not name.strip():
            self.error(
                (*path, "name"), "event name is empty; write a type such as sh.keptn.event.test.triggered"
            )
            name = None
        filt = None
        if obj.get("jsonpath") is not None:
            jp = self.mapping(obj["jsonpath"], (*path, "jsonpath"), "jsonpath", "jsonpath")
            if jp is not None:
                prop = self.string(jp, "property", (*path, "jsonpath"))
                raw_match = jp.get("match")
                if isinstance(raw_match, bool):  # `match: true` is compared as text, like a number
                    match: str | None = _scalar_text(raw_match)
                elif raw_match is None:
                    match = ""  # JES: an absent match is the empty string
                else:
                    match = self.string(jp, "match", (*path, "jsonpath"), scalar_ok=True)
                if (
                    prop is not None
                    and self.jsonpath(prop, (*path, "jsonpath", "property"))
                    and match is not None
                ):
                    filt = JsonPathFilter(prop, match)
        if name is None or (obj.get("jsonpath") is not None and filt is None):
            return None
        return EventSelector(name, filt, self.doc.line(path))

    def jsonpath(self, expression: str, path: Path) -> bool:
        try:
            compile_path(expression)
        except JsonPathSyntaxError as exc:
            self.error(path, f"{exc}; write a path such as $.data.test.teststrategy")
            return False
        return True

    def task(self, value: Any, path: Path) -> Task | None:
        obj = self.mapping(value, path, "task", f"task {cast(int, path[-1]) + 1}")
        if obj is None:
            return None
        count = len(self.problems)
        name = self.string(obj, "name", path)
        if name is not None and not name.strip():
            self.error((*path, "name"), "task name is empty; name the task, e.g. 'Run locust tests'")
        image = self.string(obj, "image", path)
        if image is not None and (not image.strip() or any(c.isspace() for c in image)):
            self.error((*path, "image"), f"image {image!r} is not an image reference (example: alpine:3.20)")
        files, file_lines = [], []
        for i, raw_file in enumerate(self.strings(obj, "files", path)):
            try:
                files.append(normalise_file_path(raw_file))
                file_lines.append(self.doc.line((*path, "files", i)))
            except PathEscapeError as exc:
                self.error((*path, "files", i), str(exc))
        env = []
        raw_env = obj.get("env")
        if isinstance(raw_env, list):
            built = (self.env(item, (*path, "env", i)) for i, item in enumerate(raw_env))
            env = [e for e in built if e is not None]
        elif raw_env is not None:
            self.error((*path, "env"), f"'env' must be a list, not {kind_of(raw_env)}")
        working_dir = self.string(obj, "workingDir", path)
        if working_dir is not None and not working_dir.startswith("/"):
            self.error(
                (*path, "workingDir"), f"workingDir {working_dir!r} must be an absolute path such as /keptn"
            )
        # JES treats an empty namespace, pull policy or quantity as "not set" (a plain Go string).
        namespace = self.string(obj, "namespace", path) or None
        if namespace is not None and (len(namespace) > 63 or not DNS_LABEL.match(namespace)):
            self.error(
                (*path, "namespace"), f"namespace {namespace!r} is not a valid Kubernetes namespace name"
            )
        pull = self.string(obj, "imagePullPolicy", path) or None
        if pull is not None and pull not in PULL_POLICIES:
            self.error(
                (*path, "imagePullPolicy"),
                f"imagePullPolicy {pull!r}: write one of {', '.join(PULL_POLICIES)}",
            )
        account = self.string(obj, "serviceAccount", path)
        if account is not None and (len(account) > 253 or not DNS_SUBDOMAIN.match(account)):
            self.error(
                (*path, "serviceAccount"), f"serviceAccount {account!r} is not a valid Kubernetes name"
            )
        task = Task(
            name=name or "",
            image=image or "",
            cmd=self.strings(obj, "cmd", path),
            args=self.strings(obj, "args", path),
            files=tuple(files),
            env=tuple(env),
            working_dir=working_dir,
            resources=self.resources(obj, path),
            max_poll_duration=self.integer(obj, "maxPollDuration", path, minimum=1),
            namespace=namespace,
            annotations=self.annotations(obj, path),
            security_context=self.security_context(obj, path),
            image_pull_policy=pull,
            service_account=account,
            ttl_seconds_after_finished=self.integer(obj, "ttlSecondsAfterFinished", path, minimum=0),
            active_deadline_seconds=self.integer(obj, "activeDeadlineSeconds", path, minimum=1),
            cluster_selector=self.cluster_selector(obj, path),
            secret_files=read_secret_files(self, obj, path),
            continue_on_error=self.boolean(obj, "continueOnError", path),
            node_selector=placement.node_selector(self, obj, path),
            tolerations=placement.tolerations(self, obj, path),
            line=self.doc.line(path),
            file_lines=tuple(file_lines),
        )
        # What the API server would refuse in the Job (config/bounds.py), at its line.
        for below, message in task_problems(task):
            self.error((*path, *below), message)
        return task if len(self.problems) == count else None

    def env(self, value: Any, path: Path) -> EnvEntry | None:
        obj = self.mapping(value, path, "env", "env entry")
        if obj is None:
            return None
        count = len(self.problems)
        name = self.string(obj, "name", path)
        source = self.string(obj, "valueFrom", path)
        raw_value = self.string(obj, "value", path, scalar_ok=True)
        fmt = self.string(obj, "as", path)
        fmt = fmt.lower() if fmt is not None else None  # JES: strings.EqualFold
        if source is not None and source not in VALUE_FROM:
            self.error((*path, "valueFrom"), f"valueFrom {source!r}: write one of {', '.join(VALUE_FROM)}")
        if fmt is not None and fmt not in FORMATS:
            self.error((*path, "as"), f"as {fmt!r}: write one of {', '.join(FORMATS)}")
        if name is not None:
            if source == "secret":
                if not DNS_SUBDOMAIN.match(name):
                    self.error((*path, "name"), f"secret name {name!r} is not a valid Kubernetes secret name")
            elif not ENV_NAME.match(name):
                self.error(
                    (*path, "name"), f"env name {name!r} is not valid: use letters, digits, '_', '-' or '.'"
                )
        # A `value` of the wrong type was reported above; do not also call it missing.
        if source == "event":
            if raw_value is None and obj.get("value") is None:
                self.error(
                    path, "an env entry from the event needs 'value': a jsonpath such as $.data.project"
                )
            elif (
                raw_value is not None
                and self.jsonpath(raw_value, (*path, "value"))
                and not raw_value.lstrip().startswith("$")
            ):
                # jsonpath-ng would read it from the root anyway, but JES's jsonpath
                # (PaesslerAG/jsonpath) needs the `$`: keep configs portable both ways.
                self.error(
                    (*path, "value"),
                    f"jsonpath {raw_value!r} does not start with '$.'; "
                    f"write $.{raw_value.lstrip().lstrip('.')}",
                )
        elif source == "string" and raw_value is None and obj.get("value") is None:
            self.error(path, "an env entry from a string needs 'value'")
        elif source == "secret" and fmt is not None:
            self.error((*path, "as"), "'as' applies to values from the event, not to secrets")
        if len(self.problems) != count or name is None or source is None:
            return None
        return EnvEntry(
            name, cast(ValueFrom, source), raw_value or "", cast(Format | None, fmt), self.doc.line(path)
        )

    def resources(self, obj: dict[str, Any], path: Path) -> Resources | None:
        raw = obj.get("resources")
        if raw is None:
            return None  # `resources:` with nothing under it: JES's nil pointer, the defaults apply
        where = (*path, "resources")
        block = self.mapping(raw, where, "resources", "resources")
        if block is None:
            return None
        out: dict[str, dict[str, str]] = {}
        for kind in ("limits", "requests"):
            values = {} if block.get(kind) is None else block[kind]
            if not isinstance(values, dict):
                self.error(
                    (*where, kind), f"'{kind}' must be a mapping such as cpu: 500m, not {kind_of(values)}"
                )
                continue
            out[kind] = {}
            for key, qty in values.items():
                if not RESOURCE_NAME.match(key):
                    self.error((*where, kind, key), f"{key!r} is not a resource name (cpu, memory, ...)")
                    continue
                text = str(qty) if isinstance(qty, (int, float)) and not isinstance(qty, bool) else qty
                if not isinstance(text, str) or not QUANTITY.match(text):
                    self.error(
                        (*where, kind, key),
                        f"{kind}.{key}: {qty!r} is not a Kubernetes quantity (examples: 500m, 1, 128Mi, 2Gi)",
                    )
                    continue
                if text:  # an empty quantity is left out (pkg/k8sutils/resourcerequirements.go)
                    out[kind][key] = text
        return Resources(out.get("limits", {}), out.get("requests", {}))

    def cluster_selector(self, obj: dict[str, Any], path: Path) -> dict[str, str]:
        """`clusterSelector: {platform: arm64}`: labels a cluster of CLUSTERS_FILE must have."""
        raw = obj.get("clusterSelector")
        if raw is None:
            return {}
        ok = isinstance(raw, dict) and all(
            isinstance(v, str | int | float) and not isinstance(v, bool) for v in raw.values()
        )
        if not ok:
            self.error(
                (*path, "clusterSelector"),
                "'clusterSelector' must be a mapping of cluster labels to values, e.g. {platform: arm64}",
            )
            return {}
        return {str(k): str(v) for k, v in raw.items()}

    def annotations(self, obj: dict[str, Any], path: Path) -> dict[str, str]:
        raw = obj.get("annotations")
        where = (*path, "annotations")
        if raw is None:
            return {}
        # The original's docs show a list of one-key maps; its code read a map. Accept both.
        pairs: list[tuple[str, Any, Path]] = []
        if isinstance(raw, dict):
            pairs = [(k, v, (*where, k)) for k, v in raw.items()]
        elif isinstance(raw, list) and all(isinstance(i, dict) for i in raw):
            pairs = [(k, v, (*where, i, k)) for i, item in enumerate(raw) for k, v in item.items()]
        else:
            self.error(where, "'annotations' must be a mapping of names to strings (key: value)")
            return {}
        out: dict[str, str] = {}
        for key, value, at in pairs:
            # Longer than a prefix and a name can be together; within that, task_problems names
            # the part over its bound.
            if len(key) > MAX_SUBDOMAIN + 1 + MAX_NAME_PART or not ANNOTATION_KEY.match(key):
                self.error(at, f"annotation key {key!r} is not a valid Kubernetes annotation name")
            elif isinstance(value, (dict, list)) or value is None:
                self.error(at, f"annotation {key!r} must have a string value")
            elif key in out:
                self.error(at, f"annotation {key!r} is given twice")
            else:
                out[key] = value if isinstance(value, str) else _scalar_text(value)
        return out

    def security_context(self, obj: dict[str, Any], path: Path) -> dict[str, Any] | None:
        raw = obj.get("securityContext")
        where = (*path, "securityContext")
        if raw is None:
            return None
        if not isinstance(raw, dict):
            self.error(where, f"'securityContext' must be a mapping, not {kind_of(raw)}")
            return None
        for key, value in raw.items():
            expected = SECURITY_CONTEXT_KEYS.get(key)
            if expected is None:
                hint = difflib.get_close_matches(key, SECURITY_CONTEXT_KEYS, n=1)
                suggestion = f"; did you mean '{hint[0]}'?" if hint else ""
                self.error((*where, key), f"unknown field '{key}' in securityContext{suggestion}")
            elif not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
                self.error(
                    (*where, key), f"securityContext.{key} must be {expected.__name__}, not {kind_of(value)}"
                )
        return dict(raw)


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
