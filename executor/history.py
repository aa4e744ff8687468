"""The run history: queries over the state's runs and tasks for the read API and the run page.

Kept apart from state.py, which writes what the service must not lose; this only reads it.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from executor.state import StateStore

_HAS_TASKS = "EXISTS (SELECT 1 FROM tasks t WHERE t.source = r.source AND t.id = r.id)"
_RUN_FIELDS = (
    f"rowid, source, id, type, project, stage, service, state, status, received_at, finished_at, {_HAS_TASKS}"
)


@dataclass(frozen=True)
class RunRow:
    rowid: int
    source: str
    id: str
    type: str
    project: str
    stage: str
    service: str
    state: str  # queued | done
    outcome: str  # succeeded | failed | errored once done
    received_at: float
    finished_at: float | None
    has_tasks: int

    @property
    def status(self) -> str:
        """queued, running, succeeded, failed or errored."""
        if self.state == "done":
            return self.outcome or "succeeded"
        return "running" if self.has_tasks else "queued"


@dataclass(frozen=True)
class TaskRow:
    action: int
    task: int
    action_name: str
    task_name: str
    job: str
    outcome: dict[str, Any] | None  # None while the task runs
    phases: dict[str, str]


class RunHistory:
    def __init__(self, store: StateStore) -> None:
        self.db: sqlite3.Connection = store.db

    def list_runs(
        self, filters: dict[str, str], limit: int, before: tuple[float, int] | None = None
    ) -> list[RunRow]:
        """Runs newest first, each with its rowid (the cursor of the next page); `filters` on the
        columns type, project, stage, service, and `status` on the status the API shows."""
        where: list[str] = []
        args: list[object] = []
        for column in ("type", "project", "stage", "service"):
            if filters.get(column):
                where.append(f"{column} = ?")
                args.append(filters[column])
        status = filters.get("status")
        if status in ("succeeded", "failed", "errored"):
            where.append("state = 'done' AND status = ?")
            args.append(status)
        elif status == "running":
            where.append(f"state != 'done' AND {_HAS_TASKS}")
        elif status == "queued":
            where.append(f"state != 'done' AND NOT {_HAS_TASKS}")
        if before is not None:
            where.append("(received_at < ? OR (received_at = ? AND rowid < ?))")
            args += [before[0], before[0], before[1]]
        rows = self.db.execute(
            f"SELECT {_RUN_FIELDS} FROM runs r {'WHERE ' + ' AND '.join(where) if where else ''} "
            "ORDER BY received_at DESC, rowid DESC LIMIT ?",
            (*args, limit),
        ).fetchall()
        return [RunRow(*row) for row in rows]

    def run(self, source: str, event_id: str) -> RunRow | None:
        row = self.db.execute(
            f"SELECT {_RUN_FIELDS} FROM runs r WHERE source = ? AND id = ?", (source, event_id)
        ).fetchone()
        return None if row is None else RunRow(*row)

    def run_event(self, source: str, event_id: str) -> tuple[str, str | None] | None:
        """The event's JSON and the digest of the config the run was pinned to."""
        row = self.db.execute(
            "SELECT event, config_digest FROM runs WHERE source = ? AND id = ?", (source, event_id)
        ).fetchone()
        return None if row is None else (str(row[0]), row[1])

    def run_tasks(self, source: str, event_id: str) -> list[TaskRow]:
        rows = self.db.execute(
            "SELECT action, task, action_name, task_name, job, outcome, phases FROM tasks "
            "WHERE source = ? AND id = ? ORDER BY action, task",
            (source, event_id),
        ).fetchall()
        return [
            TaskRow(
                int(a), int(t), str(an), str(tn), str(j), json.loads(o) if o else None, json.loads(p or "{}")
            )
            for a, t, an, tn, j, o, p in rows
        ]
