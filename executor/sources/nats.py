"""NATS source: CloudEvents from subjects such as `sh.keptn.event.>`, shared by replicas through
a queue group. Structured JSON (as Keptn publishes them, without headers, or with a Content-Type
header `application/cloudevents...`) and binary mode (attributes in `ce-` headers), as the
CloudEvents NATS protocol binding 1.0.1 section 3 has it, validated as HTTP validates them.

Plain NATS delivers at most once. With JetStream (opt-in) a durable pull consumer is used and a
message is acknowledged only once the dispatcher has durably accepted it (or knows it), so a
crash before that means redelivery, and redelivery is deduplicated by (source, id). A new
durable consumer starts with new messages (or where NATS_DELIVER_POLICY says); one that exists
keeps its place.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.client import JetStreamContext
from nats.js.errors import NotFoundError

from executor.model.events import Event, EventError, Offer, event_from_json
from executor.sources.base import Offering
from executor.sources.binding import Mode, binary_event, content_mode, has_ce_headers
from executor.support import tracing
from executor.support.metrics import Metrics

log = logging.getLogger(__name__)

FULL_RETRY_SECONDS = 0.2
PAUSE_CHECK_SECONDS = 0.1
DEFAULT_STREAM = "JOB_EXECUTOR"


class NatsSource:
    def __init__(
        self,
        client: Client,
        offer: Offering,
        subjects: tuple[str, ...],
        *,
        metrics: Metrics | None = None,
        queue_group: str = "job-executor",
        jetstream: bool = False,
        stream: str = "",
        durable: str = "",
        ack_wait: float = 30.0,
        batch: int = 64,
        deliver: str = "new",
        max_attribute_bytes: int | None = None,
        paused: Callable[[], int | None] | None = None,
    ) -> None:
        self.client = client
        # While this answers a number (the clusters' admission holds tasks back), intake pauses:
        # JetStream is not pulled (it keeps the messages), plain NATS callbacks hold back.
        self.paused = paused
        self.pausing = False
        self.offer = offer
        self.subjects = subjects
        self.queue_group = queue_group
        self.jetstream = jetstream
        self.stream = stream
        self.durable = durable or queue_group
        self.ack_wait = ack_wait
        self.batch = batch
        self.deliver = deliver
        self.max_attribute_bytes = max_attribute_bytes
        self.metrics = metrics or Metrics()
        self.metrics.gauge("job_executor_intake_paused", lambda: 1.0 if self.pausing else 0.0)
        self._tasks: list[asyncio.Task[None]] = []
        self._subs: list[object] = []
        self.received = 0

    async def start(self) -> None:
        if self.jetstream:
            await self._start_jetstream()
        else:
            for subject in self.subjects:
                self._subs.append(
                    await self.client.subscribe(subject, queue=self.queue_group, cb=self._on_message)
                )
            await self.client.flush()  # the server has the subscriptions before we report ready
        log.info(
            "NATS: subscribed to %s (queue group %s%s)",
            ", ".join(self.subjects),
            self.queue_group,
            ", JetStream" if self.jetstream else "",
        )

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for sub in self._subs:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()  # type: ignore[attr-defined]

    # ---- plain NATS: no acknowledgement exists, so wait for room rather than drop ----
    async def _on_message(self, msg: Msg) -> None:
        event = self._parse(msg)
        if event is None:
            return
        # Blocking this callback holds back the subscription: backpressure without dropping.
        await self._while_paused()
        with tracing.receive(event.attributes, "nats"):
            while self.offer(event) is Offer.FULL:  # noqa: ASYNC110 - the dispatcher signals no room event
                await asyncio.sleep(FULL_RETRY_SECONDS)

    async def _while_paused(self) -> None:
        """Return once the clusters admit Jobs again (at once when they do)."""
        if self.paused is None or self.paused() is None:
            return
        if not self.pausing:
            log.info("NATS: intake paused while the clusters admit no more Jobs")
        self.pausing = True
        while self.paused() is not None:  # noqa: ASYNC110 - admission signals no event across layers
            await asyncio.sleep(PAUSE_CHECK_SECONDS)
        self.pausing = False
        log.info("NATS: intake resumed")

    # ---- JetStream ----
    async def _start_jetstream(self) -> None:
        js = self.client.jetstream()
        try:
            stream = await js.find_stream_name_by_subject(self.subjects[0])
        except NotFoundError:
            # No stream holds these subjects yet (a Keptn install usually has one): make ours.
            stream = self.stream or DEFAULT_STREAM
            await js.add_stream(name=stream, subjects=list(self.subjects))
            log.info("NATS: created JetStream stream %s for %s", stream, ", ".join(self.subjects))
        policy, start = _deliver_from(self.deliver)
        config = ConsumerConfig(
            deliver_policy=policy,
            opt_start_time=start,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=self.ack_wait,
            filter_subjects=list(self.subjects) if len(self.subjects) > 1 else None,
        )
        sub: JetStreamContext.PullSubscription = await js.pull_subscribe(
            self.subjects[0], durable=self.durable, stream=stream, config=config
        )
        self._subs.append(sub)
        self._tasks.append(asyncio.create_task(self._pull(sub), name="nats-pull"))

    async def _pull(self, sub: JetStreamContext.PullSubscription) -> None:
        failures = 0
        while True:
            await self._while_paused()  # not pulling: JetStream keeps the messages meanwhile
            try:
                messages = await sub.fetch(self.batch, timeout=1)
            except (NatsTimeout, TimeoutError):
                continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # disconnected: nats-py reconnects; try again shortly
                failures += 1
                # A blip is normal while reconnecting; a fetch that keeps failing is not.
                level = logging.WARNING if failures % 20 == 1 else logging.DEBUG
                log.log(
                    level,
                    "NATS: fetching from the JetStream consumer failed (%d in a row): %s",
                    failures,
                    exc,
                )
                await asyncio.sleep(0.5)
                continue
            failures = 0
            for msg in messages:
                try:
                    await self._handle_jetstream(msg)
                except asyncio.CancelledError:
                    raise
                except Exception:  # one message must never stop the intake of all others
                    log.exception(
                        "NATS: could not handle a message on %s; it will be redelivered", msg.subject
                    )

    async def _handle_jetstream(self, msg: Msg) -> None:
        event = self._parse(msg)
        if event is None:
            await msg.term()  # a malformed message would fail the same way on every redelivery
            return
        with tracing.receive(event.attributes, "nats"):
            answer = self.offer(event)
        if answer in (Offer.ACCEPTED, Offer.DUPLICATE):
            await msg.ack()
        else:  # queue full or stopping: let JetStream deliver it again later
            await msg.nak(delay=1.0)

    def _parse(self, msg: Msg) -> Event | None:
        self.received += 1
        try:
            return parse_message(msg.headers or {}, msg.data, self.max_attribute_bytes)
        except EventError as exc:
            self.metrics.inc("job_executor_events_rejected_total", reason="malformed")
            log.warning("NATS: dropping a malformed message on %s: %s", msg.subject, exc)
            return None


def parse_message(headers: dict[str, str], body: bytes, max_attribute_bytes: int | None) -> Event:
    """nats-protocol-binding.md 3: a Content-Type `application/cloudevents...` is structured mode
    whatever else is there; otherwise `ce-` headers are binary mode; a message with neither (as
    Keptn publishes them: keptn/go-utils pkg/sdk/connector/nats) is structured JSON."""
    content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), None)
    mode = content_mode(content_type)
    if mode is Mode.BATCH:
        raise EventError("the NATS binding has no batch mode: publish one event per message")
    if mode is Mode.BINARY and has_ce_headers(headers):
        plain = {k: v for k, v in headers.items() if k.lower() != "content-type"}
        if "ce-datacontenttype" not in {k.lower() for k in headers} and content_type:
            plain["ce-datacontenttype"] = content_type  # a lone Content-Type still says what the data is
        return binary_event(plain, body, None, max_attribute_bytes)
    return event_from_json(body, max_attribute_bytes)


def _deliver_from(policy: str) -> tuple[DeliverPolicy, datetime | None]:
    """NATS_DELIVER_POLICY as consumer settings. `new` by default: Keptn's own stream keeps every
    event ever published, and a first start must not replay its history."""
    if policy == "all":
        return DeliverPolicy.ALL, None
    if policy == "new":
        return DeliverPolicy.NEW, None
    return DeliverPolicy.BY_START_TIME, datetime.fromisoformat(
        policy.replace("Z", "+00:00").replace("z", "+00:00")
    )
