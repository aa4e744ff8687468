"""`job-executor init-files`: the init container's program, staging a task's files under /keptn.

Files arrive either from a ConfigMap mounted at JOB_FILES_DIR (keys f0000, f0001, ... in the
order of the JOB_FILES list) or, with the Keptn config source, from the resource service.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from executor.configmap_keys import configmap_key
from executor.paths import PathEscapeError, normalise_file_path


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


def run(env: Mapping[str, str], target_dir: Path) -> int:
    try:
        files = json.loads(env.get("JOB_FILES", "[]"))
        if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
            raise InitFilesError("JOB_FILES must be a JSON list of paths")
        source_dir = env.get("JOB_FILES_DIR")
        if not source_dir:
            raise InitFilesError(
                "JOB_FILES_DIR is not set: fetching files from the Keptn resource service is not "
                "available in this version; render jobs with --files-source configmap"
            )
        for path in stage_from_dir(files, Path(source_dir), target_dir):
            print(f"staged {path}")
    except (InitFilesError, ValueError, OSError) as exc:
        print(f"init-files: error: {exc}", file=sys.stderr)
        return 1
    return 0


def main() -> int:
    return run(os.environ, Path(os.environ.get("JOB_STAGING_DIR", "/keptn")))
