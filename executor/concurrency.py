"""Per-action concurrency (the action field `concurrency`): at most `limit` runs of an action at
once per key, a key being the text a jsonpath finds in the event. A run beyond the limit waits in
arrival order (queue), is answered at once (skip), or stops the oldest run of its key and takes
its place (cancel-previous).

What holds a slot and what waits is in the state (the `slots` table), not in memory: after a
restart a run that held a slot holds it again when it resumes, and a queued run still waits
behind it, so nothing of one key runs twice or out of turn. Memory only wakes waiters up, and the
handles of running tasks, so that cancel-previous can stop them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from executor import seats
from executor.config.jsonpaths import MISSING, JsonPathLimitError, as_text, find_first
from executor.config.model import Action, Concurrency, JobConfig
from executor.model.errors import Temporary
from executor.model.events import Event
from executor.model.tasks import TaskHandle
from executor.state import StateStore
from executor.support.metrics import Metrics

log = logging.getLogger(__name__)

WAITING_GAUGE = "job_executor_runs_waiting_for_concurrency"
# Waiters look at the state again this often even when nothing woke them (a holder whose run
# ended without leaving its slot: the state no longer counts it).
RECHECK_SECONDS = 5.0

Run = tuple[str, str, int]  # (event source, event id, action index)


@dataclass(frozen=True)
class Claim:
    """One action of one event asking for a slot of its key."""

    scope: str  # the action: its config and name
    key: str  # the key's value in this event ("" when the action has one key, or none was found)
    run: Run
    rule: Concurrency
    action_name: str

    @property
    def where(self) -> tuple[str, str]:
        return (self.scope, self.key)

    def describe(self) -> str:
        if not self.rule.key:
            return f"action '{self.action_name}'"
        return f"action '{self.action_name}', key {self.key!r} ({self.rule.key})"


class Refused(Exception):
    """The run does not go ahead: skipped, or replaced by a newer event while it waited. The
    message says why, for its finished event."""

    def __init__(self, message: str, outcome: str) -> None:
        super().__init__(message)
        self.outcome = outcome  # skipped | cancelled


@dataclass(frozen=True)
class Slot:
    seq: int
    source: str
    event_id: str
    action: int
    holding: bool
    cancelled_by: str = ""  # the id of the newer event that replaced it (cancel-previous)

    @property
    def run(self) -> Run:
        return (self.source, self.event_id, self.action)


def claim_for(config: JobConfig, action: Action, event: Event) -> Claim | None:
    """The slot the action asks for with this event; None when the action sets no limit."""
    rule = action.concurrency
    if rule is None:
        return None
    key = ""
    if rule.key:
        try:
            found = find_first(rule.key, event.document())
        except JsonPathLimitError:
            found = MISSING
        key = "" if found is MISSING else as_text(found)
    scope = f"{_place(config.source)}\x00{action.name}"
    return Claim(scope, key, (event.source, event.id, action.index), rule, action.name)


def _place(source: str) -> str:
    """Where the config lives, without the version it was read at: the Keptn resolver names a
    config `keptn:<project/stage/service>@<commit>:job/config.yaml`, and a new commit per
    deployment is the rule there, yet its runs must share their keys with the runs before."""
    if source.startswith("keptn:"):
        return re.sub(r"@[^:]*:", ":", source, count=1)
    return source


def skipped_message(claim: Claim, busy: list[Slot]) -> str:
    ids = ", ".join(s.event_id for s in busy[:3]) + (" ..." if len(busy) > 3 else "")
    return (
        f"Action '{claim.action_name}' was skipped: {claim.describe()} already runs for event {ids} "
        f"(concurrency limit {claim.rule.limit}, onConflict: skip). Send the event again later to run it."
    )


def cancelled_message(claim: Claim, by: str) -> str:
    return (
        f"Action '{claim.action_name}' was cancelled: the newer event {by} of the same "
        f"{claim.describe()} replaced it (concurrency onConflict: cancel-previous)."
    )


class Gate:
    """Hands out the slots of every action with a `concurrency` field."""

    def __init__(
        self,
        store: StateStore,
        cancel: Callable[[TaskHandle], Awaitable[None]],
        metrics: Metrics | None = None,
    ) -> None:
        self.store = store
        self.db = store.db
        self._cancel = cancel
        self._changed: dict[tuple[str, str], asyncio.Event] = {}
        self._running: dict[Run, TaskHandle] = {}
        self._stopping: set[asyncio.Task[None]] = set()
        self.waiting = 0
        if metrics is not None:
            metrics.gauge(WAITING_GAUGE, lambda: float(self.waiting))

    @contextlib.asynccontextmanager
    async def held(self, claim: Claim | None) -> AsyncIterator[None]:
        """Holds the claim's slot while the body runs. Raises Refused when the run must not go
        ahead. An interrupted run (shutdown, or Temporary: tried again later) keeps its slot, so
        it resumes holding it; any other end gives the slot to the next in line."""
        if claim is None:
            seats.lined()
            yield
            return
        await self._acquire(claim)
        try:
            yield
        except (asyncio.CancelledError, Temporary, Refused):
            raise  # Refused: the caller reports it, marks the action done, then leaves
        except BaseException:
            self.leave(claim)
            raise
        else:
            self.leave(claim)
        finally:
            self._running.pop(claim.run, None)

    def cancelled_by(self, claim: Claim | None) -> str:
        """The newer event that replaced this run, or ""."""
        if claim is None:
            return ""
        slot = self._slot(claim.run)
        return slot.cancelled_by if slot is not None else ""

    def holds_back(self, claim: Claim | None, task: int) -> bool:
        """Whether the run must not start this task (its index from 1): a newer event replaced
        it. A task begun before a restart is not held back: submitted again it is adopted, and
        `running` stops it."""
        if not self.cancelled_by(claim):
            return False
        assert claim is not None
        begun = self.db.execute(
            "SELECT 1 FROM tasks WHERE source = ? AND id = ? AND action = ? AND task = ?", (*claim.run, task)
        ).fetchone()
        return begun is None

    def check_replaced(self, claim: Claim | None, done: bool) -> None:
        """Raises Refused when a newer event replaced this run and stopped it (or kept its tasks
        from starting): its finished event says so rather than "failed". `done`: every task
        ran and succeeded, so it was not stopped after all."""
        by = self.cancelled_by(claim)
        if claim is not None and by and not done:
            raise Refused(cancelled_message(claim, by), "cancelled")

    def running(self, run: tuple[str, str, int], handle: TaskHandle) -> None:
        """A task of the run now runs (any run: only those under a limit are ever looked up),
        so a newer event can stop it. A run replaced before its task began has it stopped now."""
        if (
            self.db.execute("SELECT 1 FROM slots WHERE source = ? AND id = ? AND action = ?", run).fetchone()
            is None
        ):
            return
        self._running[run] = handle
        slot = self._slot(run)
        if slot is not None and slot.cancelled_by:
            self._stop(handle)

    # ---- taking and leaving slots ----
    async def _acquire(self, claim: Claim) -> Slot:
        slot = self._slot(claim.run)
        if slot is None:
            # Arrival order is the order of the `slots` rows (their `arrived`, then `seq`), and a
            # run can only be ordered against rows that exist: so a run joins only once every
            # event that arrived before its own has joined (or ended), whatever their configs
            # took to read. Then a run that arrived first is either holding or earlier in line
            # ("ahead" below), and a fresh run waits behind it even when a slot just came free
            # and its woken waiter has not looked again yet: checking and taking a slot happen
            # in one step of the loop, with no await between them.
            await seats.in_turn()
            live = self._live(claim)
            taken = sum(s.holding for s in live)
            if claim.rule.on_conflict == "skip" and (taken >= claim.rule.limit or len(live) > taken):
                raise Refused(skipped_message(claim, live), "skipped")
            slot = self._join(claim)
            seats.lined()
            if claim.rule.on_conflict == "cancel-previous":
                await self._replace(claim, live)
        else:
            seats.lined()  # in line since before a restart or a retry: its row keeps its place
        # While it waits, the run gives its dispatcher seat back (seats.aside), so runs queued
        # behind a key hold no seat that other events, or this key's holder, need to go on.
        aside = False
        async with contextlib.AsyncExitStack() as parked:
            while True:
                changed = self._changed.setdefault(claim.where, asyncio.Event())
                slot = self._slot(claim.run) or self._join(claim)
                if slot.holding:
                    return slot  # taken before a restart or a retry: the run resumes in it
                if slot.cancelled_by:  # it keeps its row until reported, so a restart still knows
                    raise Refused(cancelled_message(claim, slot.cancelled_by), "cancelled")
                live = self._live(claim)
                taken = sum(s.holding for s in live)
                mine = next((i for i, s in enumerate(live) if s.seq == slot.seq), len(live))
                ahead = any(not s.holding and not s.cancelled_by for s in live[:mine])
                if taken < claim.rule.limit and not ahead:
                    self.db.execute("UPDATE slots SET state = 'holding' WHERE seq = ?", (slot.seq,))
                    return slot  # leaving `parked` takes a seat again, holding the slot meanwhile
                if not aside:
                    aside = True
                    await parked.enter_async_context(seats.aside())
                self.waiting += 1
                try:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(changed.wait(), RECHECK_SECONDS)
                finally:
                    self.waiting -= 1

    async def _replace(self, claim: Claim, live: list[Slot]) -> None:
        """cancel-previous: every run waiting for the key, and the oldest holders beyond
        limit - 1, are marked replaced (in the state first, so a restart still knows), and
        their running tasks are stopped."""
        holders = [s for s in live if s.holding and not s.cancelled_by]
        victims = [s for s in live if not s.holding and not s.cancelled_by]
        victims += holders[: max(0, len(holders) - (claim.rule.limit - 1))]
        event_id = claim.run[1]
        for victim in victims:
            self.db.execute(
                "UPDATE slots SET cancelled_by = ? WHERE seq = ? AND cancelled_by = ''",
                (event_id, victim.seq),
            )
            log.info("event %s replaces event %s (%s)", event_id, victim.event_id, claim.describe())
            handle = self._running.get(victim.run)
            if handle is not None:
                self.store.flush()  # the mark is on disk before the task is stopped
                await self._stop_now(handle)
        if victims:
            self._wake(claim)

    def leave(self, claim: Claim | None) -> None:
        """The run's slot goes to the next in line (call it once the action is marked done)."""
        if claim is None:
            return
        self.db.execute("DELETE FROM slots WHERE source = ? AND id = ? AND action = ?", claim.run)
        self._wake(claim)

    def _wake(self, claim: Claim) -> None:
        changed = self._changed.pop(claim.where, None)
        if changed is not None:
            changed.set()

    def _stop(self, handle: TaskHandle) -> None:
        task = asyncio.ensure_future(self._stop_now(handle))
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)

    async def _stop_now(self, handle: TaskHandle) -> None:
        try:
            await self._cancel(handle)
        except Exception as exc:  # the run is marked replaced: it reports so when its task ends
            log.warning("could not stop task %s of a replaced run: %s", handle.name, exc)

    # ---- the slots table (created in state.py) ----
    def _join(self, claim: Claim) -> Slot:
        source, event_id, action = claim.run
        # Its place in line is the event's arrival, not the moment its worker got here.
        arrived = self.store.received_at(source, event_id) or time.time()
        self.db.execute(
            "INSERT OR IGNORE INTO slots (scope, key, source, id, action, arrived, state) "
            "VALUES (?, ?, ?, ?, ?, ?, 'waiting')",
            (*claim.where, source, event_id, action, arrived),
        )
        slot = self._slot(claim.run)
        assert slot is not None
        return slot

    def _slot(self, run: Run) -> Slot | None:
        row = self.db.execute(
            f"SELECT {_COLUMNS} FROM slots s WHERE source = ? AND id = ? AND action = ?", run
        ).fetchone()
        return None if row is None else _row(row)

    def _live(self, claim: Claim) -> list[Slot]:
        """The key's slots that still count, holders and waiters, in arrival order. A slot whose
        action or run is done (or forgotten) holds nothing: a crash between marking the action
        done and leaving the slot must not block the key for ever."""
        rows = self.db.execute(
            f"SELECT {_COLUMNS} FROM slots s WHERE scope = ? AND key = ? "
            "AND NOT EXISTS (SELECT 1 FROM actions a WHERE a.source = s.source AND a.id = s.id "
            "AND a.action = s.action) "
            "AND EXISTS (SELECT 1 FROM runs r WHERE r.source = s.source AND r.id = s.id "
            "AND r.state != 'done') "
            "ORDER BY arrived, seq",
            claim.where,
        ).fetchall()
        return [_row(r) for r in rows]


_COLUMNS = "s.seq, s.source, s.id, s.action, s.state, s.cancelled_by"


def _row(row: Any) -> Slot:
    seq, source, event_id, action, state, cancelled_by = row
    return Slot(int(seq), str(source), str(event_id), int(action), state == "holding", str(cancelled_by))
