"""Durable state in SQLite: accepted events, task progress and the outbox of events to send.

Everything the service must not lose or repeat across a restart is written here before it is
acted on: an event is acknowledged only after its row commits, a task's outcome is recorded
before its finished event is queued, and outgoing events have deterministic ids (primary keys),
so recording one twice is a no-op.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    source TEXT NOT NULL, id TEXT NOT NULL, event TEXT NOT NULL,
    state TEXT NOT NULL, received_at REAL NOT NULL, config_digest TEXT,
    PRIMARY KEY (source, id)
);
CREATE INDEX IF NOT EXISTS runs_state ON runs (state);
CREATE TABLE IF NOT EXISTS tasks (
    source TEXT NOT NULL, id TEXT NOT NULL, action INTEGER NOT NULL, task INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    PRIMARY KEY (source, id, action, task)
);
CREATE TABLE IF NOT EXISTS actions (
    source TEXT NOT NULL, id TEXT NOT NULL, action INTEGER NOT NULL,
    PRIMARY KEY (source, id, action)
);
CREATE TABLE IF NOT EXISTS outbox (
    event_id TEXT NOT NULL, sink TEXT NOT NULL, payload TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0, next_at REAL NOT NULL,
    delivered_at REAL, last_error TEXT, dead INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (event_id, sink)
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (delivered_at, next_at);
"""

# Outgoing events still to deliver: neither delivered nor given up on.
_PENDING = "delivered_at IS NULL AND dead = 0"


@dataclass(frozen=True)
class Forgotten:
    """What one retention sweep removed: runs, delivered events, and the runs' tasks as
    (source, id, action, task), whose leftovers (local work dirs) can go too."""

    runs: int
    events: int
    tasks: tuple[tuple[str, str, int, int], ...]


@dataclass(frozen=True)
class OutboxItem:
    event_id: str
    sink: str
    payload: str
    attempts: int


class StateStore:
    def __init__(self, path: Path | str) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            # Owner-only from the first byte: local tasks (another user) must not read events,
            # outcomes or outgoing reports. SQLite gives its -wal and -shm files the same mode.
            os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
            os.chmod(path, 0o600)
        # One connection, used only from the event loop's thread; each call is short.
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode survives a crash of the process (the case we design for); only a
        # power loss can drop the last commits.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        self._db.close()

    # ---- runs ----
    def accept(self, source: str, event_id: str, event_json: str) -> bool:
        """Record an event; False when (source, id) was seen before."""
        cur = self._db.execute(
            "INSERT OR IGNORE INTO runs (source, id, event, state, received_at) "
            "VALUES (?, ?, ?, 'queued', ?)",
            (source, event_id, event_json, time.time()),
        )
        return cur.rowcount == 1

    def set_run_state(self, source: str, event_id: str, state: str) -> None:
        self._db.execute("UPDATE runs SET state = ? WHERE source = ? AND id = ?", (state, source, event_id))

    def unfinished_runs(self) -> list[str]:
        """Event JSON of runs accepted but not done, oldest first (to resume after a restart)."""
        rows = self._db.execute(
            "SELECT event FROM runs WHERE state != 'done' ORDER BY received_at, rowid"
        ).fetchall()
        return [r[0] for r in rows]

    def pin_config(self, source: str, event_id: str, digest: str) -> str:
        """The digest of the config the run started with: recorded the first time, then kept."""
        self._db.execute(
            "UPDATE runs SET config_digest = ? WHERE source = ? AND id = ? AND config_digest IS NULL",
            (digest, source, event_id),
        )
        row = self._db.execute(
            "SELECT config_digest FROM runs WHERE source = ? AND id = ?", (source, event_id)
        ).fetchone()
        return digest if row is None or row[0] is None else str(row[0])

    # ---- progress inside a run ----
    def task_outcome(self, source: str, event_id: str, action: int, task: int) -> dict[str, Any] | None:
        row = self._db.execute(
            "SELECT outcome FROM tasks WHERE source = ? AND id = ? AND action = ? AND task = ?",
            (source, event_id, action, task),
        ).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def record_task(
        self, source: str, event_id: str, action: int, task: int, outcome: dict[str, Any]
    ) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO tasks (source, id, action, task, outcome) VALUES (?, ?, ?, ?, ?)",
            (source, event_id, action, task, json.dumps(outcome)),
        )

    def action_done(self, source: str, event_id: str, action: int) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM actions WHERE source = ? AND id = ? AND action = ?",
            (source, event_id, action),
        ).fetchone()
        return row is not None

    def mark_action_done(self, source: str, event_id: str, action: int) -> None:
        self._db.execute(
            "INSERT OR IGNORE INTO actions (source, id, action) VALUES (?, ?, ?)",
            (source, event_id, action),
        )

    # ---- outbox ----
    def enqueue(self, event_id: str, sinks: list[str], payload: str) -> None:
        now = time.time()
        with self.transaction():
            for sink in sinks:
                self._db.execute(
                    "INSERT OR IGNORE INTO outbox (event_id, sink, payload, next_at) VALUES (?, ?, ?, ?)",
                    (event_id, sink, payload, now),
                )

    def due(self, limit: int = 100) -> list[OutboxItem]:
        """Undelivered items in the order they were queued, per sink up to the first one that
        waits for a retry: a receiver must see a run's started event before its finished one."""
        rows = self._db.execute(
            "SELECT event_id, sink, payload, attempts, next_at FROM outbox "
            f"WHERE {_PENDING} ORDER BY rowid LIMIT ?",
            (limit,),
        ).fetchall()
        now = time.time()
        blocked: set[str] = set()
        items = []
        for event_id, sink, payload, attempts, next_at in rows:
            if sink in blocked:
                continue
            if next_at > now:
                blocked.add(sink)
                continue
            items.append(OutboxItem(event_id, sink, payload, attempts))
        return items

    def next_due_in(self) -> float | None:
        row = self._db.execute(f"SELECT MIN(next_at) FROM outbox WHERE {_PENDING}").fetchone()
        return None if row[0] is None else max(0.0, row[0] - time.time())

    def delivered(self, item: OutboxItem) -> None:
        self._db.execute(
            "UPDATE outbox SET delivered_at = ?, attempts = attempts + 1 WHERE event_id = ? AND sink = ?",
            (time.time(), item.event_id, item.sink),
        )

    def retry_later(self, item: OutboxItem, delay: float, error: str) -> None:
        self._db.execute(
            "UPDATE outbox SET attempts = attempts + 1, next_at = ?, last_error = ? "
            "WHERE event_id = ? AND sink = ?",
            (time.time() + delay, error[:500], item.event_id, item.sink),
        )

    def pending_outbox(self) -> int:
        return int(self._db.execute(f"SELECT COUNT(*) FROM outbox WHERE {_PENDING}").fetchone()[0])

    def give_up(self, item: OutboxItem, error: str) -> None:
        """A dead letter: kept (with why) for an operator, no longer holding back the others."""
        self._db.execute(
            "UPDATE outbox SET attempts = attempts + 1, dead = 1, last_error = ? "
            "WHERE event_id = ? AND sink = ?",
            (error[:500], item.event_id, item.sink),
        )

    def dead_letters(self) -> list[tuple[str, str, str]]:
        rows = self._db.execute("SELECT event_id, sink, last_error FROM outbox WHERE dead = 1 ORDER BY rowid")
        return [(str(a), str(b), str(c)) for a, b, c in rows.fetchall()]

    # ---- retention ----
    def sweep(self, before: float, limit: int = 1000) -> Forgotten:
        """Forget up to `limit` finished runs received before `before` (epoch seconds), with
        their tasks and actions, and up to `limit` outgoing events delivered before then. Runs
        not done and events not delivered (pending, or dead letters) are kept whatever their age."""
        with self.transaction():
            runs = self._db.execute(
                "SELECT source, id FROM runs WHERE state = 'done' AND received_at < ? LIMIT ?",
                (before, limit),
            ).fetchall()
            tasks: list[tuple[str, str, int, int]] = []
            for source, event_id in runs:
                rows = self._db.execute(
                    "SELECT source, id, action, task FROM tasks WHERE source = ? AND id = ?",
                    (source, event_id),
                ).fetchall()
                tasks += [(str(a), str(b), int(c), int(d)) for a, b, c, d in rows]
            for table in ("tasks", "actions", "runs"):
                self._db.executemany(f"DELETE FROM {table} WHERE source = ? AND id = ?", runs)
            events = self._db.execute(
                "DELETE FROM outbox WHERE rowid IN (SELECT rowid FROM outbox WHERE delivered_at < ? LIMIT ?)",
                (before, limit),
            ).rowcount
        return Forgotten(runs=len(runs), events=events, tasks=tuple(tasks))

    def transaction(self) -> _Transaction:
        return _Transaction(self._db)


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN")

    def __exit__(self, exc_type: object, *_: object) -> None:
        self._db.execute("ROLLBACK" if exc_type else "COMMIT")
