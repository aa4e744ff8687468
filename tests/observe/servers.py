"""A `job-executor serve` process for synchronous tests (schemathesis, selenium), with a config
whose task prints a line, and helpers to post events and read the API."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.service.conftest import PROJECT, SERVICE, STAGE, free_port, make_event, write_config

CONFIG = """\
apiVersion: v2
actions:
  - name: "Test"
    events: [{name: "sh.keptn.event.test.triggered"}]
    tasks:
      - name: "Greet"
        image: "alpine"
        cmd: ["sh", "-c", "echo hello from the run page; sleep SLEEP"]
"""


class SyncServe:
    def __init__(self, tmp: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.token = env.get("RCV_AUTH_TOKEN", "")
        self.log = tmp / "serve.log"
        self.env = {
            **os.environ,
            "RCV_PORT": str(self.port),
            "STATE_DIR": str(tmp / "state"),
            "CONFIG_DIR": str(tmp / "resources"),
            "K_SINK": "",
            "LOCAL_RUN_AS_USER": "",
            **env,
        }
        # The task sleeps this long after its line (a task's env holds only what its config
        # declares, so the service's environment cannot carry it).
        write_config(tmp, CONFIG.replace("SLEEP", env.get("SLEEP", "0")))
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "executor", "serve"], env=self.env, stdout=log, stderr=log
            )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()
            try:
                with urllib.request.urlopen(f"{self.base}/readyz", timeout=2):
                    return
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
        raise AssertionError(f"serve did not become ready:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def post_event(self, event_id: str) -> None:
        body = json.dumps(make_event(event_id=event_id)).encode()
        request = urllib.request.Request(
            self.base + "/",
            data=body,
            headers={"Content-Type": "application/cloudevents+json", **self.headers()},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 202

    def get(self, path: str) -> Any:
        request = urllib.request.Request(self.base + path, headers=self.headers())
        with urllib.request.urlopen(request, timeout=10) as response:
            text = response.read().decode()
            return json.loads(text) if response.headers.get_content_type() == "application/json" else text

    def wait_run(self, status: str = "succeeded", timeout: float = 30) -> dict[str, Any]:
        """Until a run reaches `status`; its summary."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            runs = self.get(f"/api/v1/runs?status={status}")["runs"]
            if runs:
                return dict(runs[0])
            time.sleep(0.1)
        raise AssertionError(f"no run became {status}: {self.get('/api/v1/runs')}\n{self.log.read_text()}")


@contextmanager
def serving(tmp: Path, env: dict[str, str] | None = None) -> Iterator[SyncServe]:
    serve = SyncServe(tmp, env or {})
    serve.start()
    try:
        yield serve
    finally:
        serve.stop()


__all__ = ["PROJECT", "SERVICE", "STAGE", "SyncServe", "serving"]
