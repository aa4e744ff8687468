"""The fault suite's fixtures: the one-task config with `serve` processes on it, an HTTP sink,
and the fake Kubernetes API server as a process of its own, so that it outlives a killed `serve`.

tests/faults and tests/clusters/test_takeover.py share them; the checks every fault test makes
after its restart are in `check_reports`.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import subprocess
import sys
import urllib.request
from collections import Counter
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from executor.support.crashpoints import CRASH_ENV
from tests.service.conftest import SERVICE, EventSink, Serve, make_event, write_config

__all__ = ["FakeKubeProcess", "OneTask", "fake_kube", "one_task", "start_fake_kube"]

ROOT = Path(__file__).resolve().parents[2]

# One action, one task. Locally the task appends a line naming its event to `runs` (so runs are
# counted) and prints its event's id; event data reaches the shell only through the environment, quoted.
ONE_TASK = """\
apiVersion: v2
actions:
  - name: "Run once"
    events:
      - name: "sh.keptn.event.test.triggered"
    tasks:
      - name: "count"
        image: "alpine:3.20"
        cmd: ["sh", "-c", "echo \\"ran $EVENT_ID\\" >> '{runs}'; echo \\"output-of-$KEPTN_SERVICE-$EVENT_ID\\""]
        env:
          - name: EVENT_ID
            value: "$.id"
            valueFrom: event
"""


@dataclass
class OneTask:
    """The one-task config in a tmp tree, and `serve` processes on it (each killed at teardown)."""

    tmp: Path
    sink: EventSink
    runs: Path
    started: list[Serve] = field(default_factory=list)

    def serve(self, env: dict[str, str] | None = None, home: Path | None = None) -> Serve:
        """A `serve` (not started) reporting to the sink; `home` gives a replica its own state dir."""
        home = home or self.tmp
        home.mkdir(parents=True, exist_ok=True)
        served = Serve(home, self.sink.url, {"CONFIG_DIR": str(self.tmp / "resources"), **(env or {})})
        self.started.append(served)
        return served

    def runs_of(self, event_id: str) -> int:
        """How many times the local task ran for this event."""
        lines = self.runs.read_text().splitlines() if self.runs.exists() else []
        return lines.count(f"ran {event_id}")

    @staticmethod
    def event(event_id: str) -> dict[str, Any]:
        return make_event(event_id=event_id)

    @staticmethod
    def output(event_id: str) -> str:
        """What the local task prints for this event."""
        return f"output-of-{SERVICE}-{event_id}"


@pytest.fixture
def one_task(tmp_path: Path, sink: EventSink) -> Iterator[OneTask]:
    runs = tmp_path / "runs"
    write_config(tmp_path, ONE_TASK.format(runs=runs))
    fixture = OneTask(tmp_path, sink, runs)
    yield fixture
    for served in fixture.started:
        served.kill()


def cut_deliveries(state_dir: Path) -> set[str]:
    """Ids of reports whose delivery had begun (the outbox marks each attempt first) but was not
    marked done: the receiver may have them, and they are sent again (at least once)."""
    db = sqlite3.connect(str(state_dir / "state.db"))
    try:
        rows = db.execute(
            "SELECT event_id FROM outbox WHERE delivered_at IS NULL AND uncertain = 1"
        ).fetchall()
    finally:
        db.close()
    return {str(row[0]) for row in rows}


def pending_reports(state_dir: Path) -> int:
    db = sqlite3.connect(str(state_dir / "state.db"))
    try:
        return int(
            db.execute("SELECT COUNT(*) FROM outbox WHERE delivered_at IS NULL AND dead = 0").fetchone()[0]
        )
    finally:
        db.close()


def check_reports(sink: EventSink, outputs: dict[str, str], cut: Collection[str] = ()) -> None:
    """For each event (its id -> the output its own task leaves): exactly one started and one
    finished report, succeeded, quoting its own output and no other event's. A report arrives
    once; twice, with the same CloudEvent id, only when its delivery was cut (`cut_deliveries`)."""
    copies = Counter(str(e["id"]) for e in sink.events)
    for event_id, output in outputs.items():
        for phase in (".started", ".finished"):
            reports = [e for e in sink.of_type(phase) if e.get("triggeredid") == event_id]
            ids = {str(e["id"]) for e in reports}
            assert len(ids) == 1, f"{event_id}: {len(ids)} different {phase} reports: {reports}"
            (report_id,) = ids
            allowed = (1, 2) if report_id in cut else (1,)
            assert copies[report_id] in allowed, f"{event_id}: {phase} arrived {copies[report_id]} times"
        (finished,) = {
            str(e["id"]): e for e in sink.of_type(".finished") if e.get("triggeredid") == event_id
        }.values()
        data = finished["data"]
        assert data["status"] == "succeeded", data["message"]
        assert output in data["message"], data["message"]
        for other_id, other in outputs.items():
            if other_id != event_id:
                assert other not in data["message"], f"{event_id}'s report names {other_id}'s output"


async def crash_and_restart(one: OneTask, point: str, env: dict[str, str] | None = None) -> CrashRun:
    """Send an event to a `serve` that dies at `point` (exit 137, as by kill -9), then restart it
    on the same state and send a second event; return once both are reported finished and the
    restarted service has stopped (so nothing more can reach the sink)."""
    env = env or {}
    crashing = one.serve({**env, CRASH_ENV: point})
    await crashing.start()
    first = one.event(f"fault-{point}")
    with contextlib.suppress(aiohttp.ClientError):  # at "accepted" the answer dies with it
        await crashing.post(first)
    assert await crashing.wait_exit(timeout=30) == 137, crashing.log.read_text()[-5000:]
    state = crashing.tmp / "state"
    cut = cut_deliveries(state)

    restarted = one.serve(env)
    await restarted.start()
    second = one.event(f"after-{point}")
    assert (await restarted.post(second))[0] == 202
    for event in (first, second):
        await one.sink.wait_until(
            lambda e, wanted=event["id"]: e.get("triggeredid") == wanted and e["type"].endswith(".finished"),
            timeout=30,
        )
    await restarted.stop()
    assert restarted.proc is not None and restarted.proc.returncode == 0, restarted.log.read_text()[-5000:]
    assert pending_reports(state) == 0, "reports left undelivered"
    return CrashRun(first, second, cut, restarted)


@dataclass(frozen=True)
class CrashRun:
    first: dict[str, Any]  # the event the service died handling
    second: dict[str, Any]  # one sent after the restart
    cut: set[str]  # reports whose delivery the crash cut (`cut_deliveries`)
    restarted: Serve


@dataclass
class FakeKubeProcess:
    url: str
    kubeconfig: Path

    def control(self, action: str, body: dict[str, Any] | None = None) -> Any:
        """GET /_fake/<action> (stats, job_arrivals), or POST it with a JSON body (hold_next, release)."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.url}/_fake/{action}", data=data, method="GET" if data is None else "POST"
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def lease(self) -> dict[str, Any]:
        request = urllib.request.Request(
            f"{self.url}/apis/coordination.k8s.io/v1/namespaces/jobs/leases/job-executor",
            headers={"Authorization": "Bearer fake-token"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return dict(json.loads(response.read()))


@contextmanager
def start_fake_kube(tmp: Path, delay: str = "0.3,0.6") -> Iterator[FakeKubeProcess]:
    """`python -m tests.kubeapi.server` (as bench/ starts it): Jobs run at once and end by
    themselves `delay` seconds later (a range: a random time in it), each logging
    "output of <its name>"."""
    kubeconfig = tmp / "kubeconfig"
    errors = tmp / "fake-kube.log"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.kubeapi.server",
            "--port",
            "0",
            "--auto-complete-delay",
            delay,
            "--auto-complete-log",
            "output of {job}\n",
            "--kubeconfig",
            str(kubeconfig),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=errors.open("wb"),
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().decode().strip()  # its first line, once it listens
        if not url.startswith("http"):
            raise AssertionError(f"the fake API server did not start: {errors.read_text()}")
        yield FakeKubeProcess(url, kubeconfig)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def fake_kube(tmp_path: Path) -> Iterator[FakeKubeProcess]:
    with start_fake_kube(tmp_path) as fake:
        yield fake
