"""Retention: finished runs are forgotten after STATE_RETENTION_HOURS, so the state does not
grow without end. A sweep every few minutes removes, in small batches, the runs that ended
(with their task outcomes), the events delivered before the cutoff, and what those tasks left
on this machine (the local backend's work dirs; Jobs go by their own TTL). Runs still under way
and events not delivered are never removed. An event delivered again after its run was
forgotten runs again: keep the retention well above any redelivery window (hours, not days).
"""

from __future__ import annotations

import asyncio
import logging
import time

from executor.backends.base import Backend
from executor.backends.naming import job_name
from executor.state import StateStore
from executor.support.background import stop_task

log = logging.getLogger(__name__)

SWEEP_EVERY = 600.0  # seconds between sweeps
BATCH = 500  # runs (and delivered events) removed per transaction: short pauses of the loop


class Retention:
    def __init__(self, store: StateStore, backend: Backend, hours: int, every: float = SWEEP_EVERY) -> None:
        self.store = store
        self.backend = backend
        self.hours = hours  # 0: keep everything
        self.every = every
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.hours > 0 and self._task is None:
            self._task = asyncio.create_task(self._run(), name="retention")

    async def stop(self) -> None:
        await stop_task(self._task)
        self._task = None

    async def sweep(self, now: float | None = None) -> tuple[int, int]:
        """One sweep: (runs, events) forgotten."""
        before = (time.time() if now is None else now) - self.hours * 3600
        runs = events = 0
        while True:
            forgotten = self.store.sweep(before, limit=BATCH)
            runs += forgotten.runs
            events += forgotten.events
            names = [
                job_name(event_id, source, action, task) for source, event_id, action, task in forgotten.tasks
            ]
            if names:
                await self.backend.discard(names)
            if forgotten.runs < BATCH and forgotten.events < BATCH:
                break
            await asyncio.sleep(0)  # let the service breathe between batches
        if runs or events:
            log.info("retention: forgot %d finished run(s) and %d delivered event(s)", runs, events)
        return runs, events

    async def _run(self) -> None:
        while True:
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception:  # a failed sweep is retried at the next one; nothing is lost
                log.exception("retention sweep failed")
            await asyncio.sleep(self.every)
