"""Shared helpers of the core tests: sample paths, event and config builders, and the check
every rendered manifest goes through (the official Kubernetes schema, plus the name and
format rules the schema leaves to the API server)."""

from __future__ import annotations

import json
import re
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from executor.config.model import JobConfig
from executor.config.parse import parse_config
from executor.model.events import Event, event_from_mapping
from executor.model.problems import ConfigError, Problem
from executor.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples"
RESOURCES = SAMPLES / "resources"
EVENTS = SAMPLES / "events"
# Each sample config under samples/resources/sockshop, the event that triggers it, and how many
# Jobs it makes.
SAMPLE_CASES = [
    ("dev/carts", "test.triggered.json", 1),
    ("dev/annotations", "sample.triggered.annotations.json", 1),
    ("dev/env-formats", "sample.triggered.env-formats.json", 1),
    ("dev/pull-policy", "sample.triggered.pull-policy.json", 1),
    ("dev/security-context", "sample.triggered.security-context.json", 2),
    ("dev/service-account", "sample.triggered.service-account.json", 1),
    ("dev/ttl", "sample.triggered.ttl.json", 1),
    ("dev/working-dir", "sample.triggered.working-dir.json", 1),
    ("dev", "sample.triggered.working-dir.json", 1),
    ("", "greeting.triggered.json", 1),
]
K8S_VERSION = "1.37.0"

UUID = "f2b878d3-03c0-4e8f-bc3f-454bc1b3d79b"

# Rules of the API server's validation that the OpenAPI schema does not carry.
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
QUANTITY = re.compile(r"^[+]?(\d+(\.\d*)?|\.\d+)([KMGTPE]i|[numkMGTPE]|[eE][+-]?\d+)?$")
CONFIGMAP_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")


def validate_manifest(obj: dict[str, Any]) -> None:
    """Fail the test unless `obj` is an object the Kubernetes API server would accept."""
    try:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        caught = exc.caught
        where = "/".join(str(p) for p in getattr(caught, "absolute_path", ()))
        message = getattr(caught, "message", str(caught))
        pytest.fail(
            f"{obj.get('kind')} {_name(obj)} fails the Kubernetes {K8S_VERSION} schema at {where}: {message}"
        )
    problems = list(_api_rules(obj))
    if problems:
        pytest.fail(f"{obj.get('kind')} {_name(obj)}: " + "; ".join(problems))


def validate_all(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for obj in objects:
        validate_manifest(obj)
    return objects


def _name(obj: dict[str, Any]) -> str:
    return str(obj.get("metadata", {}).get("name"))


def _api_rules(obj: dict[str, Any]) -> Iterator[str]:
    meta = obj["metadata"]
    yield from _metadata(meta, obj["kind"])
    if obj["kind"] == "ConfigMap":
        data = {**obj.get("data", {}), **obj.get("binaryData", {})}
        yield from (f"configmap key {k!r}" for k in data if not CONFIGMAP_KEY.match(k) or len(k) > 253)
        size = sum(len(v) for v in data.values())
        if size > 1024 * 1024:
            yield f"configmap holds {size} bytes, over 1 MiB"
    if obj["kind"] == "Job":
        # Pods of a Job carry its name as a label value, so it must also fit a label.
        if len(meta["name"]) > 63:
            yield f"job name {meta['name']!r} is longer than 63"
        spec = obj["spec"]
        yield from _metadata(spec["template"]["metadata"], "pod template")
        yield from _pod(spec["template"]["spec"])


def _metadata(meta: dict[str, Any], kind: str) -> Iterator[str]:
    name = meta.get("name")
    if name is not None and (len(name) > 253 or not DNS_SUBDOMAIN.match(name)):
        yield f"{kind} name {name!r} is not a DNS-1123 subdomain"
    namespace = meta.get("namespace")
    if namespace is not None and (len(namespace) > 63 or not DNS_LABEL.match(namespace)):
        yield f"namespace {namespace!r} is not a DNS-1123 label"
    for key, value in meta.get("labels", {}).items():
        if not _qualified_name(key):
            yield f"label key {key!r}"
        if not isinstance(value, str) or len(value) > 63 or not LABEL_VALUE.match(value):
            yield f"label {key}={value!r}: not a valid label value"
    annotations = meta.get("annotations", {})
    for key, value in annotations.items():
        if not _qualified_name(key):
            yield f"annotation key {key!r}"
        if not isinstance(value, str):
            yield f"annotation {key} is not a string"
    if sum(len(k) + len(v) for k, v in annotations.items()) > 256 * 1024:
        yield "annotations exceed 256 KiB"


def _qualified_name(key: str) -> bool:
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not DNS_SUBDOMAIN.match(prefix)):
        return False
    return 0 < len(name) <= 63 and bool(LABEL_NAME.match(name))


def _pod(pod: dict[str, Any]) -> Iterator[str]:
    volumes = {v["name"] for v in pod.get("volumes", [])}
    for volume in volumes:
        if len(volume) > 63 or not DNS_LABEL.match(volume):
            yield f"volume name {volume!r}"
    names = []
    for container in [*pod.get("initContainers", []), *pod["containers"]]:
        names.append(container["name"])
        if len(container["name"]) > 63 or not DNS_LABEL.match(container["name"]):
            yield f"container name {container['name']!r} is not a DNS-1123 label of <= 63"
        env_names = [e["name"] for e in container.get("env", [])]
        if len(env_names) != len(set(env_names)):
            yield f"container {container['name']} has duplicate env names"
        for env in container.get("env", []):
            if not env["name"] or "=" in env["name"] or not env["name"].isprintable():
                yield f"env name {env['name']!r}"
        for kind in ("limits", "requests"):
            for resource, quantity in container.get("resources", {}).get(kind, {}).items():
                if not isinstance(quantity, str) or not QUANTITY.match(quantity):
                    yield f"{kind}.{resource}: {quantity!r} is not a quantity"
        for mount in container.get("volumeMounts", []):
            if mount["name"] not in volumes:
                yield f"mount of unknown volume {mount['name']!r}"
        context = container.get("securityContext", {})
        if context.get("allowPrivilegeEscalation") is False and context.get("privileged"):
            yield "privileged with allowPrivilegeEscalation: false is refused by the API server"
        if context.get("runAsNonRoot") and context.get("runAsUser") == 0:
            yield "runAsNonRoot with runAsUser 0 can never start"
    if len(names) != len(set(names)):
        yield "container names are not unique"
    if pod.get("restartPolicy") not in ("Never", "OnFailure"):
        yield "a Job's pods must have restartPolicy Never or OnFailure"


# ---- builders ----


def make_event(
    type: str = "sh.keptn.event.test.triggered",
    data: Any = None,
    *,
    id: str = UUID,
    source: str = "shipyard-controller",
    **attributes: Any,
) -> Event:
    if data is None:
        data = {"project": "sockshop", "stage": "dev", "service": "carts"}
    raw = {"specversion": "1.0", "id": id, "source": source, "type": type, **attributes, "data": data}
    return event_from_mapping(raw)


def sample_event(name: str) -> Event:
    return event_from_mapping(json.loads((EVENTS / name).read_text()))


def config(text: str, source: str = "job/config.yaml") -> JobConfig:
    return parse_config(textwrap.dedent(text), source)


def problems(text: str, source: str = "job/config.yaml") -> list[Problem]:
    """The problems the parser reports; fails when the text parses."""
    with pytest.raises(ConfigError) as caught:
        parse_config(textwrap.dedent(text), source)
    return caught.value.problems


def one_task(task_yaml: str, events: str = "sh.keptn.event.test.triggered") -> str:
    """A whole config around one task written as YAML lines (indented any way)."""
    body = textwrap.indent(textwrap.dedent(task_yaml).strip("\n"), " " * 8)
    return (
        "apiVersion: v2\n"
        "actions:\n"
        '  - name: "act"\n'
        "    events:\n"
        f'      - name: "{events}"\n'
        "    tasks:\n"
        '      - name: "task"\n'
        f"{body}\n"
    )


@pytest.fixture
def settings() -> Settings:
    """Defaults, independent of the environment the tests run in."""
    return Settings()


@pytest.fixture
def check_manifest() -> Callable[[dict[str, Any]], None]:
    return validate_manifest
