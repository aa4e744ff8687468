"""The action field `concurrency`: what the parser and the schema accept, FILE:LINE errors, and
the gate's rules over the state (arrival order, skip, replace, what holds after a restart)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import textwrap
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from executor import seats
from executor.app.lint import lint_file
from executor.cli import main
from executor.concurrency import Claim, Gate, Refused, claim_for
from executor.config.model import Concurrency
from executor.config.parse import parse_config
from executor.config.schema import build_schema
from executor.dispatcher import Dispatcher
from executor.model.events import Offer, event_from_mapping
from executor.model.tasks import TaskHandle
from executor.state import StateStore
from tests.kubernetes.conftest import eventually

from .conftest import problems

BASE = """\
apiVersion: v2
actions:
  - name: deploy
    events: [{{name: sh.keptn.event.deployment.triggered}}]
    concurrency: {block}
    tasks: [{{name: t, image: alpine}}]
"""


def config_with(block: str) -> str:
    return BASE.format(block=block)


def test_the_field_is_read_with_its_defaults() -> None:
    full = parse_config(config_with('{limit: 2, key: "$.data.service", onConflict: cancel-previous}'))
    assert full.actions[0].concurrency == Concurrency(2, "$.data.service", "cancel-previous", line=5)
    bare = parse_config(config_with("{}"))
    assert bare.actions[0].concurrency == Concurrency(1, "", "queue", line=5)
    none = parse_config(config_with("").replace("    concurrency: \n", ""))
    assert none.actions[0].concurrency is None


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ('{key: "$.data[?"}', "job/config.yaml:5: "),
        ("{key: data.service}", "does not start with '$.'; write $.data.service"),
        # The hint is what to write: without the spaces the key was written with.
        (
            "{key: '  data.service'}",
            "jsonpath '  data.service' does not start with '$.'; write $.data.service\n",
        ),
        ("{limit: 0}", "concurrency limit must be a whole number, at least 1, not 0"),
        ("{limit: two}", "at least 1, not 'two'"),
        ("{onConflict: drop}", "onConflict 'drop': write one of queue, skip, cancel-previous"),
        ("{limits: 1}", "unknown field 'limits' in concurrency; did you mean 'limit'?"),
        ("5", "concurrency must be a mapping"),
    ],
)
def test_mistakes_are_reported_with_their_line(block: str, message: str) -> None:
    found = problems(config_with(block))
    assert len(found) == 1, [str(p) for p in found]
    # The "\n" a message ends with in this table marks the end of the text.
    assert str(found[0]).startswith("job/config.yaml:5: ") and message in f"{found[0]}\n", str(found[0])


def test_the_schema_agrees_with_the_parser() -> None:
    schema = build_schema()

    good = yaml.safe_load(config_with('{limit: 3, key: "$.data.service", onConflict: skip}'))
    jsonschema.validate(good, schema)
    for bad in ("{limit: 0}", "{onConflict: drop}", "{key: data.service}", "{extra: 1}"):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(yaml.safe_load(config_with(bad)), schema)


def event(event_id: str, service: str = "cart") -> object:
    return event_from_mapping(
        {
            "specversion": "1.0",
            "id": event_id,
            "source": "tests",
            "type": "sh.keptn.event.deployment.triggered",
            "data": {"project": "p", "stage": "s", "service": service},
        }
    )


def claims(mode: str, limit: int = 1) -> dict[str, Claim]:
    cfg = parse_config(config_with(f'{{limit: {limit}, key: "$.data.service", onConflict: {mode}}}'))
    out = {}
    for event_id, service in (("a1", "cart"), ("a2", "cart"), ("a3", "cart"), ("b1", "shop")):
        claim = claim_for(cfg, cfg.actions[0], event(event_id, service))  # type: ignore[arg-type]
        assert claim is not None
        out[event_id] = claim
    return out


def accept(store: StateStore, *ids: str) -> None:
    for event_id in ids:
        store.accept("tests", event_id, json.dumps({"id": event_id}))


async def no_cancel(handle: TaskHandle) -> None:
    raise AssertionError(f"nothing should be cancelled ({handle})")


def test_the_key_is_the_text_the_path_finds() -> None:
    found = claims("queue")
    assert (found["a1"].key, found["b1"].key) == ("cart", "shop")
    assert found["a1"].where == found["a2"].where != found["b1"].where


def test_a_config_read_at_another_commit_shares_the_keys() -> None:
    text = config_with("{}")
    one = parse_config(text, "keptn:shop/dev/cart@1a2b:job/config.yaml")
    two = parse_config(text, "keptn:shop/dev/cart@3c4d:job/config.yaml")
    other = parse_config(text, "keptn:shop/prod/cart@3c4d:job/config.yaml")
    scopes = [claim_for(c, c.actions[0], event("e1")) for c in (one, two, other)]  # type: ignore[arg-type]
    assert scopes[0] and scopes[1] and scopes[2]
    assert scopes[0].scope == scopes[1].scope != scopes[2].scope


async def test_queue_takes_turns_in_arrival_order_not_in_asking_order(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.db")
    accept(store, "a1", "a2", "a3")
    gate = Gate(store, no_cancel)
    c = claims("queue")
    order: list[str] = []

    async def run(event_id: str, release: asyncio.Event) -> None:
        async with gate.held(c[event_id]):
            order.append(event_id)
            await release.wait()
            store.mark_action_done("tests", event_id, 0)

    releases = {i: asyncio.Event() for i in ("a1", "a2", "a3")}
    first = asyncio.create_task(run("a1", releases["a1"]))
    await asyncio.sleep(0)
    third = asyncio.create_task(run("a3", releases["a3"]))  # asks before a2 did, arrived after
    second = asyncio.create_task(run("a2", releases["a2"]))
    await eventually(lambda: gate.waiting == 2, what="a2 and a3 waiting")
    assert order == ["a1"]
    releases["a1"].set()
    releases["a2"].set()
    releases["a3"].set()
    await asyncio.gather(first, second, third)
    assert order == ["a1", "a2", "a3"]
    store.close()


async def test_a_fresh_event_does_not_take_the_slot_from_a_woken_waiter(tmp_path: Path) -> None:
    """a1 leaves its slot and wakes a2; a3 asks before a2 has looked again: a2 still goes first."""
    store = StateStore(tmp_path / "state.db")
    accept(store, "a1", "a2", "a3")
    gate = Gate(store, no_cancel)
    c = claims("queue")
    order: list[str] = []

    async def second() -> None:
        async with gate.held(c["a2"]):
            order.append("a2")
            store.mark_action_done("tests", "a2", 0)

    async with gate.held(c["a1"]):
        order.append("a1")
        waiter = asyncio.create_task(second())
        await eventually(lambda: gate.waiting == 1, what="a2 waiting")
        store.mark_action_done("tests", "a1", 0)
    # a1 has left and woken a2, which has not run since: a3 asks now, in the same step.
    async with gate.held(c["a3"]):
        order.append("a3")
        assert waiter.done()
    assert order == ["a1", "a2", "a3"]
    store.close()


async def test_a_later_event_does_not_overtake_one_still_reading_its_config(tmp_path: Path) -> None:
    """The dispatcher's workers reach the gate in any order (a config read from the Keptn API takes
    as long as it takes): a2 is ready first, and still waits for a1, which arrived first."""
    store = StateStore(tmp_path / "state.db")
    gate = Gate(store, no_cancel)
    c = claims("queue")
    resolved = {"a1": asyncio.Event(), "a2": asyncio.Event()}
    at_gate = {"a1": asyncio.Event(), "a2": asyncio.Event()}
    order: list[str] = []

    async def action(event_id: str) -> None:
        at_gate[event_id].set()
        async with gate.held(c[event_id]):
            order.append(event_id)
            store.mark_action_done("tests", event_id, 0)

    async def handle(event: Any) -> None:  # as Pipeline.handle: resolve, match, run the actions
        await resolved[event.id].wait()
        await asyncio.gather(*seats.parts([action(event.id)]))

    dispatcher = Dispatcher(store, handle, concurrency=4, queue_size=10)
    await dispatcher.start()
    assert dispatcher.offer(event("a1")) is Offer.ACCEPTED  # type: ignore[arg-type]
    assert dispatcher.offer(event("a2")) is Offer.ACCEPTED  # type: ignore[arg-type]
    resolved["a2"].set()
    await at_gate["a2"].wait()
    resolved["a1"].set()
    await dispatcher.join()
    assert order == ["a1", "a2"]
    await dispatcher.stop(0)
    store.close()


async def test_a_later_event_waits_for_earlier_configs_not_for_their_tasks(tmp_path: Path) -> None:
    """a1's action has no limit and runs on; a2, of a limited action, lines up without waiting
    for a1's task to end."""
    store = StateStore(tmp_path / "state.db")
    gate = Gate(store, no_cancel)
    c = claims("queue")
    a1_ends = asyncio.Event()
    order: list[str] = []

    async def handle(event: Any) -> None:
        async def action() -> None:
            async with gate.held(None if event.id == "a1" else c[event.id]):
                order.append(event.id)
                if event.id == "a1":
                    await a1_ends.wait()

        await asyncio.gather(*seats.parts([action()]))

    dispatcher = Dispatcher(store, handle, concurrency=4, queue_size=10)
    await dispatcher.start()
    dispatcher.offer(event("a1"))  # type: ignore[arg-type]
    dispatcher.offer(event("a2"))  # type: ignore[arg-type]
    await eventually(lambda: order == ["a1", "a2"], what="a2 running beside a1")
    a1_ends.set()
    await dispatcher.join()
    await dispatcher.stop(0)
    store.close()


async def test_skip_refuses_only_the_colliding_key(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.db")
    accept(store, "a1", "a2", "b1")
    gate = Gate(store, no_cancel)
    c = claims("skip")
    async with gate.held(c["a1"]):
        with pytest.raises(Refused) as refused:
            async with gate.held(c["a2"]):
                raise AssertionError("a2 must not run")
        assert refused.value.outcome == "skipped" and "a1" in str(refused.value)
        async with gate.held(c["b1"]):
            pass
    store.close()


async def test_cancel_previous_stops_the_holder_and_takes_its_place(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.db")
    accept(store, "a1", "a2")
    stopped: list[str] = []
    released = asyncio.Event()

    async def cancel(handle: TaskHandle) -> None:
        stopped.append(handle.name)
        released.set()

    gate = Gate(store, cancel)
    c = claims("cancel-previous")

    async def holder() -> None:
        async with gate.held(c["a1"]):
            gate.running(c["a1"].run, TaskHandle("job-a1"))
            await released.wait()  # its task ends when it is cancelled
            with pytest.raises(Refused) as refused:
                gate.check_replaced(c["a1"], done=False)
            assert "a2" in str(refused.value)
        store.mark_action_done("tests", "a1", 0)
        gate.leave(c["a1"])

    first = asyncio.create_task(holder())
    await eventually(lambda: gate._running, what="a1's task running")
    async with gate.held(c["a2"]):
        assert stopped == ["job-a1"]
        assert first.done()  # a2 ran only once a1 had left its slot
    await first
    store.close()


async def test_after_a_restart_the_holder_keeps_its_slot_before_it_resumes(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = StateStore(path)
    accept(store, "a1", "a2")
    c = claims("queue")
    gate = Gate(store, no_cancel)
    holding = gate.held(c["a1"])
    await holding.__aenter__()  # a1 runs when the process dies (its context is never left)
    store.close()

    store = StateStore(path)  # the next start: a2 asks first, a1 has not resumed yet
    gate = Gate(store, no_cancel)
    second = asyncio.create_task(gate.held(c["a2"]).__aenter__())
    await eventually(lambda: gate.waiting == 1, what="a2 waiting")
    async with gate.held(c["a1"]):  # a1 resumes in the slot it held, without waiting
        assert not second.done()
        store.mark_action_done("tests", "a1", 0)
    await second
    store.close()


def test_an_older_database_gets_the_slots_table(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.executescript(
        textwrap.dedent(
            """\
            CREATE TABLE runs (source TEXT NOT NULL, id TEXT NOT NULL, event TEXT NOT NULL,
                state TEXT NOT NULL, received_at REAL NOT NULL, config_digest TEXT,
                PRIMARY KEY (source, id));
            INSERT INTO runs VALUES ('tests', 'old', '{}', 'queued', 1.0, NULL);
            """
        )
    )
    db.commit()
    db.close()
    store = StateStore(path)
    assert store.db.execute("SELECT COUNT(*) FROM slots").fetchone() == (0,)
    assert store.unfinished_runs() == ["{}"]
    store.close()


def test_lint_warns_of_skip_on_a_silent_action(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        config_with("{onConflict: skip}").replace(
            "  - name: deploy\n", "  - name: deploy\n    silent: true\n"
        )
    )
    found = [str(p) for p in lint_file(str(path))]
    assert found == [
        f"{path}:6: warning: action 'deploy' is silent, so nobody hears of the runs that onConflict skip "
        "stops; use queue, or let the action report"
    ]


def test_render_names_the_key_and_limit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(config_with('{limit: 2, key: "$.data.service", onConflict: cancel-previous}'))
    event_file = tmp_path / "event.json"
    event_file.write_text(json.dumps(event("e1").document()))  # type: ignore[attr-defined]
    assert main(["render", "--config", str(config), "--event", str(event_file)]) == 0
    err = capsys.readouterr().err
    expected = (
        "action 'deploy', key 'cart' ($.data.service): at most 2 run(s) at once, onConflict: cancel-previous"
    )
    assert f"concurrency: {expected}" in err
