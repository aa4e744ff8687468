"""`job-executor serve`: starts the parts wiring.py builds, in order, and stops them gracefully on
SIGTERM (stop accepting, finish submits, keep state, exit)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web
from nats.aio.client import Client

from executor import __version__
from executor.app import wiring
from executor.app.retention import Retention
from executor.backends.base import Backend, BackendError, LiveLogs
from executor.backends.kubernetes.admission import saturation
from executor.backends.kubernetes.clusters import MultiClusterBackend
from executor.backends.kubernetes.lease import LeaderElector, LostLease
from executor.backends.naming import A_EVENT
from executor.dispatcher import Dispatcher, TaskSlots
from executor.model.events import EventError, Offer, event_from_json
from executor.outbox import Outbox
from executor.pipeline import Pipeline
from executor.policy import check_allow_lists, check_operator_contexts, warn_if_open, warn_if_secrets_open
from executor.settings import Settings
from executor.sinks.base import Sink
from executor.sources.api import RunApi
from executor.sources.http import HttpSource
from executor.sources.keptn import KeptnPoller
from executor.sources.nats import NatsSource
from executor.state import StateStore
from executor.support import collector, logs, speedups, tracing
from executor.support.metrics import Metrics
from executor.support.natsclient import connect as nats_connect
from executor.ui import RunPage

log = logging.getLogger(__name__)


class Service:
    def __init__(self, settings: Settings, backend: Backend | None = None) -> None:
        settings.check()
        check_operator_contexts(settings.defaults, settings.jobs.allow_privileged)
        check_allow_lists(settings.jobs.allowed_images, settings.defaults.allowed_secrets)
        settings = settings.absolute()  # before anything keeps a path: tasks run elsewhere
        self.settings = settings
        self.metrics = Metrics()
        # One Keptn API client, shared by the config resolver, the poller and the sink.
        self.keptn = wiring.make_keptn_client(settings)
        self.poller: KeptnPoller | None = None
        self.store = StateStore(settings.state.dir / "state.db")
        self.backend = backend or wiring.make_backend(settings, self.store, self.metrics)
        self.sinks: dict[str, Sink] = {}
        self.outbox = Outbox(self.store, self.sinks, self.metrics)
        self.nats: Client | None = None
        self.nats_source: NatsSource | None = None
        self.pipeline = Pipeline(
            settings,
            wiring.make_resolver(settings, self.keptn),
            self.backend,
            self.store,
            self.outbox,
            self.metrics,
            # Jobs in a cluster fetch Keptn files in their init container; otherwise we carry them.
            stage_files=not (self.backend.name == "kubernetes" and settings.config.source == "keptn"),
            # Error logs go to Keptn the way answers do: through its API, or over NATS in-cluster.
            error_logs=settings.remote_plane or bool(settings.nats.url and settings.nats.publish),
        )
        self.pipeline.task_slots = TaskSlots(settings.dispatch.max_concurrent_tasks, self.metrics)
        self.dispatcher = Dispatcher(
            self.store,
            self.pipeline.handle,
            concurrency=settings.dispatch.max_concurrent_runs,
            queue_size=settings.dispatch.queue_size,
            metrics=self.metrics,
        )
        self.metrics.gauge("job_executor_outbox_pending", lambda: float(self.store.pending_outbox()))
        clusters = self.backend if isinstance(self.backend, MultiClusterBackend) else None
        self.clusters = clusters
        self.admissions = wiring.admissions(self.backend)
        self.metrics.gauge(
            "job_executor_tasks_waiting_for_admission",
            lambda: float(sum(a.waiting() for a in self.admissions)),
        )
        self.http = HttpSource(
            self.dispatcher,
            self.metrics,
            settings.receiver,
            not_ready=self._not_ready,
            detail=clusters.detail if clusters is not None else self._admission_detail(),
            saturated=self.saturated,
        )
        self.http.api = RunApi(
            self.store,
            self.dispatcher,
            self.http.allowed,
            live=self.backend.live_log if isinstance(self.backend, LiveLogs) else None,
            follow_seconds=0.5 if self.backend.name == "local" else 2.0,
        )
        self.http.ui = RunPage(settings.observe.ui, settings.receiver.host, settings.receiver.auth_token)
        self._runner: web.AppRunner | None = None
        self.elector: LeaderElector | None = None  # LEADER_ELECTION: set by serve()
        self.port = settings.receiver.port
        self.retention = Retention(self.store, self.backend, settings.state.retention_hours)

    async def start(self) -> None:
        warn_if_open(self.settings.jobs.allowed_images)
        warn_if_secrets_open(self.settings.defaults.allowed_secrets)
        await self.backend.start()
        if self.settings.nats.url:
            self.nats = await nats_connect(self.settings.nats.url)
        self.poller = wiring.make_poller(self.settings, self.keptn, self.dispatcher.offer)
        if self.poller is not None:
            poller = self.poller
            self.pipeline.integration_id = lambda: poller.integration_id
        wiring.add_sinks(self.settings, self.sinks, self.nats, self.keptn, self.poller)
        await self.outbox.start()
        await self.dispatcher.start()
        await self._adopt_orphans()
        self.retention.start()
        if self.poller is not None:
            self.poller.start()
        if self.nats is not None:
            self.nats_source = wiring.make_nats_source(
                self.settings, self.nats, self.dispatcher.offer, self.metrics, self.saturated
            )
            await self.nats_source.start()
        await self.start_http()
        # What is loaded by now (modules, the Kubernetes client's thousands of classes) lives as
        # long as the process. Frozen, it is left out of the collector's full passes, which
        # otherwise stall the event loop for 15-50 ms each (profiled under load, BENCHMARKS.md).
        gc.collect()
        gc.freeze()
        log.info(
            "job-executor listening on http://%s:%d%s (backend %s, configs %s)",
            self.settings.receiver.host,
            self.port,
            self.settings.receiver.path,
            self.backend.name,
            # In Keptn mode the configs come from the resource service, not the local tree.
            f"from the Keptn API {self.settings.keptn.api_endpoint}"
            if self.settings.config.source == "keptn"
            else self.settings.config.dir,
        )

    async def start_http(self) -> None:
        """Listen. A standby replica (LEADER_ELECTION) does only this until it leads: /healthz
        answers, /readyz says it stands by, so the Service sends it no events."""
        if self._runner is not None:
            return
        self._runner = self.http.runner()
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.settings.receiver.host, self.settings.receiver.port)
        await site.start()
        if self._runner.addresses:  # with port 0, the one the OS chose
            self.port = int(self._runner.addresses[0][1])

    def saturated(self) -> int | None:
        """Seconds a sender should hold back while the clusters' admission holds tasks back
        (the events queued count into the backlog), or None."""
        if not any(a.active for a in self.admissions):
            return None
        return saturation(self.admissions, self.dispatcher.queue_size - self.dispatcher.room())

    def _admission_detail(self) -> Callable[[], dict[str, Any]] | None:
        """/readyz detail of the one cluster's admission, when a limit is set."""
        active = [a for a in self.admissions if a.active]
        return (lambda: {"admission": active[0].detail()}) if active else None

    def _not_ready(self) -> str | None:
        if self.elector is not None and not self.elector.leading:
            holder = self.elector.holder or "nobody yet"
            return f"standing by: replica {holder} holds the leader Lease (LEADER_ELECTION)"
        if not self.dispatcher.accepting:
            return "not accepting events (stopping)"
        # A remote execution plane takes its work from the control plane: until it has
        # registered there (a wrong token, an unreachable API), it is not ready, so a rollout
        # with a broken setting does not replace pods that work.
        if self.poller is not None and self.poller.polling and not self.poller.registered:
            problem = self.poller.last_error or "registering"
            return f"not registered with the Keptn control plane: {problem}"
        if self.clusters is not None:
            return self.clusters.not_ready()
        return None

    async def reload_clusters(self) -> bool:
        """SIGHUP: read CLUSTERS_FILE again. A file that does not validate changes nothing; the
        log says why, line by line. Tasks already placed keep their cluster."""
        if self.clusters is None:
            log.info("SIGHUP: no CLUSTERS_FILE to reload")
            return False
        try:
            fresh = wiring.read_clusters_file(self.settings)
            self.clusters.reload(fresh)
        except ValueError as exc:
            log.error("SIGHUP: CLUSTERS_FILE not reloaded, the clusters stay as they were:\n%s", exc)
            return False
        await self.clusters.start_new()
        log.info("SIGHUP: clusters reloaded from %s: %s", fresh.source, ", ".join(fresh.names()))
        return True

    async def _adopt_orphans(self) -> None:
        """Tasks still running that the state does not know (it was lost, as an emptyDir is when a
        pod moves) are taken up again from the event their Job carries: the run re-submits,
        which adopts the running Job, and reports it when it ends. Known events are duplicates."""
        try:
            adopted = await self.backend.adopt()
        except BackendError as exc:
            # A 403 (the Role does not cover the namespace) or a refused list: the events in
            # the state still resume and re-submit; only orphans unknown to it wait for the
            # next start. Say so instead of refusing to serve.
            log.error("cannot list running tasks to adopt them: %s", exc)
            return
        for found in adopted:
            raw = found.annotations.get(A_EVENT)
            if not found.running or not raw:
                continue
            try:
                event = event_from_json(raw)
            except EventError:
                continue
            # Whoever ran it before may have sent its reports: check each with its sink first
            # (Keptn counts a second .started and would wait for a second .finished).
            self.store.reports_uncertain(event.id)
            if self.dispatcher.offer(event) is Offer.ACCEPTED:
                log.info(
                    "adopted running task %s of event %s (not in the state)", found.handle.name, event.id
                )

    async def stop(self) -> None:
        deadline = time.monotonic() + self.settings.dispatch.shutdown_grace_seconds
        if self.nats_source is not None:
            await self.nats_source.stop()
        if self.poller is not None:
            await self.poller.stop()
        self.dispatcher.close()
        if self.clusters is not None:
            self.clusters.stop_waiting()
        await self.retention.stop()
        log.info("stopping: no new events; finishing submits already under way")
        try:
            await asyncio.wait_for(
                self.pipeline.finish_submits(), timeout=max(0.0, deadline - time.monotonic())
            )
        except TimeoutError:
            log.warning(
                "stopping: SHUTDOWN_GRACE_SECONDS ran out with a submit under way; its event resumes "
                "at the next start and adopts what the submit created"
            )
        # Runs still waiting on tasks are interrupted here; their state is in SQLite and the
        # tasks keep running, to be adopted on the next start.
        await self.dispatcher.stop(grace=0)
        if self._runner is not None:
            await self._runner.cleanup()
        await self.outbox.stop(flush_seconds=max(0.1, min(5.0, deadline - time.monotonic())))
        await self.backend.close()
        if self.nats is not None:
            with contextlib.suppress(Exception):
                await self.nats.drain()
        if self.keptn is not None:
            await self.keptn.close()
        self.store.close()
        tracing.shutdown()  # after the outbox: its last deliveries' spans go too
        log.info("stopped")


async def serve(settings: Settings) -> None:
    logs.setup(settings.observe.log_format, settings.observe.log_level, settings.secret_values())
    tracing.setup(settings.observe.otlp_endpoint, settings.observe.service_name, __version__)
    log.info("speedups: %s", speedups.describe())
    service = Service(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    reloads: set[asyncio.Task[bool]] = set()

    def reload() -> None:
        task = asyncio.create_task(service.reload_clusters())
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    loop.add_signal_handler(signal.SIGHUP, reload)
    # A SIGTERM while starting (waiting for NATS, the cluster or the Lease) stops the start too.
    starting = asyncio.create_task(_start(service, settings))
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if not starting.done():
        starting.cancel()
        await asyncio.gather(starting, return_exceptions=True)
        await _stop(service)
        return
    stopping.cancel()
    try:
        starting.result()
    except (RuntimeError, OSError) as exc:  # no cluster config, port in use, NATS unreachable ...
        print(f"job-executor: cannot start: {exc}", file=sys.stderr, flush=True)
        await _stop(service)
        raise SystemExit(2) from None
    log.info("garbage collector: %s", collector.settle())
    print(
        f"job-executor: serving on http://{settings.receiver.host}:{service.port}{settings.receiver.path}",
        file=sys.stderr,
        flush=True,
    )
    waits: set[asyncio.Future[Any]] = {asyncio.ensure_future(stop.wait())}
    keeping = asyncio.ensure_future(service.elector.keep()) if service.elector is not None else None
    if keeping is not None:
        waits.add(keeping)
    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    for waiting in waits:
        waiting.cancel()
    await asyncio.gather(*waits, return_exceptions=True)
    if keeping is not None and keeping.done() and not keeping.cancelled():
        lost = keeping.exception()
        if isinstance(lost, LostLease):
            # Another replica may lead from now on: create nothing more, and exit so that the
            # restarted container stands by as a candidate again.
            log.error("no longer the leader: %s; stopping", lost)
            await _stop(service)
            raise SystemExit(1)
    await _stop(service)


async def _start(service: Service, settings: Settings) -> None:
    """Start; with LEADER_ELECTION listen first (standing by, unready) and start the rest once
    this replica holds the Lease. Events in its own state resume then; Jobs a lost leader left
    running are adopted from the cluster (their Job carries the event)."""
    if settings.kubernetes.leader_election:
        service.elector = await wiring.make_elector(settings)
        service.metrics.gauge(
            "job_executor_leader", lambda: 1.0 if service.elector and service.elector.leading else 0.0
        )
        await service.start_http()
        await service.elector.acquire()
    await service.start()


async def _stop(service: Service) -> None:
    await service.stop()
    if service.elector is not None:
        await service.elector.release()  # the next replica takes over at once, not after the lease
        await service.elector.api.api_client.close()
