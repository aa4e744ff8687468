"""Helpers of the JES compatibility suite (issue 12).

Everything here drives the command line as users do (`python -m executor lint|render|run|serve`,
a subprocess per call): the CLI is the stable contract while the package layout moves, so these
tests import nothing from `executor`.

The expected values come from Keptn's job-executor-service (JES), repository
keptn-contrib/job-executor-service; each test names the file behind its expectation.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples"

# Settings the commands read from the environment: every call starts without them and sets
# what it needs, so the developer's shell cannot change a result.
SETTING_PREFIXES = ("DEFAULT_", "TASK_", "ALLOW", "REQUIRE_", "JOB_", "KEPTN_", "NATS_", "RCV_")
SETTING_NAMES = frozenset(
    {
        "CONFIG_SOURCE",
        "CONFIG_DIR",
        "INIT_CONTAINER_IMAGE",
        "ALWAYS_SEND_FINISHED_EVENT",
        "FULL_DEPLOYMENT_NAME",
        "K_SINK",
        "BACKEND",
        "STATE_DIR",
        "LOCAL_SECRETS_DIR",
        "PUBSUB_TOPIC",
    }
)

EVENT_ID = "f2b878d3-03c0-4e8f-bc3f-454bc1b3d79b"
CONTEXT = "08735340-6f9e-4b32-97ff-3b6c292bc50a"


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    base = {
        k: v for k, v in os.environ.items() if not k.startswith(SETTING_PREFIXES) and k not in SETTING_NAMES
    }
    base["PYTHONPATH"] = str(ROOT)
    return {**base, **(extra or {})}


def cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """One `job-executor ...` call as a user makes it; `timeout` bounds it (TimeoutExpired fails the test)."""
    return subprocess.run(
        [sys.executable, "-m", "executor", *args],
        cwd=cwd or ROOT,
        env=clean_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def output(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout + result.stderr


def write_config(tree: Path, text: str) -> Path:
    """`text` (dedented) as <tree>/job/config.yaml; `tree` is the folder `files:` resolve against."""
    path = tree / "job" / "config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def one_task(
    image: str = "alpine:3.20", extra: str = "", event: str = "sh.keptn.event.test.triggered"
) -> str:
    """A config of one action with one task; `extra` is more task keys, indented like `image`."""
    body = textwrap.indent(textwrap.dedent(extra).strip("\n"), " " * 8) if extra.strip() else ""
    return (
        "apiVersion: v2\n"
        "actions:\n"
        '  - name: "Action"\n'
        "    events:\n"
        f'      - name: "{event}"\n'
        "    tasks:\n"
        '      - name: "Task"\n'
        f'        image: "{image}"\n'
        '        cmd: ["sh", "-c", "echo hello"]\n' + (body + "\n" if body else "")
    )


def make_event(path: Path, type_: str = "sh.keptn.event.test.triggered", **data: Any) -> Path:
    """A structured-mode Keptn event as the shipyard controller sends it; `data` adds to its data."""
    event = {
        "specversion": "1.0",
        "id": EVENT_ID,
        "source": "shipyard-controller",
        "type": type_,
        "time": "2026-11-24T07:02:15.644Z",
        "datacontenttype": "application/json",
        "shkeptncontext": CONTEXT,
        "data": {"project": "sockshop", "stage": "dev", "service": "carts", **data},
    }
    path.write_text(json.dumps(event), encoding="utf-8")
    return path


def objects(stdout: str) -> list[dict[str, Any]]:
    return [o for o in yaml.safe_load_all(stdout) if o is not None]


def jobs(stdout: str) -> list[dict[str, Any]]:
    return [o for o in objects(stdout) if o.get("kind") == "Job"]


def job_container(job: dict[str, Any]) -> dict[str, Any]:
    containers: list[dict[str, Any]] = job["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container.get("env", [])}


def emitted(stdout: str) -> list[dict[str, Any]]:
    """The CloudEvents `run` printed, one JSON object a line."""
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def finished(stdout: str) -> dict[str, Any]:
    (event,) = [e for e in emitted(stdout) if e["type"].endswith(".finished")]
    return event


def file_line(result: subprocess.CompletedProcess[str], path: Path) -> list[tuple[int, str]]:
    """(line, message) of each `FILE:LINE: message` lint printed about `path`."""
    found = []
    for line in output(result).splitlines():
        m = re.match(rf"^{re.escape(str(path))}:(\d+): (.*)$", line)
        if m:
            found.append((int(m.group(1)), m.group(2)))
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
