"""Configs and task files from a local directory tree laid out like the Keptn resource tree
(the embedded default), or from one file (`job-executor run --config`).

A `files:` entry is a file or a folder (all files below it). Paths were normalised by the
parser; symlinks are followed only while they stay inside the tree.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path

from executor.config.model import JobConfig
from executor.config.parse import read_config_file
from executor.model.events import Event
from executor.model.problems import FilesError
from executor.resolvers.base import (
    CONFIG_PATH,
    FetchFiles,
    InvalidNames,
    Levels,
    Resolved,
    check_names,
)

# Depth in the tree -> the name of its level (Keptn's names, whatever CONFIG_LEVELS reads).
LEVEL_NAMES = ("root", "project", "stage", "service")

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


def local_files(roots: Sequence[Path]) -> FetchFiles:
    """Files from a local tree: looked up in each root in turn (service, stage, project)."""

    async def fetch(entries: Sequence[str]) -> dict[str, bytes]:
        return collect_files(entries, roots)

    return fetch


class LocalTreeResolver:
    """Configs in a directory laid out like the Keptn resource tree, with a root level:

    <root>/<project>/<stage>/<service>/job/config.yaml, <root>/<project>/<stage>/job/config.yaml,
    <root>/<project>/job/config.yaml, then <root>/job/config.yaml, which applies to every event.
    The folder names are the event's values of CONFIG_LEVELS (`levels`): its Keptn project,
    stage and service by default.
    """

    def __init__(self, root: Path, levels: Levels | None = None) -> None:
        self.root = root
        self.levels = levels or Levels()
        self._cache: dict[Path, tuple[tuple[int, int], JobConfig]] = {}
        # Level values -> the folders to look in and their config files: path arithmetic costs
        # more than the rest of resolving on a busy receiver, and a few names recur.
        self._folders: dict[tuple[str, ...], list[tuple[str, Path, Path]]] = {}

    def candidates(self, event: Event) -> list[tuple[str, Path]]:
        """The folders to look in, the most specific first; InvalidNames refuses the event."""
        return [(level, folder) for level, folder, _ in self._candidates(event)]

    def _candidates(self, event: Event) -> list[tuple[str, Path, Path]]:
        # The Keptn names reach task environments (KEPTN_*), whatever the levels read.
        check_names(event.project, event.stage, event.service)
        values = tuple(self.levels.values(event))
        found = self._folders.get(values)
        if found is None:
            folders = [self.root.joinpath(*values[:depth]) for depth in range(len(values), -1, -1)]
            found = [(LEVEL_NAMES[len(values) - i], f, f / CONFIG_PATH) for i, f in enumerate(folders)]
            if len(self._folders) >= 4096:
                self._folders.clear()
            self._folders[values] = found
        return found

    async def resolve(self, event: Event) -> Resolved | None:
        levels = self._candidates(event)
        for index, (level, _, path) in enumerate(levels):
            try:
                found = os.stat(path)  # one call per level, for every event: no is_file() before it
            except OSError:
                continue
            if stat.S_ISREG(found.st_mode):
                roots = tuple(f for _, f, _ in levels[index:])
                return Resolved(self._load(path, found), level, local_files(roots))
        return None

    def _load(self, path: Path, found: os.stat_result) -> JobConfig:
        key = (found.st_mtime_ns, found.st_size)
        cached = self._cache.get(path)
        if cached is not None and cached[0] == key:
            return cached[1]
        config = read_config_file(str(path))  # raises ConfigError, reported by the pipeline
        self._cache[path] = (key, config)
        return config

    def describe(self, event: Event) -> str:
        try:
            candidates = self.candidates(event)
        except InvalidNames:
            candidates = []
        return ", ".join(str(folder / CONFIG_PATH) for _, folder in candidates) or "nowhere"


class FileResolver:
    """One config file for every event (`job-executor run --config`)."""

    def __init__(self, path: Path, files_root: Path) -> None:
        self.path = path
        self.files_root = files_root

    async def resolve(self, event: Event) -> Resolved | None:
        return Resolved(read_config_file(str(self.path)), "file", local_files((self.files_root,)))

    def describe(self, event: Event) -> str:
        return str(self.path)
