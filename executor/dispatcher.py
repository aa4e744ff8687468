"""Dispatcher: dedup by (source, id), a bounded queue, a concurrency limit, graceful stop.

`offer` answers at once (the HTTP source turns the answer into 202, 429 ...); an event is
accepted only after its row is committed, and every accepted event that is not done is taken
up again on the next start. Each event taken from the queue runs in a task of its own, in one
of MAX_CONCURRENT_RUNS seats (seats.py), which it gives back while it waits at an action's
concurrency gate.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from executor.model.errors import Temporary
from executor.model.events import Event, Offer, stored_event
from executor.seats import Seat, Seats, sit
from executor.state import StateStore
from executor.support.backoff import EVENT_RETRY
from executor.support.crashpoints import crash_point
from executor.support.logs import step
from executor.support.metrics import Metrics

log = logging.getLogger(__name__)


class TaskSlots:
    """At most `limit` tasks submitted and not yet ended, across all events and actions
    (MAX_CONCURRENT_TASKS; 0: no bound). MAX_CONCURRENT_RUNS counts events, and one event can
    start many tasks. Waiters are served strictly in arrival order, so a task keeps its place."""

    def __init__(self, limit: int, metrics: Metrics | None = None) -> None:
        self.limit = limit
        self.busy = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        if metrics is not None:
            metrics.gauge("job_executor_tasks_waiting", lambda: float(len(self._waiters)))
            metrics.gauge("job_executor_tasks_running", lambda: float(self.busy))

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        await self._acquire()
        try:
            yield
        finally:
            self._release()

    async def _acquire(self) -> None:
        if self.limit <= 0 or (self.busy < self.limit and not self._waiters):
            self.busy += 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        try:
            await future  # the releaser counted us in already
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self._release()  # handed a slot just as we were cancelled: pass it on
            else:
                self._waiters.remove(future)
            raise

    def _release(self) -> None:
        self.busy -= 1
        while self._waiters and (self.limit <= 0 or self.busy < self.limit):
            future = self._waiters.popleft()
            if not future.done():
                self.busy += 1
                future.set_result(None)


class Dispatcher:
    def __init__(
        self,
        store: StateStore,
        handler: Callable[[Event], Awaitable[object]],
        *,
        concurrency: int,
        queue_size: int,
        metrics: Metrics | None = None,
    ) -> None:
        self.store = store
        self.handler = handler
        self.concurrency = concurrency
        self.queue_size = queue_size
        self.metrics = metrics or Metrics()
        self._queue: asyncio.Queue[Event] = asyncio.Queue()
        self._seats = Seats(concurrency)
        self._intake: asyncio.Task[None] | None = None
        self._next: Event | None = None  # taken from the queue, waiting for a seat
        self._runs: set[asyncio.Task[None]] = set()
        self._closed = True
        self._attempts: dict[tuple[str, str], int] = {}
        self._retries: dict[tuple[str, str], asyncio.TimerHandle] = {}
        # Offered through `offer_all` in this loop turn, committed together at its end.
        self._group: list[tuple[Event, asyncio.Future[Offer]]] = []
        self._loop: asyncio.AbstractEventLoop | None = None  # the one `offer_all` was called on
        self.metrics.gauge("job_executor_queue_depth", lambda: float(self._queue.qsize()))
        self.metrics.gauge("job_executor_runs_in_flight", lambda: float(self._seats.taken))

    @property
    def accepting(self) -> bool:
        return not self._closed

    def room(self) -> int:
        """Events waiting count against QUEUE_SIZE: those in the queue, those offered in this loop
        turn and not yet committed, and those taken from the queue that wait without a seat (for
        one, or at an action's concurrency gate)."""
        seatless = len(self._runs) - self._seats.taken
        return self.queue_size - self._queue.qsize() - len(self._group) - (self._next is not None) - seatless

    def offer(self, event: Event) -> Offer:
        if self._closed:
            return Offer.CLOSED
        if self.room() <= 0:
            self.metrics.inc("job_executor_events_rejected_total", reason="queue_full")
            return Offer.FULL
        about = (event.type, event.project, event.stage, event.service)
        if not self.store.accept(event.source, event.id, event.to_json(), about):
            self.metrics.inc("job_executor_events_duplicate_total")
            return Offer.DUPLICATE
        crash_point("accepted")
        self.metrics.inc("job_executor_events_received_total")
        self._queue.put_nowait(event)
        log.info("event accepted", extra=step(event.source, event.id, type=event.type))
        return Offer.ACCEPTED

    async def offer_all(self, events: list[Event]) -> list[Offer]:
        """As `offer` for each event, answered once its row is committed, in one transaction
        with every event offered in the same turn of the event loop (group commit): under load
        one commit serves many requests, where `offer` commits each event on its own."""
        loop = self._loop
        if loop is None or not loop.is_running():  # asking costs a getpid call on Python 3.11
            loop = self._loop = asyncio.get_running_loop()
        answers: list[asyncio.Future[Offer]] = []
        for event in events:
            answer: asyncio.Future[Offer] = loop.create_future()
            if self._closed:
                answer.set_result(Offer.CLOSED)
            elif self.room() <= 0:
                self.metrics.inc("job_executor_events_rejected_total", reason="queue_full")
                answer.set_result(Offer.FULL)
            else:
                if not self._group:
                    loop.call_soon(self._commit_group)
                self._group.append((event, answer))
            answers.append(answer)
        # One commit answers them all: awaited in turn, without gather's task and callbacks.
        return [await answer for answer in answers]

    def _commit_group(self) -> None:
        group, self._group = self._group, []
        rows = [(e.source, e.id, e.to_json(), (e.type, e.project, e.stage, e.service)) for e, _ in group]
        try:
            fresh = self.store.accept_all(rows)
        except Exception as exc:  # the database failed: no event of the group was accepted
            for _, answer in group:
                if not answer.done():
                    answer.set_exception(exc)
            return
        crash_point("accepted")
        accepted = []
        for (event, answer), new in zip(group, fresh, strict=True):
            if new:
                self.metrics.inc("job_executor_events_received_total")
                accepted.append(event)
            else:
                self.metrics.inc("job_executor_events_duplicate_total")
            # A sender stopped waiting (its connection closed) changes nothing: the row is in.
            if not answer.done():
                answer.set_result(Offer.ACCEPTED if new else Offer.DUPLICATE)
        # Queued after the answers are set, so each sender's handler resumes (and closes its
        # `receive` span) before a worker takes the event up.
        for event in accepted:
            self._queue.put_nowait(event)
            log.info("event accepted", extra=step(event.source, event.id, type=event.type))

    async def start(self) -> int:
        """Resume what was accepted but not finished, then start the workers."""
        resumed = 0
        for text in self.store.unfinished_runs():
            self._queue.put_nowait(stored_event(text))
            resumed += 1
        if resumed:
            log.info("resuming %d event(s) accepted before the last stop", resumed)
        self._intake = asyncio.create_task(self._take(), name="intake")
        self._closed = False
        return resumed

    async def _take(self) -> None:
        """Seats the events of the queue in order, each in a task of its own."""
        while True:
            event = self._next = await self._queue.get()
            if self._closed:  # stopping: leave it unfinished in the state, resumed on the next start
                self._next = None
                self._queue.task_done()
                continue
            seat = Seat(self._seats)
            try:
                await seat.take()
            except BaseException:
                seat.close()  # stopping: later events must not wait for this one's actions
                raise
            self._next = None
            run = asyncio.create_task(self._run(event, seat), name=f"run-{event.id}")
            self._runs.add(run)
            await asyncio.sleep(0)  # a queue of events that need no await must not hold the loop

    async def _run(self, event: Event, seat: Seat) -> None:
        sit(seat)
        try:
            await self.handler(event)
            self.store.set_run_state(event.source, event.id, "done")
            crash_point("event.done")
            log.info("event done", extra=step(event.source, event.id, type=event.type))
            self._attempts.pop((event.source, event.id), None)
        except asyncio.CancelledError:
            raise  # stopping: the run stays unfinished and resumes on the next start
        except Temporary as exc:
            self._retry(event, exc)
        except Exception:
            log.exception("event %s from %s could not be handled", event.id, event.source)
            self.store.set_run_status(event.source, event.id, "errored")
            self.store.set_run_state(event.source, event.id, "done")
        finally:
            seat.close()
            if (task := asyncio.current_task()) is not None:
                self._runs.discard(task)  # now, not in a callback: room() counts it no more
            self._queue.task_done()

    def _retry(self, event: Event, exc: Temporary) -> None:
        key = (event.source, event.id)
        attempt = self._attempts.get(key, 0) + 1
        self._attempts[key] = attempt
        delay = EVENT_RETRY.delay(attempt - 1) if exc.delay is None else exc.delay
        log.warning(
            "event %s from %s: %s; trying again in %.0f s (attempt %d)",
            event.id,
            event.source,
            exc,
            delay,
            attempt,
        )
        self._retries[key] = asyncio.get_running_loop().call_later(delay, self._requeue, key, event)

    def _requeue(self, key: tuple[str, str], event: Event) -> None:
        self._retries.pop(key, None)
        if not self._closed:
            self._queue.put_nowait(event)

    def close(self) -> None:
        """Stop accepting new events (the first step of a graceful stop)."""
        self._closed = True

    async def stop(self, grace: float) -> None:
        """Give in-flight runs `grace` seconds, then interrupt them (they resume on restart)."""
        self.close()
        if grace > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._queue.join(), timeout=grace)
        for handle in self._retries.values():
            handle.cancel()  # still unfinished in the state: resumed on the next start
        tasks = [*self._runs, *([self._intake] if self._intake else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def join(self) -> None:
        await self._queue.join()
