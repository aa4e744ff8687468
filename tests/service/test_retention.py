"""Retention: finished runs, their outcomes, delivered events and local work dirs are forgotten
after STATE_RETENTION_HOURS; anything still under way or undelivered is kept."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from executor.app import retention
from executor.app.retention import Retention
from executor.backends.local.backend import LocalBackend
from executor.backends.naming import job_name
from executor.settings import Settings
from executor.state import OutboxItem, StateStore
from executor.support.envvars import SettingsError

DAY = 86400.0


def run(store: StateStore, event_id: str, state: str, age: float, tasks: int = 1) -> None:
    """A run received `age` seconds ago, in `state`, with its tasks' outcomes recorded."""
    store.accept("src", event_id, "{}")
    store.set_run_state("src", event_id, state)
    store._db.execute("UPDATE runs SET received_at = ? WHERE id = ?", (time.time() - age, event_id))
    for task in range(1, tasks + 1):
        store.record_task("src", event_id, 0, task, {"status": "succeeded"})
    store.mark_action_done("src", event_id, 0)


def outgoing(store: StateStore, event_id: str, age: float | None, dead: bool = False) -> None:
    """An outgoing event, delivered `age` seconds ago (None: not delivered)."""
    store.enqueue(event_id, ["http"], "{}")
    item = OutboxItem(event_id, "http", "{}", 0)
    if dead:
        store.give_up(item, "refused")
    elif age is not None:
        store.delivered(item)
        store._db.execute(
            "UPDATE outbox SET delivered_at = ? WHERE event_id = ?", (time.time() - age, event_id)
        )


def ids(store: StateStore, table: str) -> list[str]:
    column = "event_id" if table == "outbox" else "id"
    return sorted(r[0] for r in store._db.execute(f"SELECT DISTINCT {column} FROM {table}"))


def test_only_finished_runs_and_delivered_events_past_the_retention_are_forgotten(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.db")
    run(store, "old-done", "done", 8 * DAY, tasks=2)
    run(store, "new-done", "done", 1 * DAY)
    run(store, "old-running", "running", 8 * DAY)
    outgoing(store, "old-delivered", 8 * DAY)
    outgoing(store, "new-delivered", 1 * DAY)
    outgoing(store, "old-pending", None)
    outgoing(store, "old-dead", None, dead=True)
    forgotten = store.sweep(time.time() - 7 * DAY)
    assert (forgotten.runs, forgotten.events) == (1, 1)
    assert forgotten.tasks == (("src", "old-done", 0, 1), ("src", "old-done", 0, 2))
    for table in ("runs", "tasks", "actions"):
        assert ids(store, table) == ["new-done", "old-running"], table
    assert ids(store, "outbox") == ["new-delivered", "old-dead", "old-pending"]
    # A forgotten event is a new one again: what a redelivery after the retention does.
    assert store.accept("src", "old-done", "{}")
    assert not store.accept("src", "new-done", "{}")


async def test_a_sweep_goes_through_every_batch_and_removes_the_tasks_work_dirs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retention, "BATCH", 4)
    store = StateStore(tmp_path / "state.db")
    backend = LocalBackend(tmp_path / "work")
    await backend.start()
    for i in range(10):
        run(store, f"e{i}", "done", 8 * DAY)
        work = tmp_path / "work" / job_name(f"e{i}", "src", 0, 1)
        work.mkdir()
        (work / "exit").write_text("0\n")
    running = tmp_path / "work" / job_name("other", "src", 0, 1)
    running.mkdir()  # no exit file: still running, whatever the state says
    outgoing(store, "sent", 8 * DAY)
    assert await Retention(store, backend, hours=168).sweep() == (10, 1)
    assert ids(store, "runs") == [] and ids(store, "outbox") == []
    assert [p.name for p in (tmp_path / "work").iterdir()] == [running.name]


async def test_a_running_task_and_odd_names_are_left_alone(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "work")
    await backend.start()
    (tmp_path / "work" / "running").mkdir()
    failed = tmp_path / "work" / "failed"
    failed.mkdir()
    (failed / "failure").write_text("cannot start")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "exit").write_text("0")
    await backend.discard(["running", "failed", "../outside", ".", ""])
    assert sorted(p.name for p in (tmp_path / "work").iterdir()) == ["running"]
    assert (tmp_path / "outside" / "exit").exists()


async def test_no_retention_keeps_everything(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.db")
    keeper = Retention(store, LocalBackend(tmp_path / "work"), hours=0)
    keeper.start()
    assert keeper._task is None
    await keeper.stop()


def test_the_retention_setting() -> None:
    assert Settings.from_env({}).state.retention_hours == 168
    assert Settings.from_env({"STATE_RETENTION_HOURS": "0"}).state.retention_hours == 0
    with pytest.raises(SettingsError, match="STATE_RETENTION_HOURS"):
        Settings.from_env({"STATE_RETENTION_HOURS": "-1"})
