"""`job-executor init-files`: the init container's program, staging a task's files under /keptn.

Files arrive either from a ConfigMap mounted at JOB_FILES_DIR (keys f0000, f0001, ... in the
order of the JOB_FILES list) or, when JOB_FILES_DIR is unset, from the Keptn resource service:
KEPTN_API_ENDPOINT (the API endpoint, e.g. http://keptn/api: the service's own setting's name, as
README says), KEPTN_API_TOKEN, KEPTN_PROJECT, KEPTN_STAGE, KEPTN_SERVICE and GIT_COMMIT_ID (empty:
latest) say where. KEPTN_API_URL, the name of JES's init container
(keptn-contrib/job-executor-service cmd/job-executor-service-initcontainer/main.go) and of Jobs
rendered by earlier versions, is still read when KEPTN_API_ENDPOINT is unset.
A folder in JOB_FILES stages every file below it; paths keep their place under the target.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from executor.backends.kubernetes.staging import configmap_key
from executor.config.paths import PathEscapeError, normalise_file_path
from executor.keptn.api import KeptnAPI, KeptnError
from executor.keptn.files import Location, fetch_files
from executor.model.problems import FilesError


class InitFilesError(RuntimeError):
    pass


def stage_from_dir(files: list[str], source_dir: Path, target_dir: Path) -> list[Path]:
    written = []
    for index, raw in enumerate(files):
        try:
            relative = normalise_file_path(raw)
        except PathEscapeError as exc:
            raise InitFilesError(str(exc)) from None
        source = source_dir / configmap_key(index)
        if not source.is_file():
            raise InitFilesError(f"file {relative!r} is missing from {source_dir} (key {source.name})")
        target = target_dir / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(source.read_bytes())
        written.append(target)
    return written


async def stage_from_keptn(
    files: list[str], env: Mapping[str, str], target_dir: Path, *, retries: int = 3
) -> list[Path]:
    """Fetch the files (folders expanded) from the Keptn resource service and write them."""
    url = (env.get("KEPTN_API_ENDPOINT", "") or env.get("KEPTN_API_URL", "")).strip()
    if not url:
        raise InitFilesError(
            "JOB_FILES_DIR is not set and KEPTN_API_ENDPOINT is not set: give JOB_FILES_DIR (files from "
            "a ConfigMap) or KEPTN_API_ENDPOINT, KEPTN_API_TOKEN and KEPTN_PROJECT/STAGE/SERVICE (files from "
            "the Keptn resource service)"
        )
    project = env.get("KEPTN_PROJECT", "").strip()
    if not project:
        raise InitFilesError("KEPTN_PROJECT is not set: the init container cannot tell where the files are")
    where = Location(
        project,
        env.get("KEPTN_STAGE", "").strip(),
        env.get("KEPTN_SERVICE", "").strip() if env.get("KEPTN_STAGE", "").strip() else "",
        env.get("GIT_COMMIT_ID", "").strip(),
    )
    if not files:
        return []
    try:
        async with KeptnAPI(url, env.get("KEPTN_API_TOKEN", ""), retries=retries) as api:
            fetched = await fetch_files(api, files, where)
    except (FilesError, KeptnError) as exc:
        raise InitFilesError(str(exc)) from None
    written = []
    for relative, content in fetched.items():
        target = target_dir / relative  # relative was normalised: it stays inside target_dir
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        written.append(target)
    return written


def run(env: Mapping[str, str], target_dir: Path) -> int:
    try:
        files = json.loads(env.get("JOB_FILES", "[]"))
        if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
            raise InitFilesError("JOB_FILES must be a JSON list of paths")
        source_dir = env.get("JOB_FILES_DIR")
        if source_dir:
            written = stage_from_dir(files, Path(source_dir), target_dir)
        else:
            written = asyncio.run(stage_from_keptn(files, env, target_dir))
        for path in written:
            print(f"staged {path}")
    except (InitFilesError, ValueError, OSError) as exc:
        print(f"init-files: error: {exc}", file=sys.stderr)
        return 1
    return 0


def main() -> int:
    return run(os.environ, Path(os.environ.get("JOB_STAGING_DIR", "/keptn")))
