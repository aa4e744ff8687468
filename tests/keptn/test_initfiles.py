"""`job-executor init-files` in its Keptn mode (JOB_FILES_DIR unset), against the fake API."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from executor.backends.kubernetes import initfiles
from tests.keptn.conftest import PROJECT, SERVICE, STAGE
from tests.keptn.fake_keptn import FakeKeptn


def env_for(keptn: FakeKeptn, files: list[str], commit: str = "", token: str | None = None) -> dict[str, str]:
    return {
        "KEPTN_API_ENDPOINT": keptn.url,
        "KEPTN_API_TOKEN": keptn.token if token is None else token,
        "KEPTN_PROJECT": PROJECT,
        "KEPTN_STAGE": STAGE,
        "KEPTN_SERVICE": SERVICE,
        "JOB_ACTION": "run",
        "JOB_TASK": "task",
        "GIT_COMMIT_ID": commit,
        "JOB_FILES": json.dumps(files),
    }


async def test_fetches_files_and_folders_keeping_paths(keptn: FakeKeptn, tmp_path: Path) -> None:
    keptn.put(PROJECT, "locust/basic.py", "basic", stage=STAGE, service=SERVICE)
    keptn.put(PROJECT, "locust/conf/locust.conf", "conf", stage=STAGE, service=SERVICE)
    commit = keptn.put(PROJECT, "/data/users.csv", "u", stage=STAGE)
    keptn.put(PROJECT, "locust/later.py", "not at the commit", stage=STAGE, service=SERVICE)
    target = tmp_path / "keptn"
    # run() owns an event loop (asyncio.run): call it from a thread while the fake serves here.
    code = await asyncio.to_thread(
        initfiles.run, env_for(keptn, ["locust", "data/users.csv"], commit), target
    )
    assert code == 0
    staged = sorted(p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file())
    assert staged == ["data/users.csv", "locust/basic.py", "locust/conf/locust.conf"]
    assert (target / "locust" / "conf" / "locust.conf").read_text() == "conf"
    # The stage's commit for the stage and service levels; the project branch at its latest.
    assert all(
        r.query.get("gitCommitID") == (commit if "/stage/" in r.path else None) for r in keptn.requests
    )


async def test_a_missing_file_fails_clearly(keptn: FakeKeptn, tmp_path: Path) -> None:
    keptn.put(PROJECT, "locust/basic.py", "basic", stage=STAGE, service=SERVICE)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "executor",
        "init-files",
        env={
            **os.environ,
            **env_for(keptn, ["locust/basic.py", "locust/missing.py"]),
            "JOB_STAGING_DIR": str(tmp_path),
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert proc.returncode == 1, out
    assert err.decode().strip() == (
        f"init-files: error: file 'locust/missing.py' not found in the Keptn resource service at {keptn.url} "
        f"(looked at service {SERVICE}, stage {STAGE}, project {PROJECT} (latest))"
    )
    assert not (tmp_path / "locust").exists()  # nothing half-staged


async def test_a_refused_token_and_escaping_paths_fail(
    keptn: FakeKeptn, tmp_path: Path, capsys: object
) -> None:
    code = await asyncio.to_thread(
        initfiles.run, env_for(keptn, ["a.txt"], token="bad-token-value-42"), tmp_path
    )
    assert code == 1
    code = await asyncio.to_thread(initfiles.run, env_for(keptn, ["../../etc/passwd"]), tmp_path)
    assert code == 1
    err = capsys.readouterr().err  # type: ignore[attr-defined]
    assert f"KEPTN_API_TOKEN was refused by {keptn.url}: check the token" in err
    assert "escapes the resource tree" in err
    assert "bad-token-value-42" not in err
    assert len(keptn.requests) == 1  # the escaping path was refused before any request


def test_without_a_source_it_says_what_to_set(tmp_path: Path, capsys: object) -> None:
    assert initfiles.run({"JOB_FILES": '["a"]'}, tmp_path) == 1
    err = capsys.readouterr().err  # type: ignore[attr-defined]
    assert "JOB_FILES_DIR is not set and KEPTN_API_ENDPOINT is not set" in err
    assert initfiles.run({"JOB_FILES": '["a"]', "KEPTN_API_ENDPOINT": "http://x/api"}, tmp_path) == 1
    assert "KEPTN_PROJECT is not set" in capsys.readouterr().err  # type: ignore[attr-defined]
