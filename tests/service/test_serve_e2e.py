"""`job-executor serve` as a real process, events over real HTTP, reports to a real HTTP sink."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import pytest

from tests.service.conftest import EventSink, make_event, write_config

QUICK = """\
apiVersion: v2
actions:
  - name: "Quick"
    events: [{name: "sh.keptn.event.test.triggered"}]
    tasks: [{name: "q", image: "alpine", cmd: ["true"]}]
"""


async def wait_until_gone(pid: int, timeout: float = 10) -> None:
    """Until the process has exited (gone, or a zombie nobody reaped yet), with a bound."""
    for _ in range(int(timeout / 0.05)):
        stat = Path(f"/proc/{pid}/stat")
        try:
            if stat.read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return
        except (FileNotFoundError, ProcessLookupError):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"process {pid} still runs {timeout}s after its task timed out")


pytestmark = pytest.mark.slow

CONFIG = """\
apiVersion: v2
actions:
  - name: "Test"
    events:
      - name: "sh.keptn.event.test.triggered"
    tasks:
      - name: "Greet"
        image: "alpine:3.20"
        cmd: ["sh", "-c", "echo hello $(KEPTN_SERVICE) $LABELS_BUILD_ID; echo run >> {marker}"]
  - name: "Listener"
    silent: true
    events:
      - name: "sh.keptn.event.*.finished"
    tasks:
      - name: "Note"
        image: "alpine:3.20"
        cmd: ["sh", "-c", "echo heard >> {heard}"]
"""


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "marker"


async def test_structured_event_runs_task_and_reports(
    tmp_path: Path, sink: EventSink, serve_factory, marker: Path
) -> None:
    write_config(tmp_path, CONFIG.format(marker=marker, heard=tmp_path / "heard"))
    serve = serve_factory()
    await serve.start()
    event = make_event(event_id="evt-structured")
    status, body = await serve.post(event)
    assert (status, body) == (202, {"accepted": 1, "duplicate": 0})

    started = await sink.wait_for(".started")
    finished = await sink.wait_for(".finished")
    assert started[0]["type"] == "sh.keptn.event.test.started"
    done = finished[0]
    assert done["type"] == "sh.keptn.event.test.finished"
    assert done["triggeredid"] == "evt-structured"
    assert done["shkeptncontext"] == "ctx-1"
    assert done["data"]["status"] == "succeeded" and done["data"]["result"] == "pass"
    assert done["data"]["project"] == "shop" and done["data"]["labels"] == {"build-id": "b7"}
    assert "Task 'Greet' finished successfully!" in done["data"]["message"]
    assert "hello cart b7" in done["data"]["message"]
    # test events carry when the test ran, for the lighthouse
    assert done["data"]["test"]["start"] and done["data"]["test"]["end"]
    assert marker.read_text() == "run\n"
    await serve.stop()


async def test_binary_and_batch_modes(tmp_path: Path, sink: EventSink, serve_factory, marker: Path) -> None:
    write_config(tmp_path, CONFIG.format(marker=marker, heard=tmp_path / "heard"))
    serve = serve_factory()
    await serve.start()
    data = make_event()["data"]
    headers = {
        "ce-specversion": "1.0",
        "ce-id": "evt-binary",
        "ce-source": "tests",
        "ce-type": "sh.keptn.event.test.triggered",
        "ce-shkeptncontext": "ctx-b",
        "Content-Type": "application/json",
    }
    status, body = await serve.post(None, headers=headers, raw=json.dumps(data).encode())
    assert (status, body) == (202, {"accepted": 1, "duplicate": 0})
    batch = [make_event(event_id="evt-batch-1"), make_event(event_id="evt-batch-2")]
    status, body = await serve.post(
        None,
        headers={"Content-Type": "application/cloudevents-batch+json"},
        raw=json.dumps(batch).encode(),
    )
    assert (status, body) == (202, {"accepted": 2, "duplicate": 0})
    finished = await sink.wait_for(".finished", count=3)
    assert {e["triggeredid"] for e in finished} == {"evt-binary", "evt-batch-1", "evt-batch-2"}
    assert next(e for e in finished if e["triggeredid"] == "evt-binary")["shkeptncontext"] == "ctx-b"
    assert marker.read_text().count("run") == 3
    await serve.stop()


async def test_same_event_twice_runs_once(
    tmp_path: Path, sink: EventSink, serve_factory, marker: Path
) -> None:
    write_config(tmp_path, CONFIG.format(marker=marker, heard=tmp_path / "heard"))
    serve = serve_factory()
    await serve.start()
    event = make_event(event_id="evt-dup")
    assert (await serve.post(event))[1] == {"accepted": 1, "duplicate": 0}
    assert (await serve.post(event))[1] == {"accepted": 0, "duplicate": 1}
    await sink.wait_for(".finished")
    # A later event: once its report is in, a second run of the duplicate would have shown.
    await serve.post(make_event(event_id="evt-after-dup"))
    finished = await sink.wait_for(".finished", count=2)
    assert sorted(e["triggeredid"] for e in finished) == ["evt-after-dup", "evt-dup"]
    assert marker.read_text() == "run\nrun\n"
    # ... and across a restart: the dedup record is in the state database
    await serve.stop()
    serve = serve_factory()
    await serve.start()
    assert (await serve.post(event))[1] == {"accepted": 0, "duplicate": 1}
    await serve.stop()


async def test_silent_listener_runs_without_reporting(tmp_path: Path, sink: EventSink, serve_factory) -> None:
    heard = tmp_path / "heard"
    write_config(tmp_path, CONFIG.format(marker=tmp_path / "m", heard=heard))
    serve = serve_factory()
    await serve.start()
    await serve.post(make_event("sh.keptn.event.deployment.finished", event_id="evt-silent"))
    for _ in range(100):
        if heard.exists():
            break
        await asyncio.sleep(0.1)
    assert heard.read_text() == "heard\n"
    # A later, reported event: its reports come after any the silent action could have sent.
    await serve.post(make_event(event_id="evt-after-silent"))
    await sink.wait_for(".finished")
    assert {e["triggeredid"] for e in sink.events} == {"evt-after-silent"}
    await serve.stop()


async def test_failing_task_stops_the_action(tmp_path: Path, sink: EventSink, serve_factory) -> None:
    write_config(
        tmp_path,
        """\
apiVersion: v2
actions:
  - name: "Steps"
    events: [{name: "sh.keptn.event.test.triggered"}]
    tasks:
      - {name: "first", image: "alpine", cmd: ["sh", "-c", "echo about to fail; exit 3"]}
      - {name: "second", image: "alpine", cmd: ["sh", "-c", "echo never"]}
""",
    )
    serve = serve_factory()
    await serve.start()
    await serve.post(make_event())
    done = (await sink.wait_for(".finished"))[0]["data"]
    assert done["status"] == "errored" and done["result"] == "fail"
    assert "Task 'first' failed: exit code 3" in done["message"]
    assert "about to fail" in done["message"]
    assert "Task 'second' was not run because task 'first' failed." in done["message"]
    assert "never" not in done["message"]
    await serve.stop()


async def test_task_over_max_poll_duration_is_stopped(tmp_path: Path, sink: EventSink, serve_factory) -> None:
    pidfile = tmp_path / "sleeper.pid"
    write_config(
        tmp_path,
        f"""\
apiVersion: v2
actions:
  - name: "Slow"
    events: [{{name: "sh.keptn.event.test.triggered"}}]
    tasks:
      - name: "sleeper"
        image: "alpine"
        cmd: ["sh", "-c", "echo $$$$ > {pidfile}; exec sleep 60"]  # $$ is Kubernetes for a literal $
        maxPollDuration: 1
""",
    )
    serve = serve_factory()
    await serve.start()
    await serve.post(make_event())
    done = (await sink.wait_for(".finished", timeout=15))[0]["data"]
    assert done["status"] == "errored"
    assert "Task 'sleeper' failed: timed out after 1 s (maxPollDuration)" in done["message"]
    # the process was killed, not left running
    await wait_until_gone(int(pidfile.read_text()))
    await serve.stop()


async def test_result_file_patches_finished_event(tmp_path: Path, sink: EventSink, serve_factory) -> None:
    write_config(
        tmp_path,
        """\
apiVersion: v2
actions:
  - name: "Evaluate"
    events: [{name: "sh.keptn.event.evaluation.triggered"}]
    tasks:
      - name: "score"
        image: "alpine"
        cmd: ["sh", "-c"]
        args: ['echo ''[{"op": "add", "path": "/evaluation", "value": {"score": 97}}, {"op": "replace", "path": "/result", "value": "warning"}]'' > $JOB_RESULT_FILE']
  - name: "Bad result"
    events: [{name: "sh.keptn.event.evaluation.triggered"}]
    tasks:
      - name: "liar"
        image: "alpine"
        cmd: ["sh", "-c", "echo '{\\"project\\": \\"other\\"}' > /keptn/result.json"]
""",
    )
    serve = serve_factory()
    await serve.start()
    await serve.post(make_event("sh.keptn.event.evaluation.triggered"))
    finished = await sink.wait_for(".finished", count=2)
    by_message = {("score" if "'score'" in e["data"]["message"] else "liar"): e["data"] for e in finished}
    good = by_message["score"]
    assert good["evaluation"] == {"score": 97}
    assert good["result"] == "warning" and good["status"] == "succeeded"
    bad = by_message["liar"]
    assert bad["status"] == "errored"
    assert "result file of task 'liar' may not change 'project'" in bad["message"]
    assert bad["project"] == "shop"
    await serve.stop()


async def test_config_problems_are_reported(tmp_path: Path, sink: EventSink, serve_factory) -> None:
    write_config(
        tmp_path,
        """\
apiVersion: v2
actions:
  - name: "Locked down"
    events: [{name: "sh.keptn.event.test.triggered"}]
    tasks:
      - {name: "evil", image: "docker.io/evil/miner", cmd: ["true"]}
""",
    )
    write_config(tmp_path, "apiVersion: v2\nactions:\n  - nam: typo\n", level=("shop", "broken", "cart"))
    serve = serve_factory({"ALLOWED_IMAGE_LIST": "docker.io/good/*", "ALWAYS_SEND_FINISHED_EVENT": "true"})
    await serve.start()
    await serve.post(make_event(event_id="refused"))
    await serve.post(make_event(event_id="broken", stage="broken"))
    await serve.post(make_event(event_id="nothing", stage="nowhere"))
    finished = {e["triggeredid"]: e["data"] for e in await sink.wait_for(".finished", count=3)}
    assert finished["refused"]["status"] == "errored"
    assert (
        "Forbidden: Image docker.io/evil/miner does not match configured image allowlist."
        in (finished["refused"]["message"])
    )
    assert (
        "config.yaml:3: unknown field 'nam' in action 1; did you mean 'name'?"
        in finished["broken"]["message"]
    )
    assert finished["nothing"]["message"].startswith("No job configuration found")
    await serve.stop()


async def test_no_config_is_silent_by_default(tmp_path: Path, sink: EventSink, serve_factory) -> None:
    write_config(tmp_path, QUICK, level=("shop", "configured", "cart"))
    serve = serve_factory()
    await serve.start()
    assert (await serve.post(make_event(event_id="evt-no-config")))[0] == 202
    # A later event that has a config: once it is reported, the first one would have been too.
    assert (await serve.post(make_event(event_id="evt-configured", stage="configured")))[0] == 202
    await sink.wait_for(".finished")
    assert {e["triggeredid"] for e in sink.events} == {"evt-configured"}
    await serve.stop()


async def test_rejects_bad_requests(tmp_path: Path, sink: EventSink, serve_factory) -> None:
    (tmp_path / "resources").mkdir()
    serve = serve_factory({"MAX_BODY_BYTES": "2048", "RCV_AUTH_TOKEN": "s3cret"})
    await serve.start()
    auth = {"Authorization": "Bearer s3cret"}
    status, body = await serve.post(make_event())
    assert status == 401
    event = make_event()
    del event["id"]
    status, body = await serve.post(event, headers=auth)
    assert (status, body) == (400, {"error": "required attribute 'id' is missing"})
    status, body = await serve.post(None, headers=auth, raw=b"{not json")
    assert status == 400 and body["error"].startswith("body is not valid JSON")
    status, body = await serve.post(make_event(padding="x" * 4096), headers=auth)
    assert status == 413
    headers = {
        **auth,
        "ce-id": "1",
        "ce-source": "s",
        "ce-specversion": "1.0",
        "Content-Type": "application/json",
    }
    status, body = await serve.post(None, headers=headers, raw=b"{}")
    assert (status, body) == (400, {"error": "header ce-type is missing or empty"})
    bad_batch = json.dumps([make_event(), {"specversion": "1.0"}]).encode()
    status, body = await serve.post(
        None, headers={**auth, "Content-Type": "application/cloudevents-batch+json"}, raw=bad_batch
    )
    assert status == 400 and body["error"].startswith("event 1 of the batch:")
    async with aiohttp.ClientSession() as session, session.get(serve.url + "metrics") as response:
        text = await response.text()
    assert 'job_executor_events_rejected_total{reason="malformed"} 4' in text
    assert 'job_executor_events_rejected_total{reason="unauthorized"} 1' in text
    await serve.stop()


async def test_queue_full_answers_429(tmp_path: Path, sink: EventSink, serve_factory) -> None:
    write_config(
        tmp_path,
        """\
apiVersion: v2
actions:
  - name: "Slow"
    events: [{name: "sh.keptn.event.test.triggered"}]
    tasks: [{name: "wait", image: "alpine", cmd: ["sleep", "1"]}]
""",
    )
    serve = serve_factory({"MAX_CONCURRENT_RUNS": "1", "QUEUE_SIZE": "1"})
    await serve.start()
    answers = [(await serve.post(make_event(event_id=f"q{i}")))[0] for i in range(4)]
    # one running, one queued, the rest refused until there is room again
    assert answers[:2] == [202, 202]
    assert 429 in answers[2:]
    await sink.wait_for(".finished", count=2, timeout=15)
    await serve.stop()
