"""Files of a task (`files:` entries) fetched from the Keptn resource service.

An entry is a file or a folder. A file is looked up at the service, then the stage, then the
project level (the precedence of job/config.yaml); a folder is every resource whose URI starts
with `<folder>/` in the listing of the first level that has any (JES listed the service level
only: keptn-contrib/job-executor-service ``pkg/keptn/resource_service.go``
``GetAllKeptnResources``). The service and stage levels are read at the event's git commit
when it has one; the project level always at its latest commit, since in Keptn the commit id
belongs to the stage's branch and the project level lives on the project's own branch, where
that commit does not exist (JES reads it without ``gitCommitID`` for this reason:
keptn-contrib/job-executor-service ``pkg/config/reader.go``).
Paths are normalised and checked with executor.config.paths, so nothing lands outside the tree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from executor.config.paths import PathEscapeError, normalise_file_path
from executor.keptn.api import KeptnAPI
from executor.keptn.models import Resource
from executor.model.problems import FilesError

DEFAULT_LIMIT = 64 * 1024 * 1024


@dataclass(frozen=True)
class Location:
    """Where an event's resources live: project, stage and service at a commit ("" = latest)."""

    project: str
    stage: str = ""
    service: str = ""
    commit: str = ""

    def levels(self) -> list[tuple[str, str, str]]:
        """(level, stage, service) from the most specific level to the project."""
        out: list[tuple[str, str, str]] = []
        if self.stage and self.service:
            out.append(("service", self.stage, self.service))
        if self.stage:
            out.append(("stage", self.stage, ""))
        out.append(("project", "", ""))
        return out

    def commit_at(self, level: str) -> str:
        """The commit to read a level at: the event's for its stage and service, none (the
        latest) for the project, whose branch does not hold the stage's commits."""
        return "" if level == "project" else self.commit

    def name(self, level: str) -> str:
        """`sockshop/dev/carts` for the service level, `sockshop/dev` for the stage level."""
        if level == "service":
            return f"{self.project}/{self.stage}/{self.service}"
        if level == "stage":
            return f"{self.project}/{self.stage}"
        return self.project

    def describe(self) -> str:
        parts = []
        for level, stage, service in self.levels():
            parts.append(f"{level} {service or stage or self.project}")
        where = ", ".join(parts)
        if not self.commit:
            return f"{where} (latest)"
        if self.stage:
            return f"{where} at commit {self.commit} (the project level at its latest)"
        return f"{where} (latest)"


async def fetch_files(
    api: KeptnAPI,
    entries: Sequence[str],
    where: Location,
    *,
    limit: int = DEFAULT_LIMIT,
) -> dict[str, bytes]:
    """Relative path -> content for every entry; FilesError names a missing file and where we looked."""
    out: dict[str, bytes] = {}
    total = 0

    def add(path: str, content: bytes) -> None:
        nonlocal total
        if path in out:
            return
        total += len(content)
        if total > limit:
            raise FilesError(f"files of the task add up to more than {limit} bytes")
        out[path] = content

    for raw in entries:
        entry = _normal(raw)
        found = await _one_file(api, entry, where)
        if found is not None:
            add(entry, found.content)
            continue
        folder = await _folder(api, entry, where)
        if folder is None:
            raise FilesError(
                f"file {entry!r} not found in the Keptn resource service at {api.endpoint} "
                f"(looked at {where.describe()})"
            )
        for path, content in folder:
            add(path, content)
    return out


async def _one_file(api: KeptnAPI, entry: str, where: Location) -> Resource | None:
    for level, stage, service in where.levels():
        found = await api.get_resource(
            entry, project=where.project, stage=stage, service=service, commit=where.commit_at(level)
        )
        if found is not None:
            return found
    return None


async def _folder(api: KeptnAPI, entry: str, where: Location) -> list[tuple[str, bytes]] | None:
    prefix = entry.rstrip("/") + "/"
    for level, stage, service in where.levels():
        commit = where.commit_at(level)
        uris = await api.list_resources(project=where.project, stage=stage, service=service, commit=commit)
        inside = sorted({_normal(u) for u in uris or [] if u.lstrip("/").startswith(prefix)})
        if not inside:
            continue
        files = []
        for uri in inside:
            found = await api.get_resource(
                uri, project=where.project, stage=stage, service=service, commit=commit
            )
            if found is None:
                raise FilesError(
                    f"file {uri!r} (in folder {entry!r}) was listed by the Keptn resource service "
                    f"but could not be read (at {where.describe()})"
                )
            files.append((uri, found.content))
        return files
    return None


def _normal(raw: str) -> str:
    try:
        return normalise_file_path(raw)
    except PathEscapeError as exc:
        raise FilesError(str(exc)) from None
