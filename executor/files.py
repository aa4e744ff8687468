"""Collect the files a task stages from a local resource tree, refusing anything outside it.

A `files:` entry is a file or a folder (all files below it). Paths were normalised by the
parser; symlinks are followed only while they stay inside the tree.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

# A ConfigMap holds at most 1 MiB; leave room for keys and metadata.
MAX_STAGED_BYTES = 900 * 1024


class FilesError(ValueError):
    pass


def collect_files(entries: Sequence[str], roots: Sequence[Path], *, limit: int = MAX_STAGED_BYTES) -> dict[str, bytes]:
    """Relative path -> content, looking in each root in order (service, stage, project)."""
    out: dict[str, bytes] = {}
    total = 0
    for entry in entries:
        found = _find(entry, roots)
        if found is None:
            where = ", ".join(str(r) for r in roots)
            raise FilesError(f"file {entry!r} not found in the resource tree (looked in {where})")
        root, target = found
        for path in _walk(target, root):
            relative = path.relative_to(root.resolve()).as_posix()
            data = path.read_bytes()
            total += len(data)
            if total > limit:
                raise FilesError(
                    f"files of the task add up to more than {limit} bytes; stage large files from "
                    "the Keptn resource service or bake them into the image"
                )
            out[relative] = data
    return out


def _find(entry: str, roots: Sequence[Path]) -> tuple[Path, Path] | None:
    for root in roots:
        candidate = root / entry
        if candidate.exists() and _inside(candidate, root):
            return root, candidate.resolve()
    return None


def _walk(target: Path, root: Path) -> list[Path]:
    if target.is_file():
        return [target]
    found = []
    for path in sorted(target.rglob("*")):
        if path.is_file():
            if not _inside(path, root):
                raise FilesError(f"{path} links outside the resource tree; refusing to stage it")
            found.append(path.resolve())
    return found


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True
