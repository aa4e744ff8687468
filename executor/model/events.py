"""The event model inside the service: a frozen CloudEvent with JSON-native attributes.

The cloudevents package parses and writes events at the edges (sources, sinks); inside, an
`Event` is plain data so it can be hashed into ids, stored in SQLite and searched by jsonpath.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, NotRequired, TypedDict

REQUIRED_ATTRIBUTES = ("specversion", "id", "source", "type")
# CloudEvents 1.0: attribute names are lower-case letters and digits.
ATTRIBUTE_NAME = re.compile(r"^[a-z0-9]{1,20}$")


class EventError(ValueError):
    """An event we cannot accept; the message says which attribute is wrong and how."""


@dataclass(frozen=True)
class Event:
    attributes: Mapping[str, Any]
    data: Any = None
    _document: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def id(self) -> str:
        return str(self.attributes["id"])

    @property
    def source(self) -> str:
        return str(self.attributes["source"])

    @property
    def type(self) -> str:
        return str(self.attributes["type"])

    def attribute(self, name: str, default: str = "") -> str:
        value = self.attributes.get(name)
        return default if value is None else str(value)

    def document(self) -> dict[str, Any]:
        """The event as one JSON object (attributes and `data`), what jsonpath `$` refers to."""
        if not self._document:
            self._document.update(self.attributes)
            self._document["data"] = self.data
        return self._document

    def to_json(self) -> str:
        return json.dumps(self.document(), separators=(",", ":"), ensure_ascii=False, sort_keys=True)

    # ---- Keptn's view of the data ----
    def data_field(self, name: str) -> str:
        if isinstance(self.data, dict):
            value = self.data.get(name)
            if isinstance(value, str):
                return value
        return ""

    @property
    def project(self) -> str:
        return self.data_field("project")

    @property
    def stage(self) -> str:
        return self.data_field("stage")

    @property
    def service(self) -> str:
        return self.data_field("service")

    @property
    def labels(self) -> dict[str, str]:
        raw = self.data.get("labels") if isinstance(self.data, dict) else None
        if not isinstance(raw, dict):
            return {}
        return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in raw.items()}

    @property
    def keptn_context(self) -> str:
        return self.attribute("shkeptncontext")

    @property
    def git_commit_id(self) -> str:
        # Keptn carries it as an extension attribute; some producers put it in data.
        return self.attribute("gitcommitid") or self.data_field("gitcommitid")


def event_from_mapping(raw: Any) -> Event:
    """Validate a structured-mode CloudEvent (already JSON-decoded) into an Event."""
    if not isinstance(raw, dict):
        raise EventError("a CloudEvent must be a JSON object")
    for name in REQUIRED_ATTRIBUTES:
        value = raw.get(name)
        if value is None:
            raise EventError(f"required attribute '{name}' is missing")
        if not isinstance(value, str) or not value.strip():
            raise EventError(f"attribute '{name}' must be a non-empty string")
    if raw["specversion"] != "1.0":
        raise EventError(f"specversion {raw['specversion']!r} is not supported; send 1.0")
    attributes: dict[str, Any] = {}
    data: Any = None
    for key, value in raw.items():
        if key == "data":
            data = value
        elif key == "data_base64":
            raise EventError("binary data (data_base64) is not supported; send JSON data")
        elif not ATTRIBUTE_NAME.match(key):
            raise EventError(f"attribute name {key!r} is invalid: use 1-20 lower-case letters or digits")
        elif value is not None:
            if isinstance(value, (dict, list)):
                raise EventError(f"attribute '{key}' must be a string, number or boolean")
            attributes[key] = value
    content_type = str(attributes.get("datacontenttype", "application/json"))
    if data is not None and "json" not in content_type:
        raise EventError(f"datacontenttype {content_type!r} is not JSON; send application/json data")
    return Event(attributes, data)


def parse_json(text: str | bytes) -> Any:
    """JSON from a client; malformed or absurdly nested input is an EventError, never a crash."""
    try:
        return json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise EventError(f"body is not valid JSON: {exc}") from None
    except RecursionError:
        raise EventError("body is nested too deeply") from None


def event_from_json(text: str | bytes) -> Event:
    return event_from_mapping(parse_json(text))


def load_event_file(path: str) -> Event:
    try:
        with open(path, "rb") as handle:
            text = handle.read()
    except OSError as exc:
        raise EventError(f"{path}: cannot read file: {exc.strerror}") from None
    try:
        return event_from_json(text)
    except EventError as exc:
        raise EventError(f"{path}: {exc}") from None


class Offer(Enum):
    """A source's answer from the dispatcher: what became of the event it offered."""

    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    FULL = "full"
    CLOSED = "closed"


class OutEvent(TypedDict):
    """An event we send (started, finished, an error log), as structured-mode CloudEvent JSON:
    what the reporter builds, the outbox stores and every sink sends."""

    specversion: str
    id: str
    source: str
    type: str
    time: str
    datacontenttype: str
    shkeptnspecversion: str
    triggeredid: str
    shkeptncontext: NotRequired[str]
    gitcommitid: NotRequired[str]
    data: dict[str, Any]
