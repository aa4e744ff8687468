"""Durable state in SQLite: accepted events, task progress and the outbox of events to send.

Everything the service must not lose or repeat across a restart is written here before it is
acted on: an event is acknowledged only after its row commits, a task's outcome is recorded
before its finished event is queued, and outgoing events have deterministic ids (primary keys),
so recording one twice is a no-op. Writes share commits (executor/commits.py); those that
must be on disk before something leaves the process flush.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from executor.commits import Checkpoints, Commits, Transaction

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
CREATE TABLE IF NOT EXISTS placements (
    job TEXT NOT NULL PRIMARY KEY, cluster TEXT NOT NULL,
    source TEXT NOT NULL, id TEXT NOT NULL, placed_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS placements_run ON placements (source, id);
CREATE TABLE IF NOT EXISTS uncertain_groups (grp TEXT NOT NULL PRIMARY KEY);
CREATE TABLE IF NOT EXISTS slots (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, scope TEXT NOT NULL, key TEXT NOT NULL,
    source TEXT NOT NULL, id TEXT NOT NULL, action INTEGER NOT NULL, arrived REAL NOT NULL,
    state TEXT NOT NULL, cancelled_by TEXT NOT NULL DEFAULT '',
    UNIQUE (source, id, action)
);
CREATE INDEX IF NOT EXISTS slots_key ON slots (scope, key, arrived, seq);
"""
# Tables are created with IF NOT EXISTS on every start: a database from before a table existed
# (placements came with CLUSTERS_FILE, slots with the actions' `concurrency`) gets it then,
# empty, which is what it would have held.

# Outbox columns added after the first release: created on databases that predate them.
# grp: the event a report answers (its triggeredid): order is kept within one group per sink, so
#   one report that cannot be delivered holds back only the later reports of the same event.
# uncertain: a delivery attempt began and did not end in a known answer (a crash between the POST
#   and marking it delivered, a timeout): before sending it again, ask the sink whether it has it.
_OUTBOX_COLUMNS = {
    "grp": "TEXT NOT NULL DEFAULT ''",
    "uncertain": "INTEGER NOT NULL DEFAULT 0",
}

# Columns of runs and tasks added for the run history (issue 16): created on older databases,
# and the event's own fields copied out of its JSON once, so filters need no JSON at query time.
# runs.status: succeeded | failed | errored once done ('' before); tasks.outcome is '' while the
# task runs (submitted, no outcome yet); tasks.phases: {"queued": iso, "submitted": iso, ...}.
_RUN_COLUMNS = {
    "type": "TEXT NOT NULL DEFAULT ''",
    "project": "TEXT NOT NULL DEFAULT ''",
    "stage": "TEXT NOT NULL DEFAULT ''",
    "service": "TEXT NOT NULL DEFAULT ''",
    "status": "TEXT NOT NULL DEFAULT ''",
    "finished_at": "REAL",
}
_TASK_COLUMNS = {
    "action_name": "TEXT NOT NULL DEFAULT ''",
    "task_name": "TEXT NOT NULL DEFAULT ''",
    "job": "TEXT NOT NULL DEFAULT ''",
    "phases": "TEXT NOT NULL DEFAULT '{}'",
}
_STATUS_RANK = {"": 0, "succeeded": 1, "failed": 2, "errored": 3}

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
    group: str = ""
    uncertain: bool = False  # an earlier attempt may have reached the receiver


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
        self.db = self._db  # read by the run history's queries (history.py)
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode survives a crash of the process (the case we design for); only a
        # power loss or a crash of the machine can drop the commits since the last checkpoint
        # (FEATURES.md, "Nothing lost, nothing run twice").
        self._db.execute("PRAGMA synchronous=NORMAL")
        # Checkpoints are made by a thread, off the event loop (executor/commits.py).
        self._commits = Commits(self._db)
        self._checkpoints: Checkpoints | None = None
        if str(path) != ":memory:":
            self._db.execute("PRAGMA wal_autocheckpoint=0")
            self._checkpoints = Checkpoints(str(path), self._commits.restart_wanted)
        self._db.executescript(SCHEMA)
        self._add_columns("outbox", _OUTBOX_COLUMNS)
        if self._add_columns("runs", _RUN_COLUMNS):
            self._db.execute(
                "UPDATE runs SET type = coalesce(json_extract(event, '$.type'), ''), "
                "project = coalesce(json_extract(event, '$.data.project'), ''), "
                "stage = coalesce(json_extract(event, '$.data.stage'), ''), "
                "service = coalesce(json_extract(event, '$.data.service'), ''), "
                "status = CASE WHEN state = 'done' THEN 'succeeded' ELSE '' END"
            )
        self._add_columns("tasks", _TASK_COLUMNS)
        self._db.execute("CREATE INDEX IF NOT EXISTS runs_received ON runs (received_at)")
        self._db.execute("CREATE INDEX IF NOT EXISTS outbox_group ON outbox (sink, grp, delivered_at, dead)")

    def close(self) -> None:
        self.flush()
        if self._checkpoints is not None:
            self._checkpoints.close()
        self._db.close()

    def _write(self, sql: str, params: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        """A write that joins the shared transaction (executor/commits.py)."""
        self._commits.begin()
        return self._db.execute(sql, params)

    def flush(self) -> None:
        """Commit every write made so far: before anything leaves the process that must follow them."""
        self._commits.flush()

    def _add_columns(self, table: str, columns: dict[str, str]) -> bool:
        """Add the columns a database made by an older version lacks; True when any was added."""
        have = {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}
        missing = [c for c in columns if c not in have]
        for column in missing:
            self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {columns[column]}")
        return bool(missing)

    # ---- runs ----
    def accept(
        self, source: str, event_id: str, event_json: str, about: tuple[str, str, str, str] = ("", "", "", "")
    ) -> bool:
        """Record an event; False when (source, id) was seen before. `about`: its type, project,
        stage and service, kept in columns for the run history's filters."""
        cur = self._write(
            "INSERT OR IGNORE INTO runs (source, id, event, state, received_at, type, project, stage, "
            "service) VALUES (?, ?, ?, 'queued', ?, ?, ?, ?, ?)",
            (source, event_id, event_json, time.time(), *about),
        )
        self.flush()  # the sender is answered next
        return cur.rowcount == 1

    def accept_all(self, rows: list[tuple[str, str, str, tuple[str, str, str, str]]]) -> list[bool]:
        """`accept` for many events (source, id, event JSON, about) in one transaction: one
        commit, so one write of the log, for all of them (group commit). A row already there
        (an earlier delivery, or the same event twice in `rows`) answers False."""
        now = time.time()
        with self.transaction():  # opens the shared transaction: each insert needs no begin()
            execute = self._db.execute
            fresh = [
                execute(
                    "INSERT OR IGNORE INTO runs (source, id, event, state, received_at, type, project, "
                    "stage, service) VALUES (?, ?, ?, 'queued', ?, ?, ?, ?, ?)",
                    (source, event_id, event_json, now, *about),
                ).rowcount
                == 1
                for source, event_id, event_json, about in rows
            ]
        self.flush()  # the senders are answered next
        return fresh

    def set_run_status(self, source: str, event_id: str, status: str) -> None:
        """How the run ended: a worse status (errored > failed > succeeded) is never overwritten
        by a better one, so a run whose config was refused stays errored whatever came after."""
        row = self._db.execute(
            "SELECT status FROM runs WHERE source = ? AND id = ?", (source, event_id)
        ).fetchone()
        if row is not None and _STATUS_RANK.get(status, 0) > _STATUS_RANK.get(str(row[0]), 0):
            self._write(
                "UPDATE runs SET status = ?, finished_at = ? WHERE source = ? AND id = ?",
                (status, time.time(), source, event_id),
            )

    def received_at(self, source: str, event_id: str) -> float | None:
        row = self._db.execute(
            "SELECT received_at FROM runs WHERE source = ? AND id = ?", (source, event_id)
        ).fetchone()
        return None if row is None else float(row[0])

    def set_run_state(self, source: str, event_id: str, state: str) -> None:
        self._write("UPDATE runs SET state = ? WHERE source = ? AND id = ?", (state, source, event_id))

    def unfinished_runs(self) -> list[str]:
        """Event JSON of runs accepted but not done, oldest first (to resume after a restart)."""
        rows = self._db.execute(
            "SELECT event FROM runs WHERE state != 'done' ORDER BY received_at, rowid"
        ).fetchall()
        return [r[0] for r in rows]

    def pin_config(self, source: str, event_id: str, digest: str) -> str:
        """The digest of the config the run started with: recorded the first time, then kept."""
        pinned = self.pinned_config(source, event_id)
        if pinned is not None:
            return pinned
        self._write(
            "UPDATE runs SET config_digest = ? WHERE source = ? AND id = ? AND config_digest IS NULL",
            (digest, source, event_id),
        )
        return digest

    def pinned_config(self, source: str, event_id: str) -> str | None:
        row = self._db.execute(
            "SELECT config_digest FROM runs WHERE source = ? AND id = ?", (source, event_id)
        ).fetchone()
        return None if row is None or row[0] is None else str(row[0])

    # ---- progress inside a run ----
    def task_outcome(self, source: str, event_id: str, action: int, task: int) -> dict[str, Any] | None:
        row = self._db.execute(
            "SELECT outcome FROM tasks WHERE source = ? AND id = ? AND action = ? AND task = ?",
            (source, event_id, action, task),
        ).fetchone()
        return None if row is None or not row[0] else dict(json.loads(row[0]))

    def task_phases(self, source: str, event_id: str, action: int, task: int) -> dict[str, str]:
        row = self._db.execute(
            "SELECT phases FROM tasks WHERE source = ? AND id = ? AND action = ? AND task = ?",
            (source, event_id, action, task),
        ).fetchone()
        return {} if row is None else dict(json.loads(row[0] or "{}"))

    def task_submitted(
        self,
        source: str,
        event_id: str,
        action: int,
        task: int,
        names: tuple[str, str, str],
        phases: dict[str, str],
    ) -> None:
        """A task is under way (no outcome yet): its action and task names, its Job's name and
        its phase times so far, for the run history."""
        self._write(
            "INSERT OR REPLACE INTO tasks (source, id, action, task, outcome, action_name, task_name, job, "
            "phases) VALUES (?, ?, ?, ?, '', ?, ?, ?, ?)",
            (source, event_id, action, task, *names, json.dumps(phases)),
        )

    def record_task(
        self,
        source: str,
        event_id: str,
        action: int,
        task: int,
        outcome: dict[str, Any],
        phases: dict[str, str] | None = None,
    ) -> None:
        """A task's outcome (with its bounded log excerpt, which so outlives the work dir)."""
        cur = self._write(
            "UPDATE tasks SET outcome = ?, phases = coalesce(?, phases) "
            "WHERE source = ? AND id = ? AND action = ? AND task = ?",
            (
                json.dumps(outcome),
                None if phases is None else json.dumps(phases),
                source,
                event_id,
                action,
                task,
            ),
        )
        if cur.rowcount == 0:
            self._write(
                "INSERT INTO tasks (source, id, action, task, outcome, phases) VALUES (?, ?, ?, ?, ?, ?)",
                (source, event_id, action, task, json.dumps(outcome), json.dumps(phases or {})),
            )

    def action_done(self, source: str, event_id: str, action: int) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM actions WHERE source = ? AND id = ? AND action = ?",
            (source, event_id, action),
        ).fetchone()
        return row is not None

    def mark_action_done(self, source: str, event_id: str, action: int) -> None:
        self._write(
            "INSERT OR IGNORE INTO actions (source, id, action) VALUES (?, ?, ?)",
            (source, event_id, action),
        )

    # ---- which cluster holds a task (CLUSTERS_FILE) ----
    def place(self, job: str, cluster: str, source: str, event_id: str) -> None:
        """Recorded before the Job is created there; a move to another cluster replaces it."""
        self._write(
            "INSERT OR REPLACE INTO placements (job, cluster, source, id, placed_at) VALUES (?, ?, ?, ?, ?)",
            (job, cluster, source, event_id, time.time()),
        )
        self.flush()  # the Job is created next

    def placement(self, job: str) -> str | None:
        row = self._db.execute("SELECT cluster FROM placements WHERE job = ?", (job,)).fetchone()
        return None if row is None else str(row[0])

    # ---- outbox ----
    def reports_uncertain(self, group: str) -> None:
        """Reports of this group (an event, by its id) may have been sent by another process
        already (a running task adopted from a Job after the state that knew it was lost, or from
        a replica that led before): each is checked with its sink before it is sent."""
        self._write("INSERT OR IGNORE INTO uncertain_groups (grp) VALUES (?)", (group,))

    def enqueue(self, event_id: str, sinks: list[str], payload: str, group: str = "") -> None:
        now = time.time()
        with self.transaction():
            uncertain = bool(
                group
                and self._db.execute("SELECT 1 FROM uncertain_groups WHERE grp = ?", (group,)).fetchone()
            )
            for sink in sinks:
                self._write(
                    "INSERT OR IGNORE INTO outbox (event_id, sink, payload, next_at, grp, uncertain) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (event_id, sink, payload, now, group, int(uncertain)),
                )

    def due(self, limit: int = 100) -> list[OutboxItem]:
        """Undelivered items that are due, in the order they were queued, each only when no
        earlier item of its group is pending for the same sink: a receiver sees an event's
        started reports before its finished ones, and a report waiting for a retry (or one that
        can never be delivered) holds back only its own event's later reports."""
        rows = self._db.execute(
            "SELECT o.event_id, o.sink, o.payload, o.attempts, o.grp, o.uncertain FROM outbox o "
            "WHERE o.delivered_at IS NULL AND o.dead = 0 AND o.next_at <= ? AND NOT EXISTS ("
            "  SELECT 1 FROM outbox p WHERE p.sink = o.sink AND p.grp = o.grp"
            "  AND p.delivered_at IS NULL AND p.dead = 0 AND p.rowid < o.rowid"
            ") ORDER BY o.rowid LIMIT ?",
            (time.time(), limit),
        ).fetchall()
        return [OutboxItem(str(e), str(s), str(p), int(a), str(g), bool(u)) for e, s, p, a, g, u in rows]

    def sending(self, item: OutboxItem) -> None:
        """Recorded before each attempt, and flushed before it (the outbox flushes a batch's
        attempts together): if the process dies before `delivered`, the next start knows the
        receiver may already have the event."""
        self._write(
            "UPDATE outbox SET uncertain = 1 WHERE event_id = ? AND sink = ?", (item.event_id, item.sink)
        )

    def next_due_in(self) -> float | None:
        # Only the first pending item of each group can become due; the rest wait behind it.
        row = self._db.execute(
            "SELECT MIN(o.next_at) FROM outbox o WHERE o.delivered_at IS NULL AND o.dead = 0 "
            "AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.sink = o.sink AND p.grp = o.grp"
            "  AND p.delivered_at IS NULL AND p.dead = 0 AND p.rowid < o.rowid)"
        ).fetchone()
        return None if row[0] is None else max(0.0, row[0] - time.time())

    def delivered(self, item: OutboxItem) -> None:
        self._write(
            "UPDATE outbox SET delivered_at = ?, attempts = attempts + 1 WHERE event_id = ? AND sink = ?",
            (time.time(), item.event_id, item.sink),
        )

    def retry_later(self, item: OutboxItem, delay: float, error: str) -> None:
        self._write(
            "UPDATE outbox SET attempts = attempts + 1, next_at = ?, last_error = ? "
            "WHERE event_id = ? AND sink = ?",
            (time.time() + delay, error[:500], item.event_id, item.sink),
        )

    def pending_outbox(self) -> int:
        return int(self._db.execute(f"SELECT COUNT(*) FROM outbox WHERE {_PENDING}").fetchone()[0])

    def give_up(self, item: OutboxItem, error: str) -> None:
        """A dead letter: kept (with why) for an operator, no longer holding back the others."""
        self._write(
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
            for table in ("tasks", "actions", "placements", "slots", "runs"):
                self._db.executemany(f"DELETE FROM {table} WHERE source = ? AND id = ?", runs)
            self._db.executemany("DELETE FROM uncertain_groups WHERE grp = ?", [(i,) for _, i in runs])
            events = self._write(
                "DELETE FROM outbox WHERE rowid IN (SELECT rowid FROM outbox WHERE delivered_at < ? LIMIT ?)",
                (before, limit),
            ).rowcount
        self.flush()  # the runs' work dirs are removed next
        return Forgotten(runs=len(runs), events=events, tasks=tuple(tasks))

    def transaction(self) -> Transaction:
        return self._commits.transaction()
