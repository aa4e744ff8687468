"""`job-executor serve` as README shows it: no settings, started from the user's own directory
(issue 13 item 3: the relative default STATE_DIR reached the task's wrapper, which runs in the
task's cwd, and every local task ended "without an exit code"), with or without a samples/ of
its own there."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from executor.settings import ENV_VARS
from tests.service.conftest import free_port

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def user_dir() -> Iterator[Path]:
    # Not under pytest's root-only tmp dir: tasks run as `nobody` when the suite runs as root.
    path = Path(tempfile.mkdtemp(prefix="jes-user-"))
    os.chmod(path, 0o711)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def no_settings(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS and k != "K_SINK"}
    return {**env, "PYTHONPATH": str(REPO), **extra}


async def test_serve_with_no_settings_runs_the_sample_event(user_dir: Path) -> None:
    shutil.copytree(REPO / "samples" / "resources", user_dir / "samples" / "resources")
    out = await serve_and_greet(user_dir)
    assert f"configs {user_dir / 'samples' / 'resources'})" in out  # its own, not the checkout's
    # Tuned once it started (executor/support/collector.py): 10-16% of its CPU otherwise.
    assert "start-up objects frozen; the young generation is collected every 10,000" in out


async def test_serve_with_no_settings_elsewhere_serves_the_samples_it_was_installed_with(
    user_dir: Path,
) -> None:
    # A directory with no samples/ of its own: the embedded default is the checkout's.
    out = await serve_and_greet(user_dir)
    assert f"configs {REPO / 'samples' / 'resources'})" in out


def test_a_config_dir_that_is_set_and_missing_is_refused_not_replaced(user_dir: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "executor", "serve"],
        cwd=user_dir,
        env=no_settings(CONFIG_DIR="no-such-tree", RCV_PORT=str(free_port())),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "CONFIG_DIR=no-such-tree is not a folder: set CONFIG_DIR (or --config-dir)" in done.stderr


async def serve_and_greet(user_dir: Path) -> str:
    """Start serve with no settings in `user_dir`, post the sample event, check its finished
    event; serve's output."""
    port = free_port()
    env = no_settings(RCV_PORT=str(port))
    out = user_dir / "stdout.log"
    with out.open("wb") as stdout:
        proc = subprocess.Popen(
            [sys.executable, "-m", "executor", "serve"],
            cwd=user_dir,
            env=env,
            stdout=stdout,
            stderr=subprocess.STDOUT,
        )
    try:
        event = (REPO / "samples" / "events" / "greeting.triggered.json").read_bytes()
        deadline = time.monotonic() + 30
        finished: dict[str, object] | None = None
        async with aiohttp.ClientSession() as session:
            posted = False
            while finished is None:
                assert time.monotonic() < deadline, out.read_text()
                assert proc.poll() is None, out.read_text()
                if not posted:
                    try:
                        async with session.post(
                            f"http://127.0.0.1:{port}/",
                            data=event,
                            headers={"Content-Type": "application/cloudevents+json"},
                        ) as response:
                            assert response.status == 202, await response.text()
                            posted = True
                    except aiohttp.ClientConnectionError:
                        pass
                for line in out.read_text().splitlines():
                    if line.startswith("{") and '"sh.keptn.event.greeting.finished"' in line:
                        finished = json.loads(line)
                await asyncio.sleep(0.1)
        data = finished["data"]
        assert isinstance(data, dict)
        assert data["status"] == "succeeded", data
        assert "Hello from sockshop/production/orders" in data["message"]
        assert (user_dir / ".job-executor" / "state.db").is_file()
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    return out.read_text()
