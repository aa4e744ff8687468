"""The event model inside the service: a frozen CloudEvent with JSON-native attributes.

The sources parse events at the edges (sources/binding.py: the HTTP and NATS bindings); every
mode and transport validates attributes here, the same way. Inside, an `Event` is plain data, so
it can be hashed into ids, stored in SQLite and searched by jsonpath.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any, NotRequired, TypedDict

REQUIRED_ATTRIBUTES = ("specversion", "id", "source", "type")
# CloudEvents 1.0: attribute names are lower-case letters and digits.
ATTRIBUTE_NAME = re.compile(r"^[a-z0-9]{1,20}$")


class EventError(ValueError):
    """An event we cannot accept; the message says which attribute is wrong and how."""


@dataclass(frozen=True, slots=True)
class Event:
    attributes: Mapping[str, Any]
    data: Any = None
    _document: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    _json: list[str] = field(default_factory=list, init=False, compare=False, repr=False)

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
        """Compact, keys sorted; made once: the state row and every Job's event annotation use it,
        and a 1 MiB event takes the event loop tens of milliseconds to encode."""
        if not self._json:
            self._json.append(
                json.dumps(self.document(), separators=(",", ":"), ensure_ascii=False, sort_keys=True)
            )
        return self._json[0]

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


def event_from_mapping(raw: Any, max_attribute_bytes: int | None = None) -> Event:
    """Validate a structured-mode CloudEvent (already JSON-decoded) into an Event.

    `max_attribute_bytes` caps every attribute value (UTF-8 bytes); None leaves them uncapped,
    for events this service validated itself when it accepted them."""
    if not isinstance(raw, dict):
        raise EventError("a CloudEvent must be a JSON object")
    attributes = {k: v for k, v in raw.items() if k not in ("data", "data_base64")}
    if "data_base64" in raw and raw["data_base64"] is not None:
        if raw.get("data") is not None:
            raise EventError("an event carries either data or data_base64, not both")
        # The content type must be valid before its data is decoded by it.
        check_attributes(attributes, max_attribute_bytes)
        data = _decode_base64(raw["data_base64"], attributes.get("datacontenttype"))
    else:
        data = raw.get("data")
    return event_from_parts(attributes, data, max_attribute_bytes)


def event_from_parts(
    attributes: Mapping[str, Any], data: Any, max_attribute_bytes: int | None = None
) -> Event:
    """The one validation of a CloudEvent's context attributes and data, whatever the content
    mode or transport it came by (cloudevents/spec: spec.md, Context Attributes; json-format.md)."""
    clean = check_attributes(attributes, max_attribute_bytes)
    content_type = clean.get("datacontenttype")
    if data is not None and not isinstance(data, str) and not is_json_type(content_type):
        # json-format.md 3.1: data of a content type that is not JSON travels as a JSON string.
        raise EventError(
            f"datacontenttype {content_type!r} is not JSON, so data must be a string; "
            "send application/json for JSON data"
        )
    return Event(clean, data)


def check_attributes(attributes: Mapping[str, Any], max_attribute_bytes: int | None) -> dict[str, Any]:
    """The attributes, validated, without null ones; EventError names the attribute at fault."""
    for name in REQUIRED_ATTRIBUTES:
        value = attributes.get(name)
        if value is None:
            raise EventError(f"required attribute '{name}' is missing")
        if not isinstance(value, str) or not value.strip():
            raise EventError(f"attribute '{name}' must be a non-empty string")
    if attributes["specversion"] != "1.0":
        raise EventError(f"specversion {attributes['specversion']!r} is not supported; send 1.0")
    clean: dict[str, Any] = {}
    for key, value in attributes.items():
        if not isinstance(key, str) or not ATTRIBUTE_NAME.match(key) or key == "data":
            raise EventError(f"attribute name {key!r} is invalid: use 1-20 lower-case letters or digits")
        if value is None:
            continue
        # bool is an int in Python; the spec's Integer excludes 1.5 (and JSON floats in general).
        if isinstance(value, float) or not isinstance(value, (str, int)):
            raise EventError(f"attribute '{key}' must be a string, an integer or a boolean")
        size = len(value.encode("utf-8", "surrogatepass")) if isinstance(value, str) else 0
        if max_attribute_bytes is not None and size > max_attribute_bytes:
            # Checked before anything reads it: a huge type or source must cost nothing.
            raise EventError(
                f"attribute '{key}' is longer than {max_attribute_bytes} bytes (MAX_ATTRIBUTE_BYTES)"
            )
        if isinstance(value, str) and (bad := DISALLOWED.search(value)):
            raise EventError(
                f"attribute '{key}' holds U+{ord(bad.group()):04X}, which a CloudEvents String may not "
                "(control characters, unpaired surrogates and noncharacters)"
            )
        if key in TYPED_STRINGS:
            _check_typed(key, value)
        clean[key] = value
    return clean


# What a CloudEvents String may not hold (cloudevents/spec cloudevents/spec.md, "Type System"):
# the control characters U+0000-U+001F and U+007F-U+009F, surrogates not in a pair (Python keeps
# a lone one from JSON's "\ud800" as it is), and Unicode's noncharacters (U+FDD0-U+FDEF and the
# last two code points of every plane).
DISALLOWED = re.compile(
    "[\x00-\x1f\x7f-\x9f\ud800-\udfff\ufdd0-\ufdef"
    + "".join(f"{chr(plane * 0x10000 + 0xFFFE)}{chr(plane * 0x10000 + 0xFFFF)}" for plane in range(17))
    + "]"
)


# Optional core attributes: Strings (or Timestamp, URI-reference) that, when present, are
# non-empty (spec.md: "MUST be a non-empty string"; conformance: invalidEmptySubject and kin).
TYPED_STRINGS = ("time", "subject", "dataschema", "datacontenttype")
# RFC 3339 date-time, seconds required, fraction optional, Z or a +hh:mm offset.
RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.\d+)?(?:[Zz]|([+-])(\d{2}):(\d{2}))$"
)
# RFC 2045/2046: type "/" subtype, both tokens, then optional parameters.
_TOKEN = r"[A-Za-z0-9!#$%&'*+.^_`|~-]+"
MEDIA_TYPE = re.compile(rf"^{_TOKEN}/{_TOKEN}\s*(;.*)?$", re.S)


def _check_typed(key: str, value: Any) -> None:
    if not isinstance(value, str):
        raise EventError(f"attribute '{key}' must be a string")
    if not value:
        raise EventError(f"attribute '{key}' must not be empty when present")
    if key == "time" and not valid_time(value):
        raise EventError(
            f"attribute 'time' {value[:64]!r} is not an RFC 3339 timestamp (2018-04-05T17:31:00Z)"
        )
    if key == "datacontenttype" and not MEDIA_TYPE.match(value):
        raise EventError(f"attribute 'datacontenttype' {value[:64]!r} is not a media type (type/subtype)")


def valid_time(value: str) -> bool:
    match = RFC3339.match(value)
    if match is None:
        return False
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    try:
        # A leap second (60) is valid RFC 3339; datetime knows no leap seconds.
        datetime(year, month, day, hour, minute, min(second, 59))
    except ValueError:
        return False
    offset = match.group(7) is not None
    return not offset or (int(match.group(8)) <= 23 and int(match.group(9)) <= 59)


def media_type(content_type: Any) -> str:
    """`type/subtype` of a content type, lower-case, without parameters."""
    return str(content_type).split(";", 1)[0].strip().lower()


def is_json_type(content_type: Any) -> bool:
    """JSON data: no content type (json-format.md: implied JSON), application/json, text/json or
    any `+json` suffix (json-format.md 3.1, "JSON-formatted content")."""
    if content_type is None:
        return True
    kind = media_type(content_type)
    return kind in ("application/json", "text/json") or kind.endswith("+json")


def _decode_base64(encoded: Any, content_type: Any) -> Any:
    """json-format.md 3.1: a receiver MUST decode data_base64. Only JSON data is useful to a job
    config (it is what jsonpath reads), so other binary data is refused with the reason."""
    if not isinstance(encoded, str):
        raise EventError("data_base64 must be a base64 string")
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise EventError("data_base64 is not valid base64 (RFC 4648)") from None
    if not is_json_type(content_type):
        raise EventError(
            f"data_base64 holds binary data of datacontenttype {content_type!r}; only JSON data "
            "(application/json, text/json, */*+json) can be decoded"
        )
    try:
        return strict_json(raw)
    except (ValueError, UnicodeDecodeError):
        raise EventError("data_base64 does not decode to JSON, as its datacontenttype says") from None
    except RecursionError:
        raise EventError("data_base64 holds JSON nested too deeply") from None


def _not_a_number(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number (RFC 8259)")


# One decoder for every event: json.loads with any option builds a new one per call.
_STRICT = json.JSONDecoder(parse_constant=_not_a_number)


def strict_json(text: str | bytes) -> Any:
    """json.loads without the standard library's extensions: NaN and Infinity are refused, as every
    other JSON reader does. Taken in, they would come back out as a report no receiver accepts
    (or, with the speedups extra, silently as null)."""
    # As json.loads reads its input: bytes in UTF-8, -16 or -32 by their first bytes; a str
    # that starts with a byte order mark is an error.
    if isinstance(text, str):
        if text.startswith("\ufeff"):
            raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
    else:
        text = text.decode(json.detect_encoding(text), "surrogatepass")
    return _STRICT.decode(text)


def parse_json(text: str | bytes) -> Any:
    """JSON from a client; malformed or absurdly nested input is an EventError, never a crash."""
    try:
        return strict_json(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise EventError(f"body is not valid JSON: {exc}") from None
    except RecursionError:
        raise EventError("body is nested too deeply") from None


def event_from_json(text: str | bytes, max_attribute_bytes: int | None = None) -> Event:
    return event_from_mapping(parse_json(text), max_attribute_bytes)


def stored_event(text: str | bytes) -> Event:
    """An event this service accepted earlier, from its state: validated then, so it is read
    back as it was stored. Rules tightened since (a newer version) must not make a restart fail."""
    raw = json.loads(text)
    data = raw.pop("data", None)
    return Event({k: v for k, v in raw.items() if v is not None}, data)


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
    """An event we send, as structured-mode CloudEvent JSON: what the reporter builds, the
    outbox stores and every sink sends. Two shapes share it: Keptn's answers (started,
    finished, an error log) carry `shkeptnspecversion` and Keptn's extensions; the result
    events that answer any other event carry `subject` (the action), `triggeredsource` and,
    when the trigger had one, `traceparent` (the distributed tracing extension)."""

    specversion: str
    id: str
    source: str
    type: str
    time: str
    datacontenttype: str
    triggeredid: str
    shkeptnspecversion: NotRequired[str]
    shkeptncontext: NotRequired[str]
    gitcommitid: NotRequired[str]
    subject: NotRequired[str]
    triggeredsource: NotRequired[str]
    traceparent: NotRequired[str]
    data: dict[str, Any]
