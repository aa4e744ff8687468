"""Helpers for the receiver tests: a real `job-executor serve` process driven only through its public surfaces.

Each module starts one service (its own STATE_DIR, CONFIG_DIR and log, on a free port) and a
collector (tests/service/conftest.py EventSink) that it names as K_SINK. The config tree routes every event whose data
carries `project: rcv` (any type) to a task that writes the whole event it saw (`$`, as JSON)
into a file of its own in `runs/`: one file per run, so "ran exactly once" and "what did the
receiver decode" are both observable from outside, whatever the executor package looks like.
A second project, `block`, runs a task that waits for a release file (for queue-full tests).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiohttp

from tests.service.conftest import EventSink, free_port

REPO = Path(__file__).resolve().parents[2]
PROJECT, STAGE, SERVICE = "rcv", "dev", "svc"
ROUTING = {"project": PROJECT, "stage": STAGE, "service": SERVICE}
STRUCTURED = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"

RECORD_CONFIG = """\
apiVersion: v2
actions:
  - name: "Record"
    events:
      - name: "*"
    tasks:
      - name: "record"
        image: "alpine:3.20"
        cmd: ["{python}", "-c", "{script}", "{runs}"]
        env:
          - name: EVENT
            value: "$"
            valueFrom: event
            as: json
"""
# One file per run, named at random: concurrent runs never share a file.
RECORD_SCRIPT = (
    "import os, sys, uuid; "
    "open(os.path.join(sys.argv[1], uuid.uuid4().hex + '.json'), 'w').write(os.environ['EVENT'])"
)

BLOCK_CONFIG = """\
apiVersion: v2
actions:
  - name: "Block"
    events:
      - name: "*"
    tasks:
      - name: "block"
        image: "alpine:3.20"
        cmd: ["{python}", "-c", "{script}", "{gate}"]
"""
# Says it started, then waits (at most 30 s) for the gate file.
BLOCK_SCRIPT = (
    "import os, sys, time; g = sys.argv[1]; open(g + '.started.' + str(os.getpid()), 'w').close(); "
    "[time.sleep(0.05) for _ in range(600) if not os.path.exists(g)]"
)


def unique(prefix: str = "evt") -> str:
    return f"{prefix}-{os.urandom(6).hex()}"


def keptn_event(
    event_id: str = "", event_type: str = "sh.keptn.event.test.triggered", **data: Any
) -> dict[str, Any]:
    """A structured event that the config tree routes to the recording task."""
    return {
        "specversion": "1.0",
        "id": event_id or unique(),
        "source": "tests/receivers",
        "type": event_type,
        "shkeptncontext": "ctx-rcv",
        "datacontenttype": "application/json",
        "data": {**ROUTING, **data},
    }


def binary_headers(event: Mapping[str, Any], content_type: str = "application/json") -> dict[str, str]:
    """Binary-mode headers of a structured event (plain ASCII values only)."""
    headers = {
        f"ce-{k}": str(v).lower() if isinstance(v, bool) else str(v)
        for k, v in event.items()
        if k not in ("data", "data_base64", "datacontenttype") and v is not None
    }
    headers["Content-Type"] = content_type
    return headers


def names_attribute(text: str, name: str) -> bool:
    """The error text names the attribute as a word of its own (`id` inside `invalid` does not count)."""
    pattern = rf"(?<![A-Za-z0-9_.]){re.escape(name)}(?![A-Za-z0-9_])"
    return re.search(pattern, text) is not None


class Service:
    """`python -m executor serve` from this worktree, in a subprocess."""

    def __init__(self, tmp: Path, sink_url: str, env: Mapping[str, str] | None = None) -> None:
        self.tmp = tmp
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.url = self.base + "/"
        self.runs = tmp / "runs"
        self.runs.mkdir(parents=True, exist_ok=True)
        self.gate = tmp / "gate"
        self.log = tmp / "serve.log"
        resources = tmp / "resources"
        for project, text in (
            (PROJECT, RECORD_CONFIG.format(python=sys.executable, script=RECORD_SCRIPT, runs=self.runs)),
            ("block", BLOCK_CONFIG.format(python=sys.executable, script=BLOCK_SCRIPT, gate=self.gate)),
        ):
            folder = resources / project / "job"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "config.yaml").write_text(text)
        base_env = {k: v for k, v in os.environ.items() if not k.startswith(("RCV_", "NATS_", "WEBHOOK_"))}
        self.env = {
            **base_env,
            "PYTHONPATH": str(REPO),
            "RCV_HOST": "127.0.0.1",
            "RCV_PORT": str(self.port),
            "STATE_DIR": str(tmp / "state"),
            "CONFIG_DIR": str(resources),
            "K_SINK": sink_url,
            "SHUTDOWN_GRACE_SECONDS": "5",
            "MAX_CONCURRENT_RUNS": "8",
            # The recording task runs this interpreter (under /root when tests run as root) and
            # writes into the test's folder: as the service's own user, not LOCAL_RUN_AS_USER's.
            "LOCAL_RUN_AS_USER": "",
            **(env or {}),
        }
        self.proc: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "executor", "serve", "--log-level", "DEBUG"],
                env=self.env,
                stdout=log,
                stderr=log,
                cwd=self.tmp,
            )
        deadline = time.monotonic() + 30
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise AssertionError(f"serve exited early:\n{self.log.read_text()}")
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.get(self.base + "/readyz") as response:
                        if response.status == 200:
                            return
                await asyncio.sleep(0.1)
        raise AssertionError(f"serve did not become ready:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    # ---- HTTP ----
    async def request(
        self, method: str, path: str = "/", body: bytes = b"", headers: Mapping[str, str] | None = None
    ) -> tuple[int, Mapping[str, str], str]:
        timeout = aiohttp.ClientTimeout(total=15)
        async with (
            aiohttp.ClientSession(timeout=timeout, skip_auto_headers=("Content-Type",)) as session,
            session.request(method, self.base + path, data=body, headers=dict(headers or {})) as response,
        ):
            return response.status, dict(response.headers), await response.text()

    async def post(self, body: bytes | Any, headers: Mapping[str, str] | None = None) -> tuple[int, str]:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        hdrs = dict(headers or {"Content-Type": STRUCTURED})
        status, _, text = await self.request("POST", "/", raw, hdrs)
        return status, text

    async def metrics(self) -> dict[str, float]:
        status, _, text = await self.request("GET", "/metrics")
        assert status == 200
        values: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                values[name] = float(value)
        return values

    # ---- runs ----
    def runs_of(self, event_id: str) -> list[dict[str, Any]]:
        found = []
        for path in self.runs.glob("*.json"):
            with contextlib.suppress(ValueError, OSError):
                event = json.loads(path.read_text())
                if event.get("id") == event_id:
                    found.append(event)
        return found

    async def wait_run(self, event_id: str, timeout: float = 15.0) -> dict[str, Any]:
        """The one run of this event; fails if it never runs or runs twice."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            runs = self.runs_of(event_id)
            if runs:
                assert len(runs) == 1, f"event {event_id} ran {len(runs)} times"
                return runs[0]
            await asyncio.sleep(0.05)
        raise AssertionError(f"event {event_id} did not run within {timeout}s\n{self.log_text()[-3000:]}")

    async def wait_log(self, text: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log_text():
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"{text!r} never appeared in the service log")


async def start_service(tmp: Path, env: Mapping[str, str] | None = None) -> tuple[Service, EventSink]:
    collector = EventSink()
    await collector.start()
    service = Service(tmp, collector.url, env)
    try:
        await service.start()
    except BaseException:
        service.stop()
        await collector.stop()
        raise
    return service, collector


def metric(values: Mapping[str, float], name: str, **labels: str) -> float:
    """One sample of /metrics (0 when absent); labels are matched whatever their order."""
    for key, value in values.items():
        base, _, rest = key.partition("{")
        if base != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', rest))
        if found == labels:
            return value
    return 0.0
