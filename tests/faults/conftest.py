"""The service's real-process fixtures (a sink, `serve` in a subprocess) for the fault suite, and
the fake Kubernetes API server as a process of its own, so that it outlives a killed `serve`."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.service.conftest import serve_factory, sink

__all__ = ["FakeKubeProcess", "fake_kube", "serve_factory", "sink"]

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class FakeKubeProcess:
    url: str
    kubeconfig: Path

    def control(self, action: str) -> Any:
        """GET /_fake/<action> (stats, job_arrivals) as JSON."""
        with urllib.request.urlopen(f"{self.url}/_fake/{action}", timeout=10) as response:
            return json.loads(response.read())


@pytest.fixture
def fake_kube(tmp_path: Path) -> Iterator[FakeKubeProcess]:
    """`python -m tests.kubeapi.server` (as bench/ starts it): Jobs run at once and end by
    themselves 0.3 to 0.6 s later, each logging "output of <its name>"."""
    kubeconfig = tmp_path / "kubeconfig"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.kubeapi.server",
            "--port",
            "0",
            "--auto-complete-delay",
            "0.3,0.6",
            "--auto-complete-log",
            "output of {job}\n",
            "--kubeconfig",
            str(kubeconfig),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=(tmp_path / "fake-kube.log").open("wb"),
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().decode().strip()  # its first line, once it listens
        if not url.startswith("http"):
            raise AssertionError(
                f"the fake API server did not start: {(tmp_path / 'fake-kube.log').read_text()}"
            )
        yield FakeKubeProcess(url, kubeconfig)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
