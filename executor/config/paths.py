"""File paths from a job config: normalised to a relative path inside the resource tree.

The original treated `locust/basic.py` and `/locust/basic.py` alike (both relative to the tree);
we keep that, and refuse any path that would leave the tree once normalised.
"""

from __future__ import annotations

import posixpath

STAGING_ROOT = "/keptn"


class PathEscapeError(ValueError):
    pass


def normalise_file_path(raw: str) -> str:
    text = raw.strip()
    if not text or text.strip("/") == "":
        raise PathEscapeError(f"file path {raw!r} names no file; write a path such as locust/basic.py")
    if "\x00" in text or "\\" in text:
        raise PathEscapeError(f"file path {raw!r} contains a NUL or backslash; use '/' separators")
    parts = text.strip("/").split("/")
    if ".." in parts:
        raise PathEscapeError(f"file path {raw!r} escapes the resource tree ('..' is not allowed)")
    normal = posixpath.normpath("/".join(p for p in parts if p not in ("", ".")) or ".")
    if normal in (".", "") or normal.startswith("../"):
        raise PathEscapeError(f"file path {raw!r} names no file inside the resource tree")
    return normal


def staged_path(relative: str) -> str:
    """Where a task sees a staged file: its path kept, under /keptn."""
    return f"{STAGING_ROOT}/{relative}"
