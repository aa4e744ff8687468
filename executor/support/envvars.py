"""Reading settings from environment variables: `env(...)` declares one as a dataclass field
(its variable, default, reader and help), and the readers turn a variable's text into a value or
a SettingsError that names the variable and says what to write.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import MISSING, field, fields
from datetime import datetime
from pathlib import Path
from typing import Any


class SettingsError(ValueError):
    """A setting has a value we cannot use; the message names the variable and what to write."""


Parse = Callable[[str, str], Any]  # (variable name, raw text) -> value, or SettingsError


def env(
    name: str, default: Any, parse: Parse | None = None, *, doc: str, shown: str = "", secret: bool = False
) -> Any:
    """A setting read from the variable `name`: `default` when it is not set, else `parse(name, text)`
    (the stripped text when no parser is given). `shown`: the default as the README says it."""
    meta = {"env": name, "parse": parse or text, "doc": doc, "shown": shown}
    return field(default=default, metadata=meta, repr=not secret)


# ---- readers of a variable's text ----


def text(name: str, raw: str) -> str:
    return raw.strip()


def flag(name: str, raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise SettingsError(f"{name}={raw!r}: write true or false")


def whole(minimum: int) -> Parse:
    def read(name: str, raw: str) -> int | None:
        if not raw.strip():
            return None  # blank: the default
        try:
            value = int(raw.strip())
        except ValueError:
            raise SettingsError(f"{name}={raw!r}: write a whole number") from None
        if value < minimum:
            raise SettingsError(f"{name}={value}: must be at least {minimum}")
        return value

    return read


def seconds(minimum: int) -> Parse:
    read_whole = whole(minimum)

    def read(name: str, raw: str) -> float | None:
        value = read_whole(name, raw)
        return None if value is None else float(value)

    return read


def choice(*allowed: str) -> Parse:
    def read(name: str, raw: str) -> str:
        value = raw.strip().lower()
        if value not in allowed:
            raise SettingsError(f"{name}={value!r}: write one of {', '.join(allowed)}")
        return value

    return read


def quantity(name: str, raw: str) -> str:
    """A Kubernetes quantity (500m, 1, 128Mi); blank means "not set", as in JES."""
    value = raw.strip()
    if value and not _QUANTITY.match(value):
        raise SettingsError(f"{name}={raw!r}: write a Kubernetes quantity such as 500m, 1, 128Mi or 2Gi")
    return value


def dns_label(name: str, raw: str) -> str:
    value = raw.strip()
    if value and (len(value) > 63 or not _DNS_LABEL.match(value)):
        raise SettingsError(f"{name}={raw!r}: write a Kubernetes name (lower-case letters, digits, '-')")
    return value


def dns_subdomain(name: str, raw: str) -> str:
    value = raw.strip()
    if value and (len(value) > 253 or not _DNS_SUBDOMAIN.match(value)):
        raise SettingsError(f"{name}={raw!r}: write a Kubernetes name (lower-case letters, digits, '-', '.')")
    return value


def globs(name: str, raw: str) -> tuple[str, ...]:
    """A comma-separated list of globs; commas inside `{a,b}` belong to the glob. A value made
    only of commas and spaces is refused: it reads as a list yet would allow everything."""
    parts: list[str] = []
    depth, current = 0, ""
    for char in raw:
        if char == "{":
            depth += 1
        elif char == "}" and depth:
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    found = tuple(p.strip() for p in parts if p.strip())
    if raw.strip() and not found:
        raise SettingsError(
            f"{name}={raw!r} names no image: leave it unset (every image, with a warning) or list globs "
            "such as docker.io/library/*"
        )
    return found


def listing(name: str, raw: str) -> tuple[str, ...]:
    return parse_list(raw)


def path(name: str, raw: str) -> Path:
    return Path(raw.strip())


def optional_path(name: str, raw: str) -> Path | None:
    return Path(raw.strip()) if raw.strip() else None


def parse_list(raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def parse_labels(raw: str, name: str) -> tuple[tuple[str, str], ...]:
    """`key=value,key2=value2` -> pairs; a malformed entry is an error, not silently dropped."""
    pairs = []
    for entry in parse_list(raw):
        key, sep, value = entry.partition("=")
        key, value = key.strip(), value.strip()
        # A prefix is a DNS subdomain: at most 253 characters (the name part's 63 are in the pattern).
        if not sep or not _LABEL_KEY.match(key) or len(key.rpartition("/")[0]) > 253:
            raise SettingsError(
                f"{name}: entry {entry!r} is not key=value with a label key (example: team=qa)"
            )
        if not _LABEL_VALUE.match(value):
            raise SettingsError(
                f"{name}: value {value!r} of {key} is not a valid label value (<= 63 of [A-Za-z0-9_.-])"
            )
        pairs.append((key, value))
    return tuple(pairs)


def deliver_policy(name: str, raw: str) -> str:
    value = raw.strip()
    if value.lower() in ("new", "all"):
        return value.lower()
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise SettingsError(f"{name}={raw!r}: write new, all or an RFC 3339 time (2024-05-01T00:00:00Z)")
    return value


def jsonpath_levels(name: str, raw: str) -> tuple[str, ...]:
    paths = listing(name, raw)
    if not 1 <= len(paths) <= 3 or not all(p.startswith("$") for p in paths):
        raise SettingsError(f"{name}={raw!r}: write one to three jsonpaths, such as $.source,$.subject")
    return paths


def type_prefix(name: str, raw: str) -> str:
    value = raw.strip().strip(".")
    if not value or value.startswith("sh.keptn."):
        raise SettingsError(f"{name}={raw!r}: write a type prefix outside sh.keptn., such as com.example.job")
    return value


_LABEL_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$")

_QUANTITY = re.compile(r"^[+]?(\d+(\.\d*)?|\.\d+)([KMGTPE]i|[numkMGTPE]|[eE][+-]?\d+)?$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def declared(groups: Mapping[str, type]) -> list[tuple[str, Any]]:
    """The fields declared with `env` in each group dataclass, in order: (group name, field)."""
    return [(name, f) for name, group in groups.items() for f in fields(group)]


def markdown_table(groups: Mapping[str, type]) -> str:
    """A Markdown table of every declared variable: its name, default and help."""
    rows = ["| variable | default | meaning |", "| --- | --- | --- |"]
    for _, f in declared(groups):
        default = f.metadata["shown"] or _show(f.default)
        rows.append(f"| `{f.metadata['env']}` | {default} | {f.metadata['doc']} |")
    return "\n".join(rows) + "\n"


def _show(value: Any) -> str:
    if value is MISSING or value in ("", (), None):
        return "(none)"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, tuple):
        value = ",".join(value)
    return f"`{value}`"
