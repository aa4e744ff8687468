"""Issue 19 item 6: lint on a root config; `run` and `render` for a generic event; the Keptn sink
leaves result events alone."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from executor.app.lint import lint_config, lint_file
from executor.config.parse import parse_config
from executor.sinks.keptn import KeptnSink
from tests.generic.conftest import check_result_event, generic_event

ROOT = Path(__file__).resolve().parents[2]
KEPTN_WIDE = "apiVersion: v2\nactions:\n  - name: all\n    events: [{name: 'sh.keptn.event.*.triggered'}]\n    tasks: [{name: t, image: i}]\n"


def test_lint_warns_when_the_root_config_matches_keptn_events(tmp_path: Path) -> None:
    root = tmp_path / "job" / "config.yaml"
    root.parent.mkdir()
    root.write_text(KEPTN_WIDE)
    project = tmp_path / "shop" / "job" / "config.yaml"
    project.parent.mkdir(parents=True)
    project.write_text(KEPTN_WIDE)
    (problem,) = lint_file(str(root), config_dir=tmp_path)
    assert problem.severity == "warning" and problem.line == 4
    assert "root config, which applies to every event" in problem.message
    assert lint_file(str(project), config_dir=tmp_path) == []  # a project's own config: fine
    # The sample root config matches only GitHub pushes.
    assert (
        lint_file(str(ROOT / "samples/resources/job/config.yaml"), config_dir=ROOT / "samples/resources")
        == []
    )


def test_lint_knows_non_keptn_events_of_any_phase_are_answered() -> None:
    config = parse_config(KEPTN_WIDE.replace("sh.keptn.event.*.triggered", "com.example.build.finished"), "c")
    assert lint_config(config) == []


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "executor", *args], capture_output=True, text=True, cwd=ROOT)


def test_run_and_render_take_a_generic_event() -> None:
    common = ["--config", "samples/resources/job/config.yaml", "--event", "samples/events/github.push.json"]
    ran = run_cli("run", *common)
    assert ran.returncode == 0, ran.stderr
    events = [json.loads(line) for line in ran.stdout.splitlines()]
    assert [e["type"] for e in events] == [
        "dev.job-executor.action.started",
        "dev.job-executor.action.finished",
    ]
    for event in events:
        check_result_event(event)
    assert events[-1]["data"]["tasks"][0]["result"] == {"built": "main"}
    rendered = run_cli("render", *common)
    assert rendered.returncode == 0, rendered.stderr
    assert "name: CE_SUBJECT\n          value: main" in rendered.stdout
    assert "KEPTN_PROJECT" not in rendered.stdout


class _NoKeptn:
    def __init__(self) -> None:
        self.sent: list[Any] = []

    async def send_event(self, event: Any) -> None:
        self.sent.append(event)


async def test_the_keptn_sink_does_not_send_result_events() -> None:
    api = _NoKeptn()
    sink = KeptnSink(api, forward_logs=False)  # type: ignore[arg-type]
    result = {**generic_event(), "type": "dev.job-executor.action.finished", "data": {}}
    await sink.send(result)  # type: ignore[arg-type]
    assert api.sent == []
