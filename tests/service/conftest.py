"""Real processes for end-to-end tests: `job-executor serve` as a subprocess, and an HTTP sink
(a real aiohttp server in the test's loop) that records the events it is sent."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import aiohttp
import pytest
from aiohttp import web

PROJECT, STAGE, SERVICE = "shop", "dev", "cart"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EventSink:
    """Receives started/finished events like a Keptn receiver would (structured mode POSTs); the
    one HTTP collector of the suites that run `serve` (tests/receivers/harness.py uses it too)."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.fail_next = 0  # answer fail_status to this many requests first (outbox retry tests)
        self.fail_status = 503
        self.fail_type = ""  # when set, only reports whose type ends with it count against fail_next
        self.fail_each = 0  # answer fail_status to the first this many attempts of every report
        self._attempts: collections.Counter[str] = collections.Counter()
        self.refused: list[dict[str, Any]] = []  # what was answered fail_status, in order
        self.refuse_ids: set[str] = set()  # answer 400 to these events, always
        self._changed = asyncio.Event()
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/", self._receive)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}/"

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()

    async def _receive(self, request: web.Request) -> web.Response:
        assert request.content_type == "application/cloudevents+json"
        event = json.loads(await request.read())
        self._attempts[str(event.get("id"))] += 1
        if self._attempts[str(event.get("id"))] <= self.fail_each or (
            self.fail_next > 0 and str(event.get("type", "")).endswith(self.fail_type)
        ):
            self.fail_next = max(0, self.fail_next - 1)
            self.refused.append(event)
            self._changed.set()
            return web.Response(status=self.fail_status, text="not now")
        if event["id"] in self.refuse_ids:
            return web.Response(status=400, text="no thanks")
        self.events.append(event)
        self._changed.set()
        return web.Response(status=200)

    def of_type(self, suffix: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"].endswith(suffix)]

    async def wait_for(self, suffix: str, count: int = 1, timeout: float = 20.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.of_type(suffix)) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"waited {timeout}s for {count} {suffix} event(s); got {self.events}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout=min(remaining, 0.5))
        return self.of_type(suffix)

    async def wait_until(
        self, check: Callable[[dict[str, Any]], bool], timeout: float = 15.0
    ) -> dict[str, Any]:
        """The first event received that passes `check`."""
        deadline = time.monotonic() + timeout
        while not (found := [e for e in self.events if check(e)]):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no reported event matched within {timeout}s; got {self.events}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout=min(remaining, 0.5))
        return found[0]


class Serve:
    """`job-executor serve` in a subprocess, with its own state dir and config tree."""

    # Every one started, so a test that fails half-way cannot leave a service running.
    started: ClassVar[list[Serve]] = []

    def __init__(self, tmp: Path, sink_url: str, env: dict[str, str] | None = None) -> None:
        self.tmp = tmp
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.env = {
            **os.environ,
            "RCV_PORT": str(self.port),
            "STATE_DIR": str(tmp / "state"),
            "CONFIG_DIR": str(tmp / "resources"),
            "K_SINK": sink_url,
            "SHUTDOWN_GRACE_SECONDS": "5",
            # Tasks write into the test's tmp dir (root-only when the suite runs as root);
            # the isolation tests set a user of their own.
            "LOCAL_RUN_AS_USER": "",
            **(env or {}),
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = tmp / "serve.log"

    async def start(self, ready: bool = True) -> None:
        """Start serve and wait until /readyz says ready (or, with ready=False, /healthz answers)."""
        Serve.started.append(self)
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "executor", "serve", "--log-level", "DEBUG"],
                env=self.env,
                stdout=log,
                stderr=log,
            )
        deadline = time.monotonic() + 20
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise AssertionError(f"serve exited early:\n{self.log.read_text()}")
                try:
                    async with session.get(self.url + ("readyz" if ready else "healthz")) as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        raise AssertionError(f"serve did not become ready:\n{self.log.read_text()}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    async def wait_exit(self, timeout: float = 15) -> int:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                raise AssertionError("serve did not exit in time")
            await asyncio.sleep(0.05)
        return int(self.proc.returncode)

    async def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                await self.wait_exit()
            except AssertionError:
                self.proc.kill()
                self.proc.wait()

    async def post(
        self, body: Any, headers: dict[str, str] | None = None, raw: bytes | None = None
    ) -> tuple[int, Any]:
        data = raw if raw is not None else json.dumps(body).encode()
        hdrs = {"Content-Type": "application/cloudevents+json", **(headers or {})}
        async with (
            aiohttp.ClientSession() as session,
            session.post(self.url, data=data, headers=hdrs) as response,
        ):
            text = await response.text()
            try:
                return response.status, json.loads(text)
            except ValueError:
                return response.status, text


def write_config(tmp: Path, text: str, level: tuple[str, ...] = (PROJECT, STAGE, SERVICE)) -> Path:
    folder = tmp / "resources" / Path(*level) / "job"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.yaml"
    path.write_text(text)
    return path


def make_event(
    event_type: str = "sh.keptn.event.test.triggered", event_id: str = "", **data: Any
) -> dict[str, Any]:
    body = {"project": PROJECT, "stage": STAGE, "service": SERVICE, "labels": {"build-id": "b7"}}
    body.update(data)
    return {
        "specversion": "1.0",
        "id": event_id or os.urandom(8).hex(),
        "source": "tests",
        "type": event_type,
        "shkeptncontext": "ctx-1",
        "datacontenttype": "application/json",
        "data": body,
    }


@pytest.fixture
async def sink() -> AsyncIterator[EventSink]:
    server = EventSink()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def serve_factory(tmp_path: Path, sink: EventSink) -> Iterator[Any]:
    started: list[Serve] = []

    def make(env: dict[str, str] | None = None) -> Serve:
        serve = Serve(tmp_path, sink.url, env)
        started.append(serve)
        return serve

    yield make
    for serve in started:
        serve.kill()
