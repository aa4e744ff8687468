"""`job-executor serve` as a Keptn remote execution plane: a real process against the fake
Keptn API (same paths, headers and bodies as Keptn's), configs and files from its resource
service, triggered events polled, started/finished events sent back through the API."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import aiohttp
import pytest

from tests.keptn.conftest import PROJECT, SERVICE, STAGE
from tests.keptn.fake_keptn import FakeKeptn
from tests.service.conftest import EventSink, Serve, make_event

pytestmark = pytest.mark.slow

CONFIG = """\
apiVersion: v2
actions:
  - name: "Test"
    events: [{name: "sh.keptn.event.test.triggered"}]
    tasks:
      - name: "Read staged file"
        image: "alpine:3.20"
        files: [tests/check.sh]
        cmd: ["sh", "/keptn/tests/check.sh"]
"""


def remote(tmp: Path, keptn: FakeKeptn, **env: str) -> Serve:
    serve = Serve(
        tmp,
        "",
        {
            "K_SINK": "",
            "KEPTN_API_ENDPOINT": keptn.url,
            "KEPTN_API_TOKEN": keptn.token,
            "CONFIG_SOURCE": "keptn",
            "PUBSUB_TOPIC": "sh.keptn.event.test.triggered",
            "KEPTN_POLL_INTERVAL": "1",
            "KEPTN_RENEW_INTERVAL": "5",
            **env,
        },
    )
    return serve


def finished(keptn: FakeKeptn) -> list[dict[str, object]]:
    return [e for e in keptn.received if str(e["type"]).endswith(".finished")]


async def test_remote_plane_runs_polled_event_once(tmp_path: Path, keptn: FakeKeptn) -> None:
    keptn.put(PROJECT, "tests/check.sh", "echo staged from keptn\n", stage=STAGE, service=SERVICE)
    commit = keptn.put(PROJECT, "job/config.yaml", CONFIG, stage=STAGE, service=SERVICE)
    # a later commit must not leak into the event pinned to `commit`
    keptn.put(PROJECT, "tests/check.sh", "echo too new\n", stage=STAGE, service=SERVICE)
    triggered = keptn.trigger("sh.keptn.event.test.triggered", PROJECT, STAGE, SERVICE, gitcommitid=commit)
    serve = remote(tmp_path, keptn)
    await serve.start()
    await keptn.wait_for(lambda: finished(keptn), timeout=20)
    assert keptn.registrations, "the integration registered with the control plane"
    done = finished(keptn)[0]
    assert done["triggeredid"] == triggered["id"]
    data = done["data"]
    assert isinstance(data, dict)
    assert data["status"] == "succeeded", data["message"]
    assert "staged from keptn" in str(data["message"])
    assert "too new" not in str(data["message"])
    started = [e for e in keptn.received if str(e["type"]).endswith(".started")]
    assert len(started) == 1
    # Polling again runs nothing twice, even when the control plane still lists the event (Keptn's
    # shipyard controller drops it only once it has processed the finished event; the fake drops
    # it at once, tests/keptn/fake_keptn.py _post_event, so it is listed again here by hand).
    # The positive signal: two more polls answered after the event is listed again.
    keptn.open_triggered.append(triggered)
    polls = len(keptn.requests_to("event/triggered", "GET"))
    await keptn.wait_for(lambda: len(keptn.requests_to("event/triggered", "GET")) >= polls + 2, timeout=20)
    assert len(finished(keptn)) == 1
    assert len([e for e in keptn.received if str(e["type"]).endswith(".started")]) == 1
    await serve.stop()


async def test_remote_plane_reports_missing_and_invalid_configs(tmp_path: Path, keptn: FakeKeptn) -> None:
    keptn.put(PROJECT, "job/config.yaml", "apiVersion: v2\nactions: 5\n", stage="prod", service=SERVICE)
    missing = keptn.trigger("sh.keptn.event.test.triggered", PROJECT, STAGE, "orders")
    broken = keptn.trigger("sh.keptn.event.test.triggered", PROJECT, "prod", SERVICE)
    serve = remote(tmp_path, keptn, ALWAYS_SEND_FINISHED_EVENT="true")
    await serve.start()
    await keptn.wait_for(lambda: len(finished(keptn)) >= 2, timeout=20)
    by_trigger = {e["triggeredid"]: e["data"] for e in finished(keptn)}
    assert "No job configuration found" in str(by_trigger[missing["id"]]["message"])  # type: ignore[index]
    assert "'actions' must be a list" in str(by_trigger[broken["id"]]["message"])  # type: ignore[index]
    # errored finished events are forwarded as error logs, as Keptn integrations do
    await keptn.wait_for(lambda: len(keptn.logs) >= 2, timeout=10)
    await serve.stop()


async def test_refused_token_is_reported_without_crash_loop(tmp_path: Path, keptn: FakeKeptn) -> None:
    serve = remote(tmp_path, keptn, KEPTN_API_TOKEN="wrong")
    await serve.start(ready=False)  # alive, but not ready: a rollout with it would stall
    for _ in range(200):  # until the refusal is logged (20 s at most), not a fixed sleep
        if "KEPTN_API_TOKEN was refused" in serve.log.read_text():
            break
        await asyncio.sleep(0.1)
    assert serve.proc is not None and serve.proc.poll() is None
    async with aiohttp.ClientSession() as session, session.get(serve.url + "readyz") as response:
        assert response.status == 503
        reason = (await response.json())["reason"]
    assert reason.startswith("not registered with the Keptn control plane") and "refused" in reason
    assert "wrong" not in reason
    assert len(keptn.requests) <= 3  # one refused registration, then a long pause
    assert "KEPTN_API_TOKEN was refused" in serve.log.read_text()
    assert "wrong" not in serve.log.read_text().replace("KEPTN_API_TOKEN", "")
    serve.signal(signal.SIGTERM)
    assert await serve.wait_exit() == 0


def test_settings_refuse_keptn_source_without_endpoint(tmp_path: Path) -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "executor", "serve"],
        env={**os.environ, "CONFIG_SOURCE": "keptn", "STATE_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "CONFIG_SOURCE=keptn needs KEPTN_API_ENDPOINT" in result.stderr


async def test_control_plane_outage_delays_the_event_but_loses_nothing(
    tmp_path: Path, keptn: FakeKeptn, sink: EventSink
) -> None:
    keptn.put(PROJECT, "tests/check.sh", "echo staged from keptn\n", stage=STAGE, service=SERVICE)
    keptn.put(PROJECT, "job/config.yaml", CONFIG, stage=STAGE, service=SERVICE)
    serve = Serve(
        tmp_path,
        sink.url,
        {"KEPTN_API_ENDPOINT": keptn.url, "KEPTN_API_TOKEN": keptn.token, "CONFIG_SOURCE": "keptn"},
    )
    await serve.start()
    keptn.fail_next = 6  # the resource service answers 503 for a while: more than one call's retries
    event = make_event(event_id="outage-1", project=PROJECT, stage=STAGE, service=SERVICE)
    assert (await serve.post(event))[0] == 202
    finished_events = await sink.wait_for(".finished", timeout=30)
    assert finished_events[0]["data"]["status"] == "succeeded", finished_events[0]["data"]["message"]
    assert "trying again in" in serve.log.read_text()
    await serve.stop()


async def test_event_without_config_is_logged_to_the_control_plane(tmp_path: Path, keptn: FakeKeptn) -> None:
    missing = keptn.trigger("sh.keptn.event.test.triggered", PROJECT, STAGE, "orders")
    serve = remote(tmp_path, keptn)  # ALWAYS_SEND_FINISHED_EVENT is off: no finished event
    await serve.start()
    await keptn.wait_for(lambda: keptn.logs, timeout=20)
    (entry,) = keptn.logs
    assert entry["triggeredid"] == missing["id"] and "No job configuration found" in entry["message"]
    assert finished(keptn) == []
    await serve.stop()
