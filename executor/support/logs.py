"""The service's log: one record per step of an event's life, with the event's source and id, the
action and the task as named fields, and a timestamp on every line.

`LOG_FORMAT=text` writes `time level logger: message key=value ...`; `json` writes one object per
line with the same fields under fixed names, so Loki or Elasticsearch need no parsing rules.
Every line passes through one redaction step that replaces the values of secret settings (tokens),
so a token that reaches a message by accident (an error text that quotes a header) is not written.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterable, Mapping
from typing import Any, TextIO

# The named fields a record may carry (through `extra=step(...)`), in the order text lines show them.
FIELDS = ("source", "event_id", "type", "action", "task", "status", "duration_s", "sink", "job")
_MASK = "***"


def step(
    source: str = "",
    event_id: str = "",
    *,
    action: str | None = None,
    task: str | None = None,
    **more: Any,
) -> dict[str, Any]:
    """The `extra=` of a log call about one event (and action, task): `log.info(..., extra=step(...))`."""
    fields: dict[str, Any] = {"source": source, "event_id": event_id}
    if action is not None:
        fields["action"] = action
    if task is not None:
        fields["task"] = task
    fields.update(more)
    return {"ctx": fields}


def _context(record: logging.LogRecord) -> Mapping[str, Any]:
    ctx = getattr(record, "ctx", None)
    return ctx if isinstance(ctx, Mapping) else {}


def _timestamp(record: logging.LogRecord) -> str:
    whole = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    return f"{whole}.{int(record.msecs):03d}Z"


class _Redacting(logging.Formatter):
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        # Longest first, so a secret that contains another is masked whole. Very short values
        # would mask ordinary words; settings refuse none, so skip those under 4 characters.
        self.secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, _MASK)
        return text


class TextFormatter(_Redacting):
    def format(self, record: logging.LogRecord) -> str:
        ctx = _context(record)
        parts = [_timestamp(record), record.levelname, f"{record.name}: {record.getMessage()}"]
        extra = [f"{k}={_show(ctx[k])}" for k in (*FIELDS, *sorted(set(ctx) - set(FIELDS))) if k in ctx]
        line = " ".join(parts + extra)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return self.redact(line)


class JsonFormatter(_Redacting):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in _context(record).items():
            doc.setdefault(key, value)
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return self.redact(json.dumps(doc, ensure_ascii=False, default=str))


def _show(value: Any) -> str:
    text = str(value)
    return json.dumps(text) if (not text or any(c in text for c in ' "=\n')) else text


def setup(log_format: str, level: str, secrets: Iterable[str] = (), stream: TextIO | None = None) -> None:
    """Route the root logger to one handler on stderr in the chosen format (replacing the plain
    one `main` set up before the settings were read)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    formatter = JsonFormatter(secrets) if log_format == "json" else TextFormatter(secrets)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # aiohttp's access log would add a line per request under load; ours say what matters.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
