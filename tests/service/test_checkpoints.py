"""Checkpoints of the state's write-ahead log are made by a thread of their own, every
CHECKPOINT_INTERVAL: never inside a commit of the event loop (which stalled it for a copy and two
fsyncs), and soon enough that losing the log (a power loss before the kernel wrote it) loses at
most the last moments."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from executor import commits
from executor.model.events import event_from_mapping
from executor.state import StateStore

# Far more than SQLite's 1,000-page automatic checkpoint: a commit of this much used to copy it.
ROWS = 400
PAYLOAD = "x" * 20_000


def _accept(store: StateStore, count: int) -> None:
    for i in range(count):
        event = event_from_mapping(
            {"specversion": "1.0", "id": f"e-{i}", "source": "s", "type": "t", "data": {"p": PAYLOAD}}
        )
        assert store.accept(event.source, event.id, event.to_json())
    store.flush()


def _ids_without_the_log(path: Path, tmp: Path) -> int:
    """The runs a copy of the database file alone holds: what a lost log leaves."""
    copy = tmp / "copy.db"
    shutil.copyfile(path, copy)
    db = sqlite3.connect(copy)
    try:
        return int(db.execute("SELECT count(*) FROM runs").fetchone()[0])
    except sqlite3.OperationalError as exc:  # not even the schema is in the file yet
        assert "no such table" in str(exc)
        return 0
    except sqlite3.DatabaseError as exc:
        # Copied while a checkpoint was writing pages into the file: a torn copy, which a real
        # loss would not leave (the log is only dropped once the checkpoint is synced). Not yet.
        assert "malformed" in str(exc)
        return -1
    finally:
        db.close()


def test_commits_never_checkpoint_the_thread_does(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(commits, "CHECKPOINT_INTERVAL", 3600.0)
    store = StateStore(tmp_path / "state.db")
    try:
        _accept(store, ROWS)
        wal = Path(str(tmp_path / "state.db") + "-wal")
        assert wal.stat().st_size > 4096 * 1000  # past where SQLite would have checkpointed
        assert _ids_without_the_log(tmp_path / "state.db", tmp_path) == 0
    finally:
        store.close()


def test_what_was_committed_a_checkpoint_ago_survives_losing_the_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(commits, "CHECKPOINT_INTERVAL", 0.05)
    store = StateStore(tmp_path / "state.db")
    try:
        _accept(store, ROWS)
        deadline = time.monotonic() + 10
        while _ids_without_the_log(tmp_path / "state.db", tmp_path) < ROWS and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _ids_without_the_log(tmp_path / "state.db", tmp_path) == ROWS
    finally:
        store.close()


def test_closing_the_store_stops_its_checkpoint_thread(tmp_path: Path) -> None:
    before = set(threading.enumerate())
    store = StateStore(tmp_path / "state.db")
    mine = [t for t in threading.enumerate() if t not in before and t.name == "state-checkpoints"]
    assert len(mine) == 1 and mine[0].is_alive()
    store.close()
    assert not mine[0].is_alive()


def _wal_bytes(path: Path) -> int:
    wal = Path(str(path) + "-wal")
    return wal.stat().st_size if wal.exists() else 0


async def test_a_steady_load_does_not_grow_the_log_without_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Before: the log only started again when a checkpoint had copied all of it with no commit
    # in between, which a steady load never leaves (its syncs take milliseconds, and a commit
    # comes every millisecond here): the log's file grew by everything written.
    limit = 256 * 1024
    monkeypatch.setattr(commits, "WAL_RESTART_BYTES", limit)
    monkeypatch.setattr(commits, "CHECKPOINT_INTERVAL", 0.02)
    store = StateStore(tmp_path / "state.db")
    events = 2000
    try:
        for i in range(events):  # about 6 MB of events, accepted one at a time as they arrive
            assert store.accept("s", f"e-{i}", '{"p": "' + "x" * 3000 + '"}')
            await asyncio.sleep(0.001)
        # Cut back to the limit when started again; a checkpoint interval's writes can pass it.
        assert _wal_bytes(tmp_path / "state.db") <= 4 * limit
    finally:
        store.close()
    # Nothing was lost on the way: every accepted event is in the database file itself.
    db = sqlite3.connect(tmp_path / "state.db")
    try:
        assert db.execute("SELECT count(*) FROM runs").fetchone()[0] == events
    finally:
        db.close()


async def test_a_reader_of_another_process_holds_up_the_restart_not_the_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(commits, "CHECKPOINT_INTERVAL", 3600.0)  # restarts asked for by hand here
    store = StateStore(tmp_path / "state.db")
    reader = sqlite3.connect(tmp_path / "state.db", isolation_level=None)
    try:
        store.accept("s", "before", "{}")
        reader.execute("BEGIN")
        assert reader.execute("SELECT count(*) FROM runs").fetchone()[0] == 1  # holds a snapshot
        store._commits.restart_wanted.set()
        store.accept("s", "during", "{}")  # a commit tries the restart: the reader is in its way
        assert store.db.execute("PRAGMA busy_timeout").fetchone()[0] == 5000  # left as it was
        store.accept("s", "still", "{}")
        log_frames = store.db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1]
        assert log_frames > 0
        reader.execute("COMMIT")
        store._commits.restart_wanted.set()
        store.accept("s", "after", "{}")  # restarts: the next write starts the log again
        store.accept("s", "first of the new log", "{}")
        frames_now = store.db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1]
        assert frames_now < log_frames, (frames_now, log_frames)
        assert store.db.execute("SELECT count(*) FROM runs").fetchone()[0] == 5
    finally:
        reader.close()
        store.close()
