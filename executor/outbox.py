"""Delivers the persisted outbox to the sinks, retrying with exponential backoff.

A report is written to the outbox (SQLite) in the same step that decides it, so a crash
between a job's end and the delivery of its finished event loses nothing: the next start
delivers what is still pending. Order is kept per sink within the reports of one event (its
started before its finished); a report that waits for a retry holds back only those, and one
the receiver refuses (Permanent) goes to the dead letters at once. An attempt that may have
reached the receiver is checked with it (Confirming) before the event is sent again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Mapping
from typing import Literal, Protocol, runtime_checkable

from executor.model.errors import Permanent, Temporary
from executor.model.events import OutEvent
from executor.sinks.base import Sink
from executor.state import OutboxItem, StateStore
from executor.support import fastjson, tracing
from executor.support.background import stop_task
from executor.support.backoff import DELIVERY
from executor.support.crashpoints import crash_point, report_phase
from executor.support.logs import step
from executor.support.metrics import Metrics

log = logging.getLogger(__name__)

MAX_DELAY = DELIVERY.cap
# About two hours of retries at the capped delay: an outage longer than that is an incident.
MAX_ATTEMPTS = 130


@runtime_checkable
class Confirming(Protocol):
    """A sink that can tell whether its receiver already has an event (the Keptn sink asks
    Keptn's event store). Asked before re-sending an event whose earlier attempt may have
    arrived: Keptn gives every accepted event a new id and does not deduplicate, and a second
    `.started` leaves its task waiting for a second `.finished` for ever."""

    async def already_has(self, event: OutEvent) -> bool: ...


def order_group(event: Mapping[str, object]) -> str:
    """Reports are ordered within the event they answer (its id is their triggeredid) only."""
    return str(event.get("triggeredid") or "")


class Outbox:
    def __init__(self, store: StateStore, sinks: Mapping[str, Sink], metrics: Metrics | None = None) -> None:
        self.store = store
        self.sinks = sinks  # read at each delivery: the service adds sinks as it connects them
        self.metrics = metrics
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def put(self, event: OutEvent) -> None:
        self.store.enqueue(
            str(event["id"]),
            list(self.sinks),
            json.dumps(event, separators=(",", ":")),
            group=order_group(event),
        )
        self._wake.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="outbox")

    async def stop(self, flush_seconds: float = 5.0) -> None:
        """Try to deliver what is pending for a while, then leave the rest for the next start."""
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.drained(), timeout=flush_seconds)
        await stop_task(self._task)
        for sink in self.sinks.values():
            await sink.close()

    async def drained(self) -> None:
        while self.store.pending_outbox():
            self._wake.set()
            await asyncio.sleep(0.02)

    async def deliver_due(self) -> int:
        sent = 0
        waiting: set[tuple[str, str]] = set()
        progress = True
        while progress:  # a delivered or dead-lettered report lets the next of its event through
            progress = False
            # due() gives each (sink, event) its first pending report only, and one that waits for
            # a retry holds back the rest of its event's: nothing overtakes it.
            batch = [item for item in self.store.due() if (item.sink, item.group) not in waiting]
            # Every attempt of the batch is on disk before the first report leaves, in one commit
            # (one per report was two commits per event, most of the outbox's cost under load).
            for item in batch:
                self.store.sending(item)
            self.store.flush()
            for item in batch:
                result = await self._deliver(item)
                if result == "sent":
                    sent += 1
                elif result == "retry":
                    waiting.add((item.sink, item.group))
                progress = progress or result != "retry"
        return sent

    async def _deliver(self, item: OutboxItem) -> Literal["sent", "retry", "dropped"]:
        sink = self.sinks.get(item.sink)
        if sink is None:
            # Configured sinks changed since the item was queued; keep it, say why.
            self.store.retry_later(item, MAX_DELAY, f"sink {item.sink!r} is not configured")
            return "retry"
        event: OutEvent = fastjson.loads(item.payload)
        try:
            if item.uncertain and isinstance(sink, Confirming) and await self._arrived(sink, item, event):
                self.store.delivered(item)
                return "sent"
            crash_point(report_phase(event.get("type")) + ".sending")
            with tracing.delivery(event, item.sink):
                await sink.send(event)
            crash_point(report_phase(event.get("type")) + ".delivered")
        except Exception as exc:
            permanent = isinstance(exc, Permanent)
            if permanent or item.attempts + 1 >= MAX_ATTEMPTS:
                why = "refused" if permanent else f"failed {item.attempts + 1} times"
                log.error(
                    "giving up on event %s for %s (%s): %s",
                    item.event_id,
                    item.sink,
                    why,
                    exc,
                    extra=step("", str(event.get("triggeredid", "")), sink=item.sink, status="dead"),
                )
                self.store.give_up(item, str(exc))
                if self.metrics:
                    self.metrics.inc("job_executor_outbox_dead_total", sink=item.sink)
                return "dropped"
            delay = DELIVERY.delay(item.attempts)
            log.warning(
                "delivering %s to %s failed (attempt %d, retry in %.1fs): %s",
                item.event_id,
                item.sink,
                item.attempts + 1,
                delay,
                exc,
            )
            self.store.retry_later(item, delay, str(exc))
            if self.metrics:
                self.metrics.inc("job_executor_outbox_failures_total")
            return "retry"
        self.store.delivered(item)
        log.info(
            "report %s delivered to %s",
            event.get("type"),
            item.sink,
            extra=step("", str(event.get("triggeredid", "")), sink=item.sink, report_id=item.event_id),
        )
        if self.metrics:
            self.metrics.inc("job_executor_events_sent_total")
        return "sent"

    async def _arrived(self, sink: Confirming, item: OutboxItem, event: OutEvent) -> bool:
        """Whether an earlier attempt reached the receiver. When the receiver cannot say for
        good (it refuses the question), the event is sent again, with a warning."""
        try:
            found = await sink.already_has(event)
        except Temporary:
            raise  # ask again at the next attempt
        except Exception as exc:
            log.warning(
                "could not ask %s whether it already has event %s (%s); sending it again",
                item.sink,
                item.event_id,
                exc,
            )
            return False
        if found:
            log.info(
                "%s already has event %s from an attempt before a restart or time-out; not sent again",
                item.sink,
                item.event_id,
            )
        return found

    async def _run(self) -> None:
        while True:
            self._wake.clear()  # before delivering, so a put() during delivery is not missed
            await self.deliver_due()
            wait = self.store.next_due_in()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._wake.wait(), timeout=MAX_DELAY if wait is None else max(wait, 0.01)
                )
