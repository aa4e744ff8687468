"""`job-executor serve` as the benchmarks run it: pinned to core 0, with a config tree, a report
receiver (bench/sink.py) and, for the Kubernetes backend, a loopback fake API server on core 1;
and a paced sender of events that waits for their finished reports."""

from __future__ import annotations

import contextlib
import json
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bench.common import cpu_seconds, free_port, get_json, python, spawn, stop, wait_http

ONE_TASK = """\
apiVersion: v2
actions:
  - name: "Bench"
    events: [{name: "sh.keptn.event.bench.triggered"}]
    tasks: [{name: "t", image: "alpine:3.20", cmd: ["true"]}]
"""


@dataclass(frozen=True)
class Serving:
    url: str  # where events go
    pid: int  # serve's process
    sink: str  # the report receiver
    api: str  # the fake Kubernetes API ("" with the local backend)

    def finished(self) -> int:
        return int(get_json(self.sink + "/counts").get("finished", 0))

    def cpu(self) -> float:
        return cpu_seconds(self.pid)


@contextlib.contextmanager
def serving(config: str, *, kubernetes: bool, env: dict[str, str] | None = None) -> Iterator[Serving]:
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as procs:
        root = Path(tmp)
        tree = root / "resources" / "bench" / "dev" / "svc" / "job"
        tree.mkdir(parents=True)
        (tree / "config.yaml").write_text(config)
        sink_port, port = free_port(), free_port()
        sink = spawn([python(), "-m", "bench.sink", str(sink_port)], core=1)
        procs.callback(stop, sink)
        settings = {
            "RCV_PORT": str(port),
            "CONFIG_DIR": str(root / "resources"),
            "STATE_DIR": str(root / "state"),
            "QUEUE_SIZE": "100000",
            "MAX_CONCURRENT_RUNS": "512",
            "ALLOWED_IMAGE_LIST": "alpine:*",
            "K_SINK": f"http://127.0.0.1:{sink_port}/",
            **(env or {}),
        }
        api = ""
        if kubernetes:
            api_port = free_port()
            api = f"http://127.0.0.1:{api_port}"
            # No schema validation: the API server shares core 1 with the sender (the tests
            # validate every manifest); Jobs complete 50 ms after they are created.
            fake = spawn(
                [
                    python(),
                    "-m",
                    "tests.kubeapi.server",
                    "--port",
                    str(api_port),
                    "--validation",
                    "off",
                    "--auto-complete-delay",
                    "0.05",
                    "--kubeconfig",
                    str(root / "kubeconfig"),
                ],
                core=1,
            )
            procs.callback(stop, fake)
            wait_http(api + "/version")
            settings |= {
                "BACKEND": "kubernetes",
                "KUBECONFIG": str(root / "kubeconfig"),
                "JOB_NAMESPACE": "bench",
            }
        wait_http(f"http://127.0.0.1:{sink_port}/counts")
        serve = spawn([python(), "-m", "executor", "serve", "--log-level", "WARNING"], core=0, env=settings)
        procs.callback(stop, serve)
        wait_http(f"http://127.0.0.1:{port}/readyz")
        yield Serving(f"http://127.0.0.1:{port}/", serve.pid, f"http://127.0.0.1:{sink_port}", api)


def send(
    url: str, rate: float, count: int, event_type: str = "sh.keptn.event.bench.triggered"
) -> dict[str, float]:
    """`count` events at `rate` per second from the load generator (core 1): id -> sent at."""
    sender = spawn(
        [
            python(),
            "-m",
            "bench.loadgen",
            url,
            "--rate",
            str(rate),
            "--count",
            str(count),
            "--type",
            event_type,
        ],
        core=1,
        stdout=-1,
    )
    out, _ = sender.communicate(timeout=count / rate + 120)
    return dict(json.loads(out)["sent"])


def wait_finished(serving: Serving, count: int, timeout: float = 120) -> int:
    deadline = time.monotonic() + timeout
    while (done := serving.finished()) < count and time.monotonic() < deadline:
        time.sleep(0.1)
    return done


def cpu_per_event(serving: Serving, rate: float, count: int, *, finished: bool) -> float:
    """serve's CPU milliseconds per event from the first receipt to the last finished report
    (`finished`) or to the last 202; over `count` events sent at `rate` per second."""
    before, reported = serving.cpu(), serving.finished()
    send(serving.url, rate, count)
    if finished:
        wait_finished(serving, reported + count)
    return (serving.cpu() - before) / count * 1000
