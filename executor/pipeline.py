"""One event through resolver -> matcher -> planner -> backend -> reporter.

Every step is safe to repeat after a crash: a task's outcome is recorded before its action's
finished event is queued, submit is idempotent (a second submit adopts), and reports have
deterministic ids, so re-running `handle` for an event resumes it instead of repeating it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from executor import seats
from executor.backends.base import Backend, BackendError
from executor.backends.naming import spec_job_name
from executor.concurrency import Gate, Refused, claim_for
from executor.config.model import Action
from executor.dispatcher import TaskSlots
from executor.keptn.api import KeptnError
from executor.keptn.format import KEPTN_PREFIX, is_keptn_non_task_event, is_task_event
from executor.matcher import matching_actions
from executor.model.errors import Temporary
from executor.model.events import Event, OutEvent
from executor.model.problems import ConfigError, FilesError
from executor.model.tasks import EnvVar, TaskOutcome, TaskSpec
from executor.planner import PlanError, plan_action
from executor.policy import PolicyError
from executor.reporter import (
    ResultFormat,
    TaskReport,
    error_finished,
    error_log_event,
    finished,
    result_error,
    result_finished,
    result_started,
    started,
)
from executor.resolvers.base import InvalidNames, Resolved, Resolver
from executor.settings import Settings
from executor.state import StateStore
from executor.support import tracing
from executor.support.crashpoints import crash_point
from executor.support.logs import step
from executor.support.metrics import Metrics

log = logging.getLogger(__name__)


def answers(event: Event) -> bool:
    """Keptn expects started/finished answers to its `.triggered` task events only. Answering
    anything else would also answer our own events: over NATS, each answer would trigger the next."""
    return is_task_event(event.type) and event.type.endswith(".triggered")


def answers_generic(event: Event, results: ResultFormat) -> bool:
    """Events outside Keptn's namespace get result events (`<prefix>.started|finished`), except
    our own result events: answering those would answer every answer again. Keptn's other events
    keep Keptn's contract (nothing is answered; its API refuses unknown types)."""
    return not event.type.startswith(KEPTN_PREFIX) and not results.is_ours(event.type)


class Reports(Protocol):
    def put(self, event: OutEvent) -> None: ...


class Pipeline:
    def __init__(
        self,
        settings: Settings,
        resolver: Resolver,
        backend: Backend,
        store: StateStore,
        reports: Reports,
        metrics: Metrics | None = None,
        stage_files: bool = True,
        error_logs: bool = False,
    ) -> None:
        self.settings = settings
        self.resolver = resolver
        self.backend = backend
        self.store = store
        self.reports = reports
        self.metrics = metrics or Metrics()
        # The local backend and ConfigMap staging need the bytes; Keptn-sourced Jobs fetch them.
        self.stage_files = stage_files
        # Tell the Keptn control plane (an sh.keptn.log.error event) about events that find no
        # config, as Keptn integrations do, even when no finished event is sent for them.
        self.error_logs = error_logs
        # The integration's Keptn registration id, for error log events (set by the service once
        # it registers; the Keptn sink fills in an empty one, a NATS receiver cannot).
        self.integration_id: Callable[[], str | None] = lambda: None
        self.results = ResultFormat(settings.reporting.result_type_prefix, settings.reporting.result_source)
        self._submits: set[asyncio.Future[Any]] = set()
        # MAX_CONCURRENT_TASKS: a task waits here, in order, before it is submitted.
        self.task_slots = TaskSlots(0)
        # The actions' `concurrency`: a run waits here for a slot of its key, after planning.
        self.gate = Gate(store, backend.cancel, self.metrics)

    async def handle(self, event: Event) -> bool:
        """Run everything the event triggers; True when no task failed."""
        with tracing.handling(event.attributes):
            return await self._handle(event)

    async def _handle(self, event: Event) -> bool:
        if is_keptn_non_task_event(event.type):
            # Keptn's sequence events and the like: JES (through Keptn's Go SDK) runs nothing for
            # them, and the api-service refuses answers to them.
            log.debug("ignoring %s %s: not a Keptn task event", event.type, event.id)
            return True
        if answers(event):
            missing = [
                name
                for name, value in (
                    ("shkeptncontext", event.attribute("shkeptncontext")),
                    ("data.project", event.project),
                )
                if not value
            ]
            if missing:
                # Keptn cannot match an answer to a task without them (shipyard-controller
                # handleTaskEvent: project + shkeptncontext + triggeredid): say so, answer nothing.
                what = ", ".join(missing)
                log.warning(
                    "event %s %s from %s lacks %s: Keptn could not match an answer to a task; "
                    "nothing is run for it",
                    event.type,
                    event.id,
                    event.source,
                    what,
                )
                return False
        try:
            with tracing.span("resolve"):
                resolved = await self.resolver.resolve(event)
        except Temporary:
            raise  # the dispatcher tries the event again later
        except InvalidNames as exc:
            log.warning("refused event %s %s: %s", event.type, event.id, exc)
            self._error(event, "names", f"Refused: {exc}")
            return False
        except ConfigError as exc:
            log.warning("invalid job config for %s: %s", event.type, exc)
            self._error(event, "config", f"Invalid job config: {exc}")
            return False
        except KeptnError as exc:  # the resource service answered nonsense: a clear line, no traceback
            log.warning("reading the job config for event %s failed: %s", event.id, exc)
            self._error(event, "config", f"Could not read the job config: {exc}")
            return False
        except Exception as exc:  # a bug: say so rather than go silent
            log.exception("reading the job config for event %s failed", event.id)
            self._error(event, "config", f"Could not read the job config: {exc}")
            return False
        if resolved is None:
            where = self.resolver.describe(event)
            log.info(
                "no job config for event %s %s (looked at %s)",
                event.type,
                event.id,
                where,
                extra=step(event.source, event.id, type=event.type),
            )
            message = f"No job configuration found for this event (looked at {where})"
            if self.settings.reporting.always_send_finished_event:
                self._error(event, "config", message)
            elif self.error_logs and answers(event):
                self.reports.put(error_log_event(event, message, self.integration_id() or ""))
            return True
        with tracing.span("match"):
            actions = matching_actions(resolved.config, event)
        # A config is pinned when something runs under it, or ran under it before a restart: an
        # event that matches nothing costs no write here (most events, on a busy receiver).
        pinned = self.store.pinned_config(event.source, event.id)
        if actions or pinned is not None:
            pinned = self.store.pin_config(event.source, event.id, resolved.config.digest)
        if pinned is not None and pinned != resolved.config.digest:
            # Progress is kept by action and task position; under another config those
            # positions mean other tasks, so resuming could run the wrong ones or repeat some.
            log.warning("job config of event %s changed while it was handled; not resumed", event.id)
            self._error(
                event,
                "config-changed",
                f"The job config ({resolved.config.source}) changed while this event was being handled; "
                "the rest of it was not run. Send the event again (with a new id) to run it anew.",
            )
            return False
        log.info(
            "job config %s: %s",
            resolved.config.source,
            ", ".join(repr(a.name) for a in actions) + " matched" if actions else "no action matched",
            extra=step(event.source, event.id, type=event.type),
        )
        if not actions:
            return True
        self.metrics.inc("job_executor_events_matched_total")
        # Every started report before any finished one: Keptn closes a task when its count of
        # finished equals its count of started (shipyard-controller sequence_execution.go
        # IsFinished), so a finished sent before a later action's started closes it early. The
        # ids are deterministic, so after a crash these puts find the reports already queued.
        for action in actions:
            done = self.store.action_done(event.source, event.id, action.index)
            if action.silent or done:
                continue
            scope = f"action-{action.index}"
            if answers(event):
                self.reports.put(started(event, scope))
            elif answers_generic(event, self.results):
                tasks = [t.name for t in action.tasks]
                self.reports.put(result_started(event, self.results, scope, action.name, action.index, tasks))
        # Let every action settle before asking for a retry, so none runs on unwatched.
        results = await asyncio.gather(
            *seats.parts(self.run_action(event, resolved, a) for a in actions), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result
        self.store.set_run_status(event.source, event.id, "succeeded" if all(results) else "failed")
        return all(results)

    def _error(self, event: Event, scope: str, message: str) -> None:
        self.store.set_run_status(event.source, event.id, "errored")
        if answers(event):
            self.reports.put(started(event, scope))
            self.reports.put(error_finished(event, scope, message))
        elif answers_generic(event, self.results):
            self.reports.put(result_error(event, self.results, scope, "started", ""))
            self.reports.put(result_error(event, self.results, scope, "finished", message))

    def _action_error(self, event: Event, action: Action, message: str) -> None:
        """The errored finished report of an action whose started report handle() queued."""
        scope = f"action-{action.index}"
        if action.silent:
            return
        if answers(event):
            self.reports.put(error_finished(event, scope, message))
        elif answers_generic(event, self.results):
            self.reports.put(
                result_error(event, self.results, scope, "finished", message, action.name, action.index)
            )

    async def run_action(self, event: Event, resolved: Resolved, action: Action) -> bool:
        try:
            return await self._run_action(event, resolved, action)
        except (Temporary, asyncio.CancelledError):
            raise
        except Exception as exc:  # a bug or an unforeseen failure: report it, never go silent
            log.exception("action %r of event %s failed unexpectedly", action.name, event.id)
            self._action_error(event, action, f"Action '{action.name}': internal error: {exc!r}")
            self.store.mark_action_done(event.source, event.id, action.index)
            self.store.set_run_status(event.source, event.id, "errored")
            self.metrics.inc("job_executor_runs_total", outcome="error")
            return False

    async def _run_action(self, event: Event, resolved: Resolved, action: Action) -> bool:
        source, event_id, index = event.source, event.id, action.index
        if self.store.action_done(source, event_id, index):
            return True
        scope = f"action-{index}"
        try:
            specs = plan_action(event, action, resolved.config, self.settings, resolved.level)
            files = [await self._files(spec, resolved) for spec in specs]
        except (PolicyError, PlanError, FilesError) as exc:
            log.warning("action %r refused for event %s: %s", action.name, event_id, exc)
            self._action_error(event, action, f"Action '{action.name}': {exc}")
            self.store.mark_action_done(source, event_id, index)
            self.store.set_run_status(source, event_id, "errored")
            self.metrics.inc("job_executor_runs_total", outcome="refused")
            return False
        claim = claim_for(resolved.config, action, event)
        try:
            async with self.gate.held(claim):
                reports: list[TaskReport] = []  # handle queued the started report, before any finished
                failed = False
                traceparent = ""  # the last task's: the finished report continues its trace
                for spec, task_files in zip(specs, files, strict=True):
                    if failed or self.gate.holds_back(claim, spec.task_index):
                        reports.append(TaskReport(spec.task_name, None))
                        continue
                    outcome, traceparent = await self._run_task(event, spec, task_files)
                    phases = self.store.task_phases(source, event_id, spec.action_index, spec.task_index)
                    reports.append(
                        TaskReport(spec.task_name, outcome, phases, optional=spec.continue_on_error)
                    )
                    # continueOnError: the failure is reported (as a warning) and the next task runs.
                    failed = not outcome.ok and not spec.continue_on_error
                self.gate.check_replaced(claim, done=not failed and reports[-1].outcome is not None)
                # Reported and done while the slot is held: the next run of the key starts after.
                with tracing.under(traceparent):
                    if action.silent:
                        pass
                    elif answers(event):
                        self.reports.put(finished(event, scope, reports))
                    elif answers_generic(event, self.results):
                        self.reports.put(
                            result_finished(event, self.results, scope, action.name, index, reports)
                        )
                crash_point("finished.queued")
                self.store.mark_action_done(source, event_id, index)
                crash_point("action.done")
        except Refused as exc:  # skipped, or stopped for a newer event of its key
            log.info("action %r of event %s %s: %s", action.name, event_id, exc.outcome, exc)
            self._action_error(event, action, str(exc))
            self.store.mark_action_done(source, event_id, index)
            self.store.set_run_status(source, event_id, "errored")
            self.metrics.inc("job_executor_runs_total", outcome=exc.outcome)
            self.gate.leave(claim)
            return False
        self.metrics.inc("job_executor_runs_total", outcome="failed" if failed else "succeeded")
        return not failed

    async def _files(self, spec: TaskSpec, resolved: Resolved) -> Mapping[str, bytes]:
        if not spec.files or not self.stage_files:
            return {}
        return await resolved.fetch_files(spec.files)

    async def _run_task(
        self, event: Event, spec: TaskSpec, files: Mapping[str, bytes]
    ) -> tuple[TaskOutcome, str]:
        """The task's outcome, and the traceparent it ran under ("" for one recorded earlier)."""
        key = (event.source, event.id, spec.action_index, spec.task_index)
        recorded = self.store.task_outcome(*key)
        if recorded is not None:
            return TaskOutcome(**{**recorded, "result": _decode(recorded.get("result"))}), ""
        async with self.task_slots.slot():
            job = spec_job_name(spec)
            with tracing.task(event.attributes, spec.action_name, spec.task_name, job) as trace:
                outcome = await self._submit_and_wait(event, _traced(spec, trace.traceparent), files, key)
                trace.ended(outcome.ok, outcome.status, outcome.reason)
            return outcome, trace.traceparent

    async def _submit_and_wait(
        self, event: Event, spec: TaskSpec, files: Mapping[str, bytes], key: tuple[str, str, int, int]
    ) -> TaskOutcome:
        began = time.monotonic()
        where = step(event.source, event.id, action=spec.action_name, task=spec.task_name)
        log.info("task submitted", extra=where)
        received = self.store.received_at(event.source, event.id)
        phases = {"queued": _iso(received or time.time()), "submitted": _iso(time.time())}
        names = (spec.action_name, spec.task_name, spec_job_name(spec))
        self.store.task_submitted(*key, names, phases)
        # The pinned config and the task's progress are on disk before its Job or process exists.
        self.store.flush()
        # A submit that has begun must finish even if we are shutting down, or a Job could be
        # created that nobody tracks; shield it and let stop() wait for it.
        submit = asyncio.ensure_future(self.backend.submit(spec, files))
        self._submits.add(submit)
        submit.add_done_callback(self._submits.discard)
        try:
            handle = await asyncio.shield(submit)
            log.info("task %s %s", handle.name, "adopted" if handle.adopted else "started", extra=where)
            self.gate.running(key[:3], handle)  # cancel-previous can stop it from now on
            phases["staged"] = _iso(time.time())
            self.store.task_submitted(*key, names, phases)
            outcome = await self.backend.wait(handle, spec)
        except Temporary as exc:  # the cluster blinked: try the event again, adopting what exists
            raise Temporary(f"{self.backend.name} backend: {exc}", delay=exc.delay) from None
        except BackendError as exc:
            log.error("task %r of event %s: backend error: %s", spec.task_name, event.id, exc)
            outcome = TaskOutcome(status="failed", reason=f"{self.backend.name} backend error: {exc}")
        except (OSError, RuntimeError, ValueError) as exc:
            log.error("task %r of event %s: backend error: %s", spec.task_name, event.id, exc)
            outcome = TaskOutcome(status="failed", reason=f"{self.backend.name} backend error: {exc}")
        took = time.monotonic() - began
        self.metrics.observe("job_executor_task_duration_seconds", took)
        _log_end(spec, outcome, took, where)
        phases["started"] = outcome.started_at or phases.get("staged", "")
        phases["ended"] = outcome.finished_at or _iso(time.time())
        self._observe_phases(_in_order(phases))
        stored = asdict(outcome)
        stored["result"] = _encode(outcome.result)
        self.store.record_task(*key, stored, phases)
        crash_point("outcome.recorded")
        return outcome

    def _observe_phases(self, at: Mapping[str, float]) -> None:
        spans = {
            "queued": ("queued", "submitted"),
            "staged": ("submitted", "started"),
            "running": ("started", "ended"),
            "total": ("queued", "ended"),
        }
        for phase, (begin, end) in spans.items():
            first, last = at.get(begin), at.get(end)
            if first is not None and last is not None:
                self.metrics.observe("job_executor_task_phase_seconds", last - first, phase=phase)

    async def finish_submits(self) -> None:
        while self._submits:  # one finishing may have let another begin
            await asyncio.gather(*self._submits, return_exceptions=True)


def _traced(spec: TaskSpec, traceparent: str) -> TaskSpec:
    """The spec with the task's trace context as TRACEPARENT in its env and as an annotation on
    its Job (the OpenTelemetry environment-variable carrier), so the task can continue the trace."""
    if not traceparent:
        return spec
    declared = any(e.name == tracing.ENV for e in spec.env)  # the config's own value wins
    env = spec.env if declared else (*spec.env, EnvVar(tracing.ENV, traceparent))
    annotations = {**spec.annotations, tracing.ANNOTATION: traceparent}
    return replace(spec, env=env, annotations=annotations)


def _log_end(spec: TaskSpec, outcome: TaskOutcome, took: float, where: dict[str, Any]) -> None:
    where["ctx"].update(status=outcome.status, duration_s=round(took, 3))
    if outcome.ok:
        log.info("task ended", extra=where)
    else:
        log.warning("task ended: %s", outcome.reason, extra=where)
    if outcome.logs and log.isEnabledFor(logging.DEBUG):
        # At debug level, the task's output (the bounded excerpt its outcome keeps), each line
        # prefixed with the task, so one task's lines can be told from another's.
        prefix = f"{spec.action_name}/{spec.task_name}"
        for line in outcome.logs.splitlines():
            log.debug("%s | %s", prefix, line, extra=where)


PHASES = ("queued", "submitted", "staged", "started", "ended")


def _in_order(phases: dict[str, str]) -> dict[str, float]:
    """A phase never reads as before the one it follows. Started and ended come from the
    backend's clocks, which can run behind ours: a file's mtime is the kernel's coarse clock (a
    tick, up to 4 ms, behind), and Kubernetes gives whole seconds; a task that ends within them
    read as ended before it was submitted. Such a time becomes the previous phase's. Returns
    each phase's time as epoch seconds (those that parse), for the histogram."""
    at: dict[str, float] = {}
    last: str | None = None
    for name in PHASES:
        epoch = _epoch(phases.get(name, ""))
        if epoch is None:
            continue
        if last is not None and epoch < at[last]:
            phases[name], epoch = phases[last], at[last]
        else:
            last = name
        at[name] = epoch
    return at


def _iso(epoch: float) -> str:
    stamp = datetime.fromtimestamp(epoch, UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


def _epoch(text: str) -> float | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _encode(raw: bytes | None) -> str | None:
    return None if raw is None else raw.decode("utf-8", "replace")


def _decode(text: str | None) -> bytes | None:
    return None if text is None else text.encode("utf-8")
