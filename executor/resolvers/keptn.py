"""Config resolver for the Keptn resource service: job/config.yaml at service, stage, project level.

The first level that has the file wins; a broken file there is reported (ConfigError), never
skipped for a lower level. The service and stage levels are read at the event's git commit (the
`gitcommitid` attribute, as Keptn sets it: a commit of the stage's branch) and otherwise at the
latest commit; the project level always at the latest commit of the project's branch (see
executor/keptn/files.py). An event whose project, stage or service is not a Keptn name is
refused (InvalidNames), never resolved at another level. CONFIG_LEVELS may take the three
names from other parts of the event; they must then be Keptn names too.

There is no root level here: the resource service keeps resources only per project (one git
repository each) and serves them at project, stage and service paths; it has no project-less
resource (keptn/keptn resource-service/main.go registers only the project, stage and service
resource controllers). An event that names no project finds no config in Keptn.

Cache: parsed configs (and the errors of broken ones) are kept by (level, project, stage,
service, commit) only when the event names a commit, since a commit's content never changes.
Without a commit the file is fetched every time, and parsing is skipped only when the fetched
bytes and the commit the resource service reports are the ones already parsed, so a config
is never served for a commit other than the one it was read at.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence

from executor.config.model import JobConfig
from executor.config.parse import parse_config
from executor.keptn.api import KeptnAPI
from executor.keptn.files import DEFAULT_LIMIT, Location, fetch_files
from executor.model.events import Event
from executor.model.problems import ConfigError, FilesError
from executor.resolvers.base import CONFIG_PATH, FetchFiles, InvalidNames, Levels, Resolved, check_names

_Key = tuple[str, str, str, str, str]


class KeptnResolver:
    def __init__(
        self,
        api: KeptnAPI,
        *,
        cache_size: int = 256,
        files_limit: int = DEFAULT_LIMIT,
        levels: Levels | None = None,
    ) -> None:
        self.api = api
        self.levels = levels or Levels()
        self.cache_size = cache_size
        self.files_limit = files_limit
        self._cache: OrderedDict[_Key, JobConfig | ConfigError] = OrderedDict()

    def location(self, event: Event) -> Location | None:
        """The event's project/stage/service/commit, or None when it names no project.
        InvalidNames when a name is not one Keptn accepts (never a fall back to another level)."""
        check_names(event.project, event.stage, event.service)
        values = self.levels.values(event)
        if not values:
            return None
        project, stage, service = (*values, "", "")[:3]
        check_names(project, stage, service)  # CONFIG_LEVELS may read them from elsewhere
        return Location(project, stage, service, event.git_commit_id.strip())

    async def resolve(self, event: Event) -> Resolved | None:
        where = self.location(event)
        if where is None:
            return None
        for level, stage, service in where.levels():
            commit = where.commit_at(level)  # the project level: its own branch, latest
            key: _Key = (level, where.project, stage, service, commit)
            if commit and key in self._cache:
                self._cache.move_to_end(key)
                return Resolved(_unwrap(self._cache[key]), level, self._fetcher(event))
            found = await self.api.get_resource(
                CONFIG_PATH, project=where.project, stage=stage, service=service, commit=commit
            )
            if found is None:
                continue
            if commit:
                config = self._parse(key, found.content, where, level, commit)
            else:
                digest = hashlib.sha256(found.content).hexdigest()
                version_key: _Key = (level, where.project, stage, service, f"{found.version}#{digest}")
                config = self._parse(version_key, found.content, where, level, found.version)
            return Resolved(config, level, self._fetcher(event))
        return None

    def _parse(self, key: _Key, content: bytes, where: Location, level: str, version: str) -> JobConfig:
        cached = self._cache.get(key)
        if cached is None:
            source = f"keptn:{where.name(level)}@{version or 'latest'}:{CONFIG_PATH}"
            try:
                cached = parse_config(content, source=source)
            except ConfigError as exc:
                cached = exc
            self._cache[key] = cached
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(key)
        return _unwrap(cached)

    def describe(self, event: Event) -> str:
        try:
            where = self.location(event)
        except InvalidNames:
            where = None
        if where is None:
            return "nowhere (the event names no valid project)"
        paths = [f"keptn:{where.name(level)}:{CONFIG_PATH}" for level, _, _ in where.levels()]
        at = f"at commit {where.commit}, the project level latest" if where.commit else "latest"
        return f"{', '.join(paths)} ({at}) in {self.api.endpoint}"

    def _fetcher(self, event: Event) -> FetchFiles:
        async def fetch(entries: Sequence[str]) -> dict[str, bytes]:
            return await self.fetch_files(entries, event)

        return fetch

    async def fetch_files(self, entries: Sequence[str], event: Event) -> dict[str, bytes]:
        """The task's files (folders expanded) at the event's commit; FilesError when one is missing."""
        where = self.location(event)
        if where is None:
            raise FilesError("the event names no valid project, so no files can be fetched from Keptn")
        return await fetch_files(self.api, entries, where, limit=self.files_limit)


def _unwrap(cached: JobConfig | ConfigError) -> JobConfig:
    if isinstance(cached, ConfigError):
        raise ConfigError(list(cached.problems))
    return cached
