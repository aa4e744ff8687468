"""`job-executor serve`: wires sources, dispatcher, pipeline, backend, outbox and sinks, and
stops gracefully on SIGTERM (stop accepting, finish submits, keep state, exit)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import time

from aiohttp import web
from nats.aio.client import Client

from executor.backends.base import Backend
from executor.backends.kubernetes import KubernetesBackend
from executor.backends.local import LocalBackend
from executor.dispatcher import Dispatcher
from executor.metrics import Metrics
from executor.natsclient import connect as nats_connect
from executor.outbox import Outbox
from executor.pipeline import Pipeline
from executor.policy import warn_if_open
from executor.render import RenderOptions
from executor.resolver import LocalTreeResolver
from executor.settings import Settings
from executor.sinks.base import Sink
from executor.sinks.http import HttpSink
from executor.sinks.nats import NatsSink
from executor.sinks.stdout import StdoutSink
from executor.sources.http import HttpSource
from executor.sources.nats import NatsSource
from executor.state import StateStore

log = logging.getLogger(__name__)


def make_backend(settings: Settings) -> Backend:
    if settings.backend == "kubernetes":
        options = RenderOptions(
            init_image=settings.init_container_image,
            files_source="keptn" if settings.config_source == "keptn" else "configmap",
            keptn_api_url=settings.keptn_api_endpoint,
            keptn_token_secret=settings.keptn_api_token_secret,
        )
        return KubernetesBackend(options, namespaces=(settings.job_namespace,))
    return LocalBackend(settings.state_dir / "work", settings.local_secrets_dir)


def add_sinks(settings: Settings, sinks: dict[str, Sink], nats_client: Client | None) -> None:
    if settings.sink_url:
        sinks["http"] = HttpSink(settings.sink_url)
    if nats_client is not None and settings.nats_publish:
        sinks["nats"] = NatsSink(nats_client, jetstream=settings.nats_jetstream)
    if not sinks:
        sinks["stdout"] = StdoutSink()


class Service:
    def __init__(self, settings: Settings, backend: Backend | None = None) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.store = StateStore(settings.state_dir / "state.db")
        self.backend = backend or make_backend(settings)
        self.sinks: dict[str, Sink] = {}
        self.outbox = Outbox(self.store, self.sinks, self.metrics)
        self.nats: Client | None = None
        self.nats_source: NatsSource | None = None
        self.pipeline = Pipeline(
            settings,
            LocalTreeResolver(settings.config_dir),
            self.backend,
            self.store,
            self.outbox,
            self.metrics,
        )
        self.dispatcher = Dispatcher(
            self.store,
            self.pipeline.handle,
            concurrency=settings.max_concurrent_runs,
            queue_size=settings.queue_size,
            metrics=self.metrics,
        )
        self.metrics.gauge("job_executor_outbox_pending", lambda: float(self.store.pending_outbox()))
        self.http = HttpSource(
            self.dispatcher,
            self.metrics,
            path=settings.rcv_path,
            max_body=settings.max_body_bytes,
            token=settings.rcv_auth_token,
        )
        self._runner: web.AppRunner | None = None
        self.port = settings.rcv_port

    async def start(self) -> None:
        warn_if_open(self.settings.allowed_image_list)
        await self.backend.start()
        if self.settings.nats_url:
            self.nats = await nats_connect(self.settings.nats_url)
        add_sinks(self.settings, self.sinks, self.nats)
        await self.outbox.start()
        await self.dispatcher.start()
        if self.nats is not None:
            s = self.settings
            self.nats_source = NatsSource(
                self.nats,
                self.dispatcher.offer,
                s.nats_subjects,
                queue_group=s.nats_queue_group,
                jetstream=s.nats_jetstream,
                stream=s.nats_stream,
                ack_wait=float(s.nats_ack_wait_seconds),
            )
            await self.nats_source.start()
        self._runner = web.AppRunner(self.http.app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.settings.rcv_host, self.settings.rcv_port)
        await site.start()
        if self._runner.addresses:  # with port 0, the one the OS chose
            self.port = int(self._runner.addresses[0][1])
        log.info(
            "job-executor listening on http://%s:%d%s (backend %s, configs %s)",
            self.settings.rcv_host,
            self.port,
            self.settings.rcv_path,
            self.backend.name,
            self.settings.config_dir,
        )

    async def stop(self) -> None:
        deadline = time.monotonic() + self.settings.shutdown_grace_seconds
        if self.nats_source is not None:
            await self.nats_source.stop()
        self.dispatcher.close()
        log.info("stopping: no new events; finishing submits already under way")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                self.pipeline.finish_submits(), timeout=max(0.0, deadline - time.monotonic())
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
        self.store.close()
        log.info("stopped")


async def serve(settings: Settings) -> None:
    service = Service(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await service.start()
    print(
        f"job-executor: serving on http://{settings.rcv_host}:{service.port}{settings.rcv_path}",
        file=sys.stderr,
        flush=True,
    )
    await stop.wait()
    await service.stop()
