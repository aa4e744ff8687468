"""URLs in messages and logs, without the credentials they may carry."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def without_userinfo(url: str) -> str:
    """`nats://user:secret@host:4222` -> `nats://host:4222`; a comma-separated list too."""
    return ",".join(_one(part.strip()) for part in url.split(","))


def _one(url: str) -> str:
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
