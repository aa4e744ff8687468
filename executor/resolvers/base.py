"""Config resolver: which job/config.yaml applies to an event (service, then stage, then project).

A broken file at a level is reported, never skipped for a lower-precedence one: silently
running the project's config because the service's has a typo would run the wrong jobs.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from executor.config.model import JobConfig
from executor.config.parse import read_config_file
from executor.model.events import Event
from executor.resolvers.files import collect_files

CONFIG_PATH = "job/config.yaml"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


FetchFiles = Callable[[Sequence[str]], Awaitable[dict[str, bytes]]]


@dataclass(frozen=True)
class Resolved:
    config: JobConfig
    level: str  # service | stage | project | file
    # The `files:` of a task, read from where the config came from (folders expanded).
    fetch_files: FetchFiles


def local_files(roots: Sequence[Path]) -> FetchFiles:
    """Files from a local tree: looked up in each root in turn (service, stage, project)."""

    async def fetch(entries: Sequence[str]) -> dict[str, bytes]:
        return collect_files(entries, roots)

    return fetch


class Resolver(Protocol):
    async def resolve(self, event: Event) -> Resolved | None: ...

    def describe(self, event: Event) -> str:
        """Where configs for this event were looked for, for messages."""
        ...


class LocalTreeResolver:
    """Configs in a directory laid out like the Keptn resource tree:

    <root>/<project>/job/config.yaml, <root>/<project>/<stage>/job/config.yaml and
    <root>/<project>/<stage>/<service>/job/config.yaml.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self._cache: dict[Path, tuple[tuple[int, int], JobConfig]] = {}

    def candidates(self, event: Event) -> list[tuple[str, Path]]:
        project, stage, service = event.project, event.stage, event.service
        if not safe_name(project):
            return []
        levels: list[tuple[str, Path]] = []
        if safe_name(stage) and safe_name(service):
            levels.append(("service", self.root / project / stage / service))
        if safe_name(stage):
            levels.append(("stage", self.root / project / stage))
        levels.append(("project", self.root / project))
        return levels

    async def resolve(self, event: Event) -> Resolved | None:
        levels = self.candidates(event)
        for index, (level, folder) in enumerate(levels):
            path = folder / CONFIG_PATH
            if path.is_file():
                roots = tuple(f for _, f in levels[index:])
                return Resolved(self._load(path), level, local_files(roots))
        return None

    def _load(self, path: Path) -> JobConfig:
        stat = path.stat()
        key = (stat.st_mtime_ns, stat.st_size)
        cached = self._cache.get(path)
        if cached is not None and cached[0] == key:
            return cached[1]
        config = read_config_file(str(path))  # raises ConfigError, reported by the pipeline
        self._cache[path] = (key, config)
        return config

    def describe(self, event: Event) -> str:
        return ", ".join(str(folder / CONFIG_PATH) for _, folder in self.candidates(event)) or "nowhere"


class FileResolver:
    """One config file for every event (`job-executor run --config`)."""

    def __init__(self, path: Path, files_root: Path) -> None:
        self.path = path
        self.files_root = files_root

    async def resolve(self, event: Event) -> Resolved | None:
        return Resolved(read_config_file(str(self.path)), "file", local_files((self.files_root,)))

    def describe(self, event: Event) -> str:
        return str(self.path)


def safe_name(name: str) -> bool:
    """A project, stage or service name that can be a path segment (no '/', no '..')."""
    return bool(_NAME.match(name)) and name not in (".", "..")
