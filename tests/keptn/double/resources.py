"""The resource-service's git model: one branch per stage plus the project's own branch.

keptn/keptn ``resource-service/handler/resource_manager.go`` (``establishContext``): a request
without a stage checks out the project's default branch, a request with a stage checks out the
branch named after the stage; services are directories on their stage's branch. With
``gitCommitID`` the file is read at that revision (``readResource``/``GetFileRevision``); without
it, at the branch head. A commit id is looked up on the branch of the requested level only, so a
stage's commit id asked for at project level is not found (404), which is why JES reads the
project level without ``gitCommitID`` (keptn-contrib/job-executor-service ``pkg/config/reader.go``;
project issue 11 item 8). Stage branches start empty here (Keptn forks them from the default
branch when the project is created); tests put what each level needs.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

PROJECT_BRANCH = "main"
_File = tuple[str, str]  # (service or "", uri)


@dataclass
class Branch:
    commits: list[tuple[str, dict[_File, bytes]]] = field(default_factory=list)

    def head(self) -> str:
        return self.commits[-1][0] if self.commits else ""

    def at(self, commit: str) -> dict[_File, bytes] | None:
        if not commit:
            return self.commits[-1][1] if self.commits else {}
        return next((files for commit_id, files in self.commits if commit_id == commit), None)


@dataclass
class Project:
    name: str
    stages: dict[str, set[str]]
    branches: dict[str, Branch] = field(default_factory=dict)
    _count: int = 0

    def __post_init__(self) -> None:
        self.branches = {PROJECT_BRANCH: Branch(), **{stage: Branch() for stage in self.stages}}

    def commit(self, branch_name: str, changes: dict[_File, bytes | None]) -> str:
        branch = self.branches[branch_name]
        files = dict(branch.commits[-1][1]) if branch.commits else {}
        for key, data in changes.items():
            if data is None:
                files.pop(key, None)
            else:
                files[key] = data
        self._count += 1
        commit_id = hashlib.sha1(f"{self.name}-{branch_name}-{self._count}".encode()).hexdigest()
        branch.commits.append((commit_id, files))
        return commit_id

    def head(self, stage: str = "") -> str:
        branch = self.branches.get(stage or PROJECT_BRANCH)
        return branch.head() if branch is not None else ""
