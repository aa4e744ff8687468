"""What the CloudEvents protocol bindings share between HTTP and NATS: the content mode chosen by
content type, and binary mode's `ce-` headers decoded into attributes.

Rules: cloudevents/spec: cloudevents/bindings/http-protocol-binding.md 1.0.2 (3, 3.1.1, 3.1.3)
and nats-protocol-binding.md 1.0.1 (3, 3.1). Header values are decoded here rather than by the
cloudevents package, whose lenient unquote turns an invalid UTF-8 sequence into U+FFFD and keeps
a quoted-string's quotes; a wrong `shkeptncontext` would then go back to Keptn.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping
from enum import Enum
from typing import Any

from executor.model.events import (
    REQUIRED_ATTRIBUTES,
    Event,
    EventError,
    event_from_parts,
    is_json_type,
    media_type,
    parse_json,
)

PREFIX = "ce-"

# A header value is visible ASCII, spaces and tabs (RFC 7230 field-value); anything else must
# have been percent-encoded by the sender.
_NOT_VISIBLE = re.compile(r"[^\t -~]")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


class Mode(Enum):
    BINARY = "binary"
    STRUCTURED = "structured"
    BATCH = "batch"


def content_mode(content_type: str | None) -> Mode:
    """http-protocol-binding.md 3 (nats 3 alike): `application/cloudevents-batch` is a batch,
    `application/cloudevents` structured, anything else binary, whatever other headers say."""
    kind = media_type(content_type or "")
    if kind.startswith("application/cloudevents-batch"):
        return Mode.BATCH
    if kind.startswith("application/cloudevents"):
        return Mode.STRUCTURED
    return Mode.BINARY


def structured_format_is_json(content_type: str | None) -> bool:
    """Only the JSON event format is spoken (`application/cloudevents+json`, or no suffix)."""
    kind = media_type(content_type or "")
    return kind in ("application/cloudevents", "application/cloudevents-batch") or kind.endswith("+json")


def has_ce_headers(headers: Mapping[str, str]) -> bool:
    return any(name.lower().startswith(PREFIX) for name in headers)


def binary_event(
    headers: Mapping[str, str],
    body: bytes,
    content_type: str | None,
    max_attribute_bytes: int | None,
) -> Event:
    """A binary-mode event: attributes from `ce-` headers (names case-insensitive), data from the
    body. HTTP passes its Content-Type as `content_type` (3.1.1); NATS passes None, and its
    `ce-datacontenttype` header, decoded like the others, is the datacontenttype."""
    attributes: dict[str, Any] = {}
    for name, raw in headers.items():
        lowered = name.lower()
        if not lowered.startswith(PREFIX):
            continue
        attribute = lowered[len(PREFIX) :]
        if attribute in attributes:
            raise EventError(f"attribute '{attribute}' is given by more than one header")
        attributes[attribute] = decode_header_value(attribute, raw)
    if not attributes:
        raise EventError(
            "no ce- headers: a binary-mode event needs ce-specversion, ce-id, ce-source and ce-type; "
            "a structured event needs Content-Type: application/cloudevents+json"
        )
    for name in REQUIRED_ATTRIBUTES:
        if not attributes.get(name, "").strip():
            raise EventError(f"header ce-{name} is missing or empty")
    if content_type is not None:
        attributes["datacontenttype"] = content_type
    data = binary_data(body, attributes.get("datacontenttype"))
    return event_from_parts(attributes, data, max_attribute_bytes)


def binary_data(body: bytes, content_type: str | None) -> Any:
    """The body as data: JSON for a JSON content type (or none), a string for text; other
    (binary) data is refused, since a job config can only read JSON or text."""
    if not body:
        return None
    if is_json_type(content_type):
        return parse_json(body)
    if media_type(content_type).startswith("text/"):
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError:
            raise EventError(f"datacontenttype {content_type!r}: the body is not UTF-8 text") from None
    raise EventError(
        f"datacontenttype {content_type!r} is binary data, which is not supported; "
        "send JSON (application/json) or text (text/*)"
    )


def decode_header_value(attribute: str, raw: str) -> str:
    """http-protocol-binding.md 3.1.3.2: an RFC 7230 quoted-string is unescaped first, then one
    round of percent-decoding must yield valid UTF-8; anything else is a 400 naming the attribute."""
    value = raw.strip(" \t")
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        value = _unquote(attribute, value[1:-1])
    if _NOT_VISIBLE.search(value):
        raise EventError(
            f"attribute '{attribute}' (header ce-{attribute}) holds characters that must be "
            "percent-encoded (UTF-8)"
        )
    if "%" not in value:
        return value  # printable ASCII with nothing to decode: most values, decoded as they are
    if _BAD_ESCAPE.search(value):
        raise EventError(f"attribute '{attribute}' (header ce-{attribute}): '%' must start a %XX escape")
    try:
        # strict: overlong forms, surrogates, truncation refused
        return urllib.parse.unquote_to_bytes(value).decode("utf-8")
    except UnicodeDecodeError:
        raise EventError(
            f"attribute '{attribute}' (header ce-{attribute}): the percent-encoded bytes are not valid UTF-8"
        ) from None


def _unquote(attribute: str, inner: str) -> str:
    out = []
    escaped = False
    for ch in inner:
        if escaped:
            out.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == '"':
            raise EventError(
                f"attribute '{attribute}' (header ce-{attribute}): a quote inside a quoted-string"
            )
        else:
            out.append(ch)
    if escaped:
        raise EventError(f"attribute '{attribute}' (header ce-{attribute}): a quoted-string ends in '\\'")
    return "".join(out)


def batch_members(body: bytes, max_batch: int) -> list[Any]:
    raw = parse_json(body)
    if not isinstance(raw, list):
        raise EventError("a batch must be a JSON array of CloudEvents")
    if len(raw) > max_batch:
        raise EventError(f"a batch holds at most {max_batch} events, not {len(raw)}")
    return raw
