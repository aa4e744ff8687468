"""Issue 13 item 11: the event loop stays responsive while the worst accepted input is handled.

CPython's JSON codec holds the GIL, so a thread would not free the loop; instead the heavy steps
are bounded and split: a body over 64 KiB is parsed in a loop step of its own, a batch is
committed 50 events per step, a dispatcher worker yields between events, an event is encoded
once (a large one in a step of its own), and the local backend refuses an oversized env value before working on it. These tests
check the structure (which loop step does what), never a duration: the figure is
bench/healthz_load.py's "healthz under load".
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from executor.backends.local import context
from executor.backends.local.backend import LocalBackend
from executor.backends.local.context import MAX_ENV_BYTES
from executor.dispatcher import Dispatcher
from executor.model import events as events_module
from executor.model.events import Event, Offer
from executor.planner import plan_action
from executor.settings import Settings
from executor.settings.serving import ReceiverSettings
from executor.sources import http
from executor.sources.http import OFFERS_PER_STEP, YIELD_AFTER_BYTES, HttpSource
from executor.state import StateStore
from executor.support.metrics import Metrics
from tests.service.conftest import free_port

from .conftest import config, make_event


class Ticker:
    """Counts event loop iterations: a callback that schedules itself again runs once in each."""

    def __init__(self) -> None:
        self.ticks = 0
        self._handle: asyncio.Handle | None = None

    def _tick(self) -> None:
        self.ticks += 1
        self._handle = asyncio.get_running_loop().call_soon(self._tick)

    def __enter__(self) -> Ticker:
        self._tick()
        return self

    def __exit__(self, *_: object) -> None:
        assert self._handle is not None
        self._handle.cancel()


class RecordingIntake:
    """Takes events (encoding each for the state, as the dispatcher does), noting the loop
    iteration each offer ran in; FULL after `room` events."""

    def __init__(self, ticker: Ticker, room: int = 1000) -> None:
        self.ticker = ticker
        self.queue_size = 1000
        self._room = room
        self.steps: list[int] = []

    @property
    def accepting(self) -> bool:
        return True

    def room(self) -> int:
        return self._room - len(self.steps)

    def offer(self, event: Event) -> Offer:
        if len(self.steps) >= self._room:
            return Offer.FULL
        event.to_json()
        self.steps.append(self.ticker.ticks)
        return Offer.ACCEPTED

    async def offer_all(self, events: list[Event]) -> list[Offer]:
        answers = [self.offer(event) for event in events]
        await asyncio.sleep(0)  # the dispatcher answers once the group is committed, a step later
        return answers


def structured(event_id: str, data: Any = None) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": "tests",
        "type": "sh.keptn.event.test.triggered",
        "data": data if data is not None else {"project": "p"},
    }


@pytest.fixture
async def receiver() -> AsyncIterator[Callable[[RecordingIntake], Any]]:
    runners: list[web.AppRunner] = []

    async def start(intake: RecordingIntake) -> str:
        runner = HttpSource(intake, Metrics(), ReceiverSettings(), not_ready=lambda: None).runner()
        await runner.setup()
        runners.append(runner)
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        return f"http://127.0.0.1:{port}/"

    yield start
    for runner in runners:
        await runner.cleanup()


async def post(url: str, body: Any, content_type: str) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=json.dumps(body).encode(), headers={"Content-Type": content_type}) as answer,
    ):
        return answer.status, await answer.text()


async def test_a_batch_is_committed_a_bounded_number_of_events_per_loop_step(receiver: Any) -> None:
    with Ticker() as ticker:
        intake = RecordingIntake(ticker)
        url = await receiver(intake)
        batch = [structured(f"b-{i}") for i in range(OFFERS_PER_STEP * 3 + 1)]
        status, text = await post(url, batch, "application/cloudevents-batch+json")
    assert status == 202, text
    per_step: dict[int, int] = {}
    for step in intake.steps:
        per_step[step] = per_step.get(step, 0) + 1
    assert len(intake.steps) == len(batch)
    assert max(per_step.values()) == OFFERS_PER_STEP, per_step
    assert len(per_step) == 4


async def test_a_batch_that_finds_the_queue_taken_meanwhile_is_answered_429(receiver: Any) -> None:
    with Ticker() as ticker:
        intake = RecordingIntake(ticker, room=OFFERS_PER_STEP + 5)
        intake.room = lambda: 1000  # type: ignore[method-assign]  # room enough when it was checked
        url = await receiver(intake)
        batch = [structured(f"full-{i}") for i in range(OFFERS_PER_STEP * 2)]
        status, text = await post(url, batch, "application/cloudevents-batch+json")
    assert status == 429, text
    assert f"queue is full after {OFFERS_PER_STEP + 5} events of the batch; send it again later" in text


async def test_a_large_body_is_parsed_encoded_and_stored_in_loop_steps_of_their_own(
    receiver: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    parsed_in: list[int] = []
    encoded_in: list[int] = []
    parse, dumps = http.parse_request, json.dumps

    def recording_parse(*args: Any, **kwargs: Any) -> list[Event]:
        parsed_in.append(ticker.ticks)
        return parse(*args, **kwargs)

    def recording_dumps(value: Any, **kwargs: Any) -> str:
        text = dumps(value, **kwargs)
        if (
            kwargs.get("sort_keys") and isinstance(value, dict) and value.get("id") == "large"
        ):  # for the state
            encoded_in.append(ticker.ticks)
        return text

    monkeypatch.setattr(http, "parse_request", recording_parse)
    monkeypatch.setattr(events_module.json, "dumps", recording_dumps)
    with Ticker() as ticker:
        intake = RecordingIntake(ticker)
        url = await receiver(intake)
        small = structured("small")
        large = structured("large", {"project": "p", "pad": "x" * YIELD_AFTER_BYTES})
        for event in (small, large):
            status, text = await post(url, event, "application/cloudevents+json")
            assert status == 202, text
    assert intake.steps[0] == parsed_in[0]  # a small body: parsed and stored in one step
    assert parsed_in[1] < encoded_in[0] < intake.steps[1]  # a large one: three steps


async def test_a_dispatcher_worker_yields_between_events() -> None:
    handled_in: list[int] = []

    async def handler(event: Event) -> None:  # needs no await, as an event matching nothing
        handled_in.append(ticker.ticks)

    with Ticker() as ticker:
        dispatcher = Dispatcher(StateStore(":memory:"), handler, concurrency=1, queue_size=100)
        await dispatcher.start()
        for i in range(5):
            assert dispatcher.offer(make_event(id=f"d-{i}")) is Offer.ACCEPTED
        await asyncio.wait_for(dispatcher.join(), timeout=10)
        await dispatcher.stop(grace=0)
    assert len(handled_in) == 5
    assert len(set(handled_in)) == 5, handled_in  # each event in a loop step of its own


def test_an_event_is_encoded_once() -> None:
    event = make_event(data={"project": "p", "items": list(range(1000))})
    assert event.to_json() is event.to_json()


def test_an_oversized_env_value_is_refused_before_it_is_rebased(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = config(
        "apiVersion: v2\nactions:\n  - name: a\n    events: [{name: e}]\n    tasks:\n"
        "      - name: t\n        image: i\n        cmd: ['true']\n"
        "        env: [{name: EVENT, valueFrom: event, value: '$', as: json}]\n"
    )
    event = make_event("e", {"project": "p", "big": "z" * MAX_ENV_BYTES})
    (spec,) = plan_action(event, cfg.actions[0], cfg, Settings())
    rebase = context.Folders.rebase

    def bounded_rebase(self: context.Folders, text: str) -> str:
        assert len(text) <= MAX_ENV_BYTES, "an oversized value was rebased (a regex over all of it)"
        return rebase(self, text)

    monkeypatch.setattr(context.Folders, "rebase", bounded_rebase)
    with pytest.raises(ValueError, match=r"env EVENT is \d+ bytes.*128 KiB"):
        LocalBackend(tmp_path)._command(spec, str(tmp_path))
