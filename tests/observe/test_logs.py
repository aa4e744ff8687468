"""Issue 16 (1): one log line per step of an event's life, with named fields and a timestamp on
every line, in text or JSON, task output at debug, and no secret value anywhere."""

from __future__ import annotations

import io
import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest

from executor.support import logs
from tests.service.conftest import EventSink, make_event, write_config

CONFIG = """\
apiVersion: v2
actions:
  - name: "Test"
    events: [{name: "sh.keptn.event.test.triggered"}]
    tasks:
      - name: "Greet"
        image: "alpine"
        cmd: ["sh", "-c", "echo hello-from-task; echo second line"]
      - name: "Fail"
        image: "alpine"
        cmd: ["sh", "-c", "exit 3"]
"""
TOKEN = "s3cret-token-value"
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z ")


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]


@pytest.mark.slow
async def test_json_lines_tell_each_step_with_its_event_action_and_task(
    tmp_path: Path, sink: EventSink, serve_factory: Any
) -> None:
    write_config(tmp_path, CONFIG)
    serve = serve_factory({"LOG_FORMAT": "json", "RCV_AUTH_TOKEN": TOKEN})
    await serve.start()
    event = make_event(event_id="log-1")
    status, _ = await serve.post(event, headers={"Authorization": f"Bearer {TOKEN}"})
    assert status == 202
    await sink.wait_for(".finished")
    await serve.stop()
    text = serve.log.read_text()
    records = _lines(serve.log)
    assert records, text
    # Every line the service wrote is a JSON object with a time (the first stderr line of
    # `serve` aside, which goes to the terminal in plain words).
    for line in text.splitlines():
        if line.startswith("job-executor: serving on"):
            continue
        assert line.startswith("{"), line
    assert all(re.match(r"\d{4}-\d\d-\d\dT", r["time"]) for r in records)
    mine = [r for r in records if r.get("event_id") == "log-1"]
    said = [r["message"] for r in mine]
    assert "event accepted" in said
    assert any(m.startswith("job config ") and "'Test' matched" in m for m in said)
    submitted = [r for r in mine if r["message"] == "task submitted"]
    assert [(r["action"], r["task"]) for r in submitted] == [("Test", "Greet"), ("Test", "Fail")]
    # Report lines name the event they answer by id (a report does not carry its source).
    assert all(r["source"] == "tests" for r in mine if "sink" not in r)
    ended = {r["task"]: r for r in mine if r["message"].startswith("task ended")}
    assert ended["Greet"]["status"] == "succeeded" and ended["Greet"]["duration_s"] >= 0
    assert ended["Fail"]["status"] == "failed" and ended["Fail"]["level"] == "warning"
    assert "exit code 3" in ended["Fail"]["message"]
    assert any(r["message"].startswith("report ") and "delivered" in r["message"] for r in mine)
    # --log-level DEBUG (the fixture's): the task's output, each line prefixed with the task.
    output = [r["message"] for r in mine if r["level"] == "debug"]
    assert "Test/Greet | hello-from-task" in output
    assert "Test/Greet | second line" in output
    assert TOKEN not in text


def test_text_lines_carry_a_timestamp_and_the_fields() -> None:
    stream = io.StringIO()
    logs.setup("text", "info", secrets=[TOKEN], stream=stream)
    try:
        log = logging.getLogger("executor.test")
        log.info("task ended", extra=logs.step("src", "id 1", action="A", task="t", status="failed"))
        log.warning("token was %s", TOKEN)
        log.debug("not shown at info")
    finally:
        logging.getLogger().handlers.clear()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    assert all(STAMP.match(line) for line in lines), lines
    assert lines[0].endswith(
        'INFO executor.test: task ended source=src event_id="id 1" action=A task=t status=failed'
    )
    assert TOKEN not in lines[1] and "***" in lines[1]


def test_json_masks_secrets_in_fields_too() -> None:
    stream = io.StringIO()
    logs.setup("json", "debug", secrets=[TOKEN], stream=stream)
    try:
        logging.getLogger("x").debug("hi", extra=logs.step("s", "i", header=f"Bearer {TOKEN}"))
    finally:
        logging.getLogger().handlers.clear()
    record = json.loads(stream.getvalue())
    assert record["header"] == "Bearer ***" and record["level"] == "debug"
