"""Collect the files a task stages from a local resource tree, refusing anything outside it.

A `files:` entry is a file or a folder (all files below it). Paths were normalised by the
parser; symlinks are followed only while they stay inside the tree.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from executor.model.problems import FilesError

# A ConfigMap holds at most 1 MiB; leave room for keys and metadata.
MAX_STAGED_BYTES = 900 * 1024


def collect_files(
    entries: Sequence[str], roots: Sequence[Path], *, limit: int = MAX_STAGED_BYTES
) -> dict[str, bytes]:
    """Relative path -> content, looking in each root in order (service, stage, project).

    A file keeps the path it has in the tree (a symlink inside the tree is staged under its
    own name, with its target's content); a file or link that leads outside the tree is
    refused.
    """
    out: dict[str, bytes] = {}
    total = 0
    for entry in entries:
        found = _find(entry, roots)
        if found is None:
            where = ", ".join(str(r) for r in roots)
            raise FilesError(f"file {entry!r} not found in the resource tree (looked in {where})")
        root, target = found
        for path in _walk(target, root):
            relative = path.relative_to(root).as_posix()
            if relative in out:
                continue  # named twice, e.g. as a file and inside a folder
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
        if candidate.exists():
            if not _inside(candidate, root):
                raise FilesError(f"{entry!r} links outside the resource tree; refusing to stage it")
            return root, candidate
    return None


def _walk(target: Path, root: Path) -> list[Path]:
    """The files at or below target, by their paths in the tree (links not resolved)."""
    if target.is_file():
        return [target]
    found = []
    for path in sorted(target.rglob("*")):
        if not _inside(path, root):
            raise FilesError(f"{path} links outside the resource tree; refusing to stage it")
        if path.is_file():
            found.append(path)
    return found


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True
