"""Issue 19 end to end: a real `serve` process, a GitHub-style event over HTTP, result events at a
real HTTP sink; and README's "Any CloudEvent" commands, run as written."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.generic.conftest import check_result_event, generic_event, write_root
from tests.service.conftest import EventSink, free_port, make_event

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]

CONFIG = """\
apiVersion: v2
actions:
  - name: "Build"
    events: [{{name: "com.github.push"}}]
    tasks:
      - name: "env"
        image: "alpine:3.20"
        cmd: ["sh", "-c", 'env | grep -E "^(CE|KEPTN)_" | sort > {out}; echo "{{\\"ok\\": true}}" > "$JOB_RESULT_FILE"']
"""


async def test_serve_answers_a_github_event_at_the_http_sink(
    tmp_path: Path, sink: EventSink, serve_factory: Any
) -> None:
    out = tmp_path / "env.txt"
    write_root(tmp_path, CONFIG.format(out=out))
    serve = serve_factory()
    await serve.start()
    status, _ = await serve.post(generic_event(id="gh-1"))
    assert status == 202
    (finished,) = await sink.wait_for("action.finished")
    (started,) = sink.of_type("action.started")
    assert sink.events.index(started) < sink.events.index(finished)
    for event in (started, finished):
        check_result_event(event)
        assert event["subject"] == "Build" and event["triggeredid"] == "gh-1"
    assert finished["data"]["status"] == "succeeded"
    assert finished["data"]["tasks"][0]["result"] == {"ok": True}
    assert out.read_text().splitlines() == [
        "CE_ID=gh-1",
        "CE_SOURCE=https://github.com/example/shop",
        "CE_SUBJECT=main",
        "CE_TIME=2026-11-24T07:02:15Z",
        "CE_TYPE=com.github.push",
    ]
    # A Keptn event in the same service still gets Keptn's answers (it reaches the root config,
    # which has nothing for it, so it stays unanswered, exactly as before without a root).
    await serve.post(make_event(event_id="k-1"))
    await serve.post(generic_event(id="gh-2"))
    await sink.wait_for("action.finished", count=2)
    assert not [e for e in sink.events if e["triggeredid"] == "k-1"]
    await serve.stop()


def readme_section() -> str:
    text = (ROOT / "README.md").read_text()
    return text[text.index("## Any CloudEvent") :].split("\n## ", 1)[0]


def test_readme_config_is_the_sample() -> None:
    block = re.search(r"```yaml\n(.*?)```", readme_section(), re.S)
    assert block is not None
    assert block.group(1) == (ROOT / "samples/resources/job/config.yaml").read_text()


def _timeless(event: dict[str, Any]) -> dict[str, Any]:
    text = json.dumps(event)
    return json.loads(re.sub(r'"(time|startedAt|finishedAt)": "[^"]+"', r'"\1": "T"', text))


def test_readme_commands_run_as_written(tmp_path: Path) -> None:
    section = readme_section()
    commands = re.search(r"```sh\n(.*?)```", section, re.S)
    shown = re.search(r"```json\n(.*?)```", section, re.S)
    assert commands is not None and shown is not None
    (tmp_path / "samples").symlink_to(ROOT / "samples")
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(ROOT),
        "RCV_PORT": str(free_port()),
        "STATE_DIR": str(tmp_path / "state"),
        "LOCAL_RUN_AS_USER": "",
    }
    shell = subprocess.Popen(
        ["bash", "-e", "-c", commands.group(1)], cwd=tmp_path, env=env, start_new_session=True
    )
    try:
        assert shell.wait(timeout=60) == 0
        events = tmp_path / "events.jsonl"
        deadline = time.monotonic() + 30
        lines: list[dict[str, Any]] = []
        while not [e for e in lines if e["type"].endswith(".finished")]:
            assert time.monotonic() < deadline, f"no finished event in {events}"
            time.sleep(0.1)
            lines = [json.loads(line) for line in events.read_text().splitlines() if line.endswith("}")]
        finished = next(e for e in lines if e["type"].endswith(".finished"))
        check_result_event(finished)
        assert _timeless(finished) == _timeless(json.loads(shown.group(1)))
    finally:
        with contextlib.suppress(ProcessLookupError):  # the service the commands started
            os.killpg(shell.pid, signal.SIGTERM)
