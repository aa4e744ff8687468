"""Remote execution plane: take triggered events from the Keptn control plane over its HTTP API.

What the Keptn Go SDK does in this mode, and we do too (go-utils
``pkg/sdk/connector/controlplane/controlplane.go``, ``subscriptionsource/subscriptionsource.go``,
``eventsource/http/http.go``): register the integration (name, version, subscriptions) with the
shipyard controller, renew the registration with a ping (whose answer carries the current
subscriptions, which users may edit in the Bridge), and poll
``/controlPlane/v1/event/triggered/{type}`` for every subscription, narrowed by its filter when it
names exactly one project, stage or service. A polled event is offered to the dispatcher, which
dedups by (source, id); ids offered recently are also remembered here so the same open event is
not offered on every poll.

Failures never end the loop: an unreachable control plane is retried with growing pauses, and a
refused token (401/403) is logged once, clearly, and retried only after a long pause, so the
service keeps serving its health endpoints instead of crash-looping.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from executor import __version__
from executor.keptn.api import KeptnAPI, KeptnAuthError, KeptnError, KeptnRequestError
from executor.keptn.models import IntegrationMetadata, Subscription
from executor.model.events import ATTRIBUTE_NAME, Event, EventError, Offer, event_from_mapping
from executor.sources.base import Offering
from executor.support import tracing
from executor.support.background import stop_task
from executor.support.backoff import KEPTN_POLL_CAP, Backoff

log = logging.getLogger(__name__)

INTEGRATION_NAME = "job-executor"


class KeptnPoller:
    def __init__(
        self,
        api: KeptnAPI,
        offer: Offering,
        *,
        subscriptions: Sequence[str | Subscription],
        metadata: IntegrationMetadata | None = None,
        name: str = INTEGRATION_NAME,
        version: str = __version__,
        poll_interval: float = 10.0,
        renew_interval: float = 30.0,
        retry_max: float = KEPTN_POLL_CAP,
        auth_backoff: float = 300.0,
        remember: int = 10_000,
        polling: bool = True,
    ) -> None:
        self.api = api
        self.offer = offer
        self.configured = [s if isinstance(s, Subscription) else Subscription(s) for s in subscriptions]
        if not self.configured:
            raise ValueError("the Keptn poller needs at least one event type to subscribe to")
        self.metadata = metadata or IntegrationMetadata.from_env()
        self.name = name
        self.version = version
        self.poll_interval = poll_interval
        self.renew_interval = renew_interval
        # After a failed round: the poll interval, doubled per failure up to retry_max.
        self.backoff = Backoff(base=poll_interval, cap=retry_max)
        self.auth_backoff = auth_backoff
        self.remember = remember
        # False in NATS mode: events come over NATS, but the integration still registers and
        # renews, as the Go SDK does in both modes, so Keptn's Bridge lists it.
        self.polling = polling
        self.integration_id: str | None = None
        self.subscriptions: list[Subscription] = list(self.configured)
        self.last_error = ""
        self.auth_failed = False
        self.polls = 0
        self._recent: OrderedDict[str, None] = OrderedDict()
        self._renewed_at = 0.0
        self._failures = 0
        self._task: asyncio.Task[None] | None = None

    # ---- lifecycle ----

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self.run(), name="keptn-poller")

    async def stop(self) -> None:
        await stop_task(self._task)
        self._task = None

    @property
    def registered(self) -> bool:
        return self.integration_id is not None

    def status(self) -> dict[str, Any]:
        """For health/readiness endpoints: registered, the integration id, the last problem."""
        return {
            "registered": self.registered,
            "integration_id": self.integration_id or "",
            "subscriptions": [s.event for s in self.subscriptions],
            "auth_failed": self.auth_failed,
            "last_error": self.last_error,
            "polls": self.polls,
        }

    async def run(self) -> None:
        """Register, renew and poll until cancelled; never raises anything else."""
        while True:
            try:
                await self.step()
            except asyncio.CancelledError:
                raise
            except KeptnAuthError as exc:
                self._auth_problem(exc)
                await asyncio.sleep(self.auth_backoff)
                continue
            except KeptnRequestError as exc:
                # Our request was refused (e.g. a malformed subscription): a config problem that
                # a quick retry cannot fix.
                self._problem(f"the Keptn control plane refused a request: {exc}", logging.ERROR)
                await asyncio.sleep(self.auth_backoff)
                continue
            except KeptnError as exc:
                self._failures += 1
                self._problem(str(exc), logging.WARNING)
                await asyncio.sleep(self.backoff.delay(self._failures))
                continue
            except Exception as exc:  # a bug must not stop the source; log it and go on
                self._failures += 1
                log.exception("Keptn poller: unexpected error")
                self.last_error = f"{exc.__class__.__name__}: {exc}"
                await asyncio.sleep(self.backoff.delay(self._failures))
                continue
            self._recovered()
            await asyncio.sleep(self.poll_interval)

    # ---- one round ----

    async def step(self) -> None:
        """One round: (re-)register or renew when due, then poll every subscription once."""
        now = time.monotonic()
        if self.integration_id is None:
            await self.register()
        elif now - self._renewed_at >= self.renew_interval:
            await self.renew()
        self._recovered()
        if self.integration_id is not None and self.polling:
            await self.poll()

    async def register(self) -> str:
        self.integration_id = await self.api.register(self.name, self.version, self.configured, self.metadata)
        self._renewed_at = time.monotonic()
        log.info(
            "registered with the Keptn control plane at %s as %s (id %s), subscribed to %s",
            self.api.endpoint,
            self.name,
            self.integration_id,
            ", ".join(s.event for s in self.configured),
        )
        return self.integration_id

    async def renew(self) -> None:
        assert self.integration_id is not None
        integration = await self.api.ping(self.integration_id)
        self._renewed_at = time.monotonic()
        if integration is None:
            log.warning("Keptn no longer knows registration %s; registering again", self.integration_id)
            self.integration_id = None
            await self.register()
            return
        current = [
            s for s in map(Subscription.from_json, integration.get("subscriptions") or []) if s is not None
        ]
        if current and current != self.subscriptions:
            log.info("Keptn subscriptions are now: %s", ", ".join(s.event for s in current))
        self.subscriptions = current or list(self.configured)

    async def poll(self) -> int:
        """Offer every new open triggered event; returns how many were accepted."""
        self.polls += 1
        accepted = 0
        for sub in list(self.subscriptions):
            events = await self.api.triggered_events(
                sub.event,
                project=_only(sub.projects),
                stage=_only(sub.stages),
                service=_only(sub.services),
            )
            for raw in events:
                if not _in_filter(sub, raw):
                    continue
                outcome = self._offer(raw)
                if outcome in (Offer.FULL, Offer.CLOSED):
                    return accepted  # the rest stays open in Keptn and comes back on the next poll
                accepted += outcome is Offer.ACCEPTED
        return accepted

    def _offer(self, raw: dict[str, Any]) -> Offer | None:
        event_id = str(raw.get("id") or "")
        if not event_id or event_id in self._recent:
            return None
        try:
            event = event_from_keptn(raw)
        except EventError as exc:
            log.warning(
                "skipping an event from Keptn that is not a valid CloudEvent (id %s): %s", event_id, exc
            )
            self._remember(event_id)
            return None
        with tracing.receive(event.attributes, "keptn"):
            outcome = self.offer(event)
        if outcome is Offer.ACCEPTED:
            log.info("took %s %s from the Keptn control plane", event.type, event.id)
        if outcome in (Offer.ACCEPTED, Offer.DUPLICATE):
            self._remember(event_id)
        return outcome

    def _remember(self, event_id: str) -> None:
        self._recent[event_id] = None
        while len(self._recent) > self.remember:
            self._recent.popitem(last=False)

    # ---- reporting problems once ----

    def _auth_problem(self, exc: KeptnAuthError) -> None:
        if not self.auth_failed:
            log.error(
                "%s; the Keptn poller pauses %g s between attempts until it is accepted",
                exc,
                self.auth_backoff,
            )
        self.auth_failed = True
        self.last_error = str(exc)
        self.integration_id = None  # register again once the token is accepted

    def _problem(self, message: str, level: int) -> None:
        if message != self.last_error:
            log.log(level, "Keptn poller: %s", message)
        self.last_error = message

    def _recovered(self) -> None:
        if self.auth_failed:
            log.info("the Keptn control plane accepts the token again")
        elif self.last_error:
            log.info("the Keptn control plane answers again")
        self.auth_failed = False
        self.last_error = ""
        self._failures = 0


def event_from_keptn(raw: dict[str, Any]) -> Event:
    """A Keptn event (KeptnContextExtendedCE JSON) as an Event.

    Keptn stores events without `specversion` sometimes, names the content type `contenttype`,
    and may carry an `extensions` object; those are normalised before the usual validation.
    """
    doc: dict[str, Any] = {}
    extensions = raw.get("extensions")
    if isinstance(extensions, dict):
        for key, value in extensions.items():
            if (
                isinstance(key, str)
                and ATTRIBUTE_NAME.match(key)
                and isinstance(value, (str, int, float, bool))
            ):
                doc[key] = value
    for key, value in raw.items():
        if key == "extensions" or value is None or value == "":
            continue
        doc[key] = value
    doc.setdefault("specversion", "1.0")
    if "datacontenttype" not in doc:
        doc["datacontenttype"] = str(doc.get("contenttype") or "application/json")
    return event_from_mapping(doc)


def _in_filter(sub: Subscription, raw: dict[str, Any]) -> bool:
    """The subscription's filter, checked here too: Keptn's query narrows only single values."""
    data = raw.get("data")
    if not isinstance(data, dict):
        data = {}
    for allowed, key in ((sub.projects, "project"), (sub.stages, "stage"), (sub.services, "service")):
        if allowed and data.get(key) not in allowed:
            return False
    return True


def _only(values: tuple[str, ...]) -> str:
    return values[0] if len(values) == 1 else ""
