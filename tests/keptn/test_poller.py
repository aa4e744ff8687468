"""The remote execution plane: registration, renewal, polling, dedup, and no crash loop on 401."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from executor.dispatcher import Dispatcher
from executor.keptn.api import KeptnAPI
from executor.keptn.models import Subscription
from executor.model.events import Event, Offer
from executor.sources.keptn import KeptnPoller, event_from_keptn
from executor.state import StateStore
from tests.keptn.conftest import METADATA, PROJECT, SERVICE, STAGE
from tests.keptn.fake_keptn import FakeKeptn

TEST = "sh.keptn.event.test.triggered"
DEPLOY = "sh.keptn.event.deployment.triggered"


class Handled:
    def __init__(self) -> None:
        self.events: list[Event] = []

    async def __call__(self, event: Event) -> None:
        self.events.append(event)


@pytest.fixture
async def dispatcher(tmp_path: Path) -> AsyncIterator[tuple[Dispatcher, Handled]]:
    store = StateStore(tmp_path / "state.db")
    handled = Handled()
    dispatcher = Dispatcher(store, handled, concurrency=2, queue_size=100)
    await dispatcher.start()
    yield dispatcher, handled
    await dispatcher.stop(0)
    store.close()


def poller(api: KeptnAPI, offer: object, **kw: object) -> KeptnPoller:
    options: dict[str, object] = {
        "subscriptions": [TEST],
        "metadata": METADATA,
        "poll_interval": 0.02,
        "renew_interval": 0.05,
        "retry_max": 0.1,
        "auth_backoff": 60.0,
    }
    options.update(kw)
    return KeptnPoller(api, offer, version="9.9.9", **options)  # type: ignore[arg-type]


async def run_for(p: KeptnPoller, seconds: float) -> None:
    p.start()
    await asyncio.sleep(seconds)
    assert p._task is not None and not p._task.done(), "the poller loop ended"
    await p.stop()


async def test_registers_and_renews(keptn: FakeKeptn, api: KeptnAPI) -> None:
    p = poller(api, lambda _e: Offer.ACCEPTED, subscriptions=[TEST, DEPLOY])
    p.start()
    await keptn.wait_for(lambda: sum(keptn.pings.values()) >= 3)
    await p.stop()
    [integration] = keptn.registrations.values()
    assert integration["name"] == "job-executor"
    assert integration["metadata"]["integrationversion"] == "9.9.9"
    assert integration["metadata"]["location"] == "remote-execution-plane"
    assert [s["event"] for s in integration["subscriptions"]] == [TEST, DEPLOY]
    assert p.status()["registered"] and p.status()["integration_id"] == integration["id"]
    assert len(keptn.requests_to("/uniform/registration", "POST")) == 1  # renewed, not re-registered
    assert keptn.pings[integration["id"]] >= 3


async def test_a_lost_registration_is_made_again(keptn: FakeKeptn, api: KeptnAPI) -> None:
    p = poller(api, lambda _e: Offer.ACCEPTED)
    p.start()
    await keptn.wait_for(lambda: sum(keptn.pings.values()) >= 1)
    keptn.registrations.clear()  # e.g. the control plane's database was reset
    await keptn.wait_for(lambda: len(keptn.registrations) == 1 and sum(keptn.pings.values()) >= 3)
    await p.stop()
    assert len(keptn.requests_to("/uniform/registration", "POST")) == 2


async def test_polled_events_are_handled_once(
    keptn: FakeKeptn, api: KeptnAPI, dispatcher: tuple[Dispatcher, Handled]
) -> None:
    d, handled = dispatcher
    first = keptn.trigger(TEST, PROJECT, STAGE, SERVICE)
    second = keptn.trigger(TEST, PROJECT, "prod", SERVICE)
    keptn.trigger(DEPLOY, PROJECT, STAGE, SERVICE)  # not subscribed
    offered: list[str] = []

    def offer(event: Event) -> Offer:
        offered.append(event.id)
        return d.offer(event)

    p = poller(api, offer)
    p.start()
    await keptn.wait_for(lambda: p.polls >= 5)
    # A restarted poller (new memory) offers the still-open events again: the dispatcher dedups.
    await p.stop()
    again = poller(api, offer)
    again.start()
    third = keptn.trigger(TEST, PROJECT, STAGE, SERVICE)
    # Polls cancelled by stop() may never reach Keptn: wait for ten that did.
    await keptn.wait_for(
        lambda: (
            again.polls >= 5
            and len(handled.events) == 3
            and len(keptn.requests_to("/event/triggered/")) >= 10
        )
    )
    await again.stop()
    await d.join()
    assert sorted(e.id for e in handled.events) == sorted([first["id"], second["id"], third["id"]])
    # Offered once per poller instance, although every poll returned them.
    assert offered.count(first["id"]) == 2 and offered.count(third["id"]) == 1
    polls = keptn.requests_to("/event/triggered/")
    assert len(polls) >= 10 and all(r.path.endswith(TEST) for r in polls)


async def test_a_full_queue_leaves_events_for_the_next_poll(keptn: FakeKeptn, api: KeptnAPI) -> None:
    keptn.trigger(TEST, PROJECT, STAGE, SERVICE)
    answers = [Offer.FULL, Offer.FULL, Offer.ACCEPTED]
    offered: list[str] = []

    def offer(event: Event) -> Offer:
        offered.append(event.id)
        return answers.pop(0) if answers else Offer.ACCEPTED

    p = poller(api, offer)
    p.start()
    await keptn.wait_for(lambda: p.polls >= 6)
    await p.stop()
    assert len(offered) == 3  # refused twice, accepted once, then remembered


async def test_subscriptions_from_the_control_plane_are_followed(keptn: FakeKeptn, api: KeptnAPI) -> None:
    seen: list[str] = []

    def offer(event: Event) -> Offer:
        seen.append(event.type)
        return Offer.ACCEPTED

    p = poller(api, offer)
    p.start()
    await keptn.wait_for(lambda: len(keptn.registrations) == 1)
    # A user narrows the subscription to the prod stage and adds deployments in the Bridge.
    [integration] = keptn.registrations.values()
    integration["subscriptions"] = [
        {"id": "s1", "event": TEST, "filter": {"projects": [PROJECT], "stages": ["prod"], "services": None}},
        {"id": "s2", "event": DEPLOY, "filter": {"projects": None, "stages": None, "services": None}},
    ]
    keptn.trigger(DEPLOY, PROJECT, STAGE, SERVICE)
    await keptn.wait_for(lambda: seen == [DEPLOY])
    await p.stop()
    assert p.subscriptions == [
        Subscription(TEST, (PROJECT,), ("prod",), (), "s1"),
        Subscription(DEPLOY, id="s2"),
    ]
    narrowed = [r for r in keptn.requests_to(f"/event/triggered/{TEST}") if "stage" in r.query]
    assert narrowed and narrowed[-1].query == {"pageSize": "50", "project": PROJECT, "stage": "prod"}


async def test_filters_with_several_values_are_applied_here(keptn: FakeKeptn, api: KeptnAPI) -> None:
    seen: list[str] = []

    def offer(event: Event) -> Offer:
        seen.append(event.stage)
        return Offer.ACCEPTED

    keptn.trigger(TEST, PROJECT, STAGE, SERVICE)
    keptn.trigger(TEST, PROJECT, "staging", SERVICE)
    keptn.trigger(TEST, PROJECT, "prod", SERVICE)
    p = poller(api, offer, subscriptions=[Subscription(TEST, stages=(STAGE, "prod"))])
    p.start()
    await keptn.wait_for(lambda: p.polls >= 2)
    await p.stop()
    assert sorted(seen) == sorted([STAGE, "prod"])
    assert "stage" not in keptn.requests_to("/event/triggered/")[0].query


async def test_a_refused_token_logs_once_and_does_not_crash_loop(
    keptn: FakeKeptn, bad_api: KeptnAPI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="executor")
    p = poller(bad_api, lambda _e: Offer.ACCEPTED, poll_interval=0.001, retry_max=0.001)
    await run_for(p, 1.5)
    assert len(keptn.requests) == 1  # one attempt, then a long pause
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert errors[0].getMessage().startswith(f"KEPTN_API_TOKEN was refused by {keptn.url}: check the token")
    assert "wrong-token" not in caplog.text
    assert p.status()["auth_failed"] and not p.status()["registered"]


async def test_it_recovers_when_the_token_is_accepted_again(
    keptn: FakeKeptn, bad_api: KeptnAPI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="executor")
    p = poller(bad_api, lambda _e: Offer.ACCEPTED, auth_backoff=0.2)
    p.start()
    await keptn.wait_for(lambda: len(keptn.requests) >= 3)
    assert len([r for r in caplog.records if r.levelno >= logging.ERROR]) == 1
    keptn.token = "wrong-token"  # the operator fixes the secret on the control plane side
    await keptn.wait_for(lambda: len(keptn.registrations) == 1 and p.polls >= 1)
    await p.stop()
    assert not p.status()["auth_failed"]
    assert "accepts the token again" in caplog.text
    # Attempts while refused were spaced by the backoff, not a tight loop.
    assert len([r for r in keptn.requests if not r.authorised]) <= 10


async def test_an_unavailable_control_plane_is_retried(
    keptn: FakeKeptn, api: KeptnAPI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="executor")
    keptn.fail_next = 9  # three calls of three attempts each
    offered: list[str] = []
    keptn.trigger(TEST, PROJECT, STAGE, SERVICE)

    def offer(event: Event) -> Offer:
        offered.append(event.id)
        return Offer.ACCEPTED

    p = poller(api, offer)
    p.start()
    await keptn.wait_for(lambda: len(offered) == 1)
    await p.stop()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings and "is unavailable" in warnings[0]
    assert "answers again" in caplog.text


def test_keptn_event_json_becomes_an_event() -> None:
    raw = {
        "contenttype": "application/json",
        "data": {"project": PROJECT, "stage": STAGE, "service": SERVICE},
        "extensions": {"custom": "x", "nested": {"no": 1}},
        "id": "abc",
        "shkeptncontext": "ctx",
        "source": "shipyard-controller",
        "time": "2024-05-01T10:00:00Z",
        "triggeredid": "",
        "gitcommitid": "c0ffee",
        "type": TEST,
    }
    event = event_from_keptn(raw)
    assert event.attribute("specversion") == "1.0" and event.attribute("custom") == "x"
    assert event.git_commit_id == "c0ffee" and event.project == PROJECT
    assert "triggeredid" not in event.attributes and "nested" not in event.attributes
