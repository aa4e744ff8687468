"""Traces (OpenTelemetry): one trace from the incoming event through its tasks to the reports.

The CloudEvents distributed-tracing extension carries the W3C trace context in the attributes
`traceparent` and `tracestate` (cloudevents/spec: cloudevents/extensions/distributed-tracing.md).
Spans: `receive` (a source takes the event; its parent is the event's traceparent, or none, which
starts a trace), `handle` (the pipeline's run of the event, child of `receive`), `resolve`, `match`,
`task` (submit to end; its traceparent goes into the task's env as TRACEPARENT and onto the Job
as an annotation) and `deliver` (one delivery of a report to a sink, child of the report's
traceparent, which is the task span's on finished events).

Off unless OTEL_EXPORTER_OTLP_ENDPOINT is set (or a test installs a provider with `use`): then
every call below returns a shared do-nothing context manager after one attribute test, and
nothing else is built. While off, a task and the reports still carry the trigger's traceparent
unchanged, as W3C Trace Context asks of a participant that does not trace (section 3).

The functions take an event's attributes as a plain mapping: this module sits below the model.
"""

from __future__ import annotations

import contextlib
import logging
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, TracerProvider
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

log = logging.getLogger(__name__)

ENV = "TRACEPARENT"
ANNOTATION = "job-executor.dev/traceparent"
# Contexts of `receive` spans kept until the pipeline takes the event up (a duplicate offer is
# never taken up: the bound keeps those from piling up).
MAX_REMEMBERED = 4096

_PROPAGATOR = TraceContextTextMapPropagator()
_NOTHING: contextlib.nullcontext[None] = contextlib.nullcontext()


class _State:
    tracer: trace.Tracer | None = None
    provider: Any = None
    received: OrderedDict[tuple[str, str], otel_context.Context] = OrderedDict()


def enabled() -> bool:
    return _State.tracer is not None


def setup(endpoint: str, service_name: str, version: str = "") -> None:
    """Export spans over OTLP/HTTP to `endpoint` (the collector's base URL); empty: stay off."""
    if not endpoint:
        return
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError:
        raise SystemExit(
            "OTEL_EXPORTER_OTLP_ENDPOINT is set but the OTLP exporter is not installed: "
            "pip install 'job-executor[otlp]' (the image has it), or unset the variable"
        ) from None
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider as SdkProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({"service.name": service_name, "service.version": version})
    provider = SdkProvider(resource=resource)
    # OTLP/HTTP: the generic endpoint gets the signal's path (OpenTelemetry exporter spec).
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=_traces_url(endpoint))))
    use(provider)
    log.info("tracing on: spans go to %s", _traces_url(endpoint))


def _traces_url(endpoint: str) -> str:
    return endpoint.rstrip("/") + "/v1/traces"


def use(provider: TracerProvider | None) -> None:
    """Make spans with `provider` from now on (None: off again)."""
    _State.provider = provider
    _State.tracer = None if provider is None else provider.get_tracer("job-executor")
    _State.received.clear()


def shutdown() -> None:
    """Send what is still buffered; called once when the service stops."""
    provider = _State.provider
    if provider is not None and hasattr(provider, "shutdown"):
        provider.shutdown()
    use(None)


def _parent(attributes: Mapping[str, Any]) -> otel_context.Context | None:
    """The trace context of an event's (or a report's) traceparent/tracestate, or None."""
    traceparent = attributes.get("traceparent")
    if not traceparent:
        return None
    carrier = {"traceparent": str(traceparent)}
    if attributes.get("tracestate"):
        carrier["tracestate"] = str(attributes["tracestate"])
    return _PROPAGATOR.extract(carrier)


def _event_attributes(attributes: Mapping[str, Any]) -> dict[str, str]:
    # The CloudEvents semantic conventions of OpenTelemetry.
    return {
        "cloudevents.event_id": str(attributes.get("id", "")),
        "cloudevents.event_source": str(attributes.get("source", "")),
        "cloudevents.event_type": str(attributes.get("type", "")),
    }


def receive(attributes: Mapping[str, Any], via: str) -> contextlib.AbstractContextManager[Any]:
    """Around a source's offer of one event."""
    if _State.tracer is None:
        return _NOTHING
    return _receive(_State.tracer, attributes, via)


@contextlib.contextmanager
def _receive(tracer: trace.Tracer, attributes: Mapping[str, Any], via: str) -> Iterator[None]:
    with tracer.start_as_current_span(
        "receive",
        context=_parent(attributes) or otel_context.Context(),  # none: a new trace starts here
        kind=SpanKind.CONSUMER,
        attributes={**_event_attributes(attributes), "job_executor.source": via},
    ) as span:
        yield
        key = (str(attributes.get("source", "")), str(attributes.get("id", "")))
        _State.received[key] = trace.set_span_in_context(span)
        while len(_State.received) > MAX_REMEMBERED:
            _State.received.popitem(last=False)


def handling(attributes: Mapping[str, Any]) -> contextlib.AbstractContextManager[Any]:
    """Around the pipeline's run of one event: a child of its `receive` span when this process
    received it, else of its traceparent (a run resumed after a restart), else a new trace."""
    if _State.tracer is None:
        return _NOTHING
    key = (str(attributes.get("source", "")), str(attributes.get("id", "")))
    parent = _State.received.pop(key, None) or _parent(attributes) or otel_context.Context()
    return _State.tracer.start_as_current_span(
        "handle", context=parent, kind=SpanKind.INTERNAL, attributes=_event_attributes(attributes)
    )


def span(name: str, **attributes: str) -> contextlib.AbstractContextManager[Any]:
    """A child of the current span (resolve, match)."""
    if _State.tracer is None:
        return _NOTHING
    return _State.tracer.start_as_current_span(name, attributes=attributes)


class TaskTrace:
    """What a task carries of its trace: the traceparent for TRACEPARENT, the annotation and the
    finished report; and its span, told how the task ended."""

    def __init__(self, traceparent: str, span: Span | None = None) -> None:
        self.traceparent = traceparent
        self._span = span

    def ended(self, ok: bool, status: str, reason: str) -> None:
        if self._span is not None:
            self._span.set_attribute("job_executor.task.status", status)
            if not ok:
                self._span.set_status(Status(StatusCode.ERROR, reason))


@contextlib.contextmanager
def task(attributes: Mapping[str, Any], action: str, name: str, job: str) -> Iterator[TaskTrace]:
    """Around one task, submit to end. Off: the trigger's own traceparent, passed on unchanged."""
    tracer = _State.tracer
    if tracer is None:
        yield TaskTrace(str(attributes.get("traceparent") or ""))
        return
    with tracer.start_as_current_span(
        "task",
        kind=SpanKind.INTERNAL,
        attributes={"job_executor.action": action, "job_executor.task": name, "job_executor.job": job},
    ) as current:
        yield TaskTrace(current_traceparent(), current)


def delivery(report: Mapping[str, Any], sink: str) -> contextlib.AbstractContextManager[Any]:
    """Around one delivery of a report: a child of the report's own traceparent."""
    if _State.tracer is None:
        return _NOTHING
    return _State.tracer.start_as_current_span(
        "deliver",
        context=_parent(report) or otel_context.Context(),
        kind=SpanKind.PRODUCER,
        attributes={**_event_attributes(report), "job_executor.sink": sink},
    )


def current_traceparent() -> str:
    """The current span's traceparent, or "" when off or outside any span."""
    if _State.tracer is None:
        return ""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get("traceparent", "")


def under(traceparent: str) -> contextlib.AbstractContextManager[Any]:
    """Make `traceparent` the current context (a report built after its task's span ended)."""
    if _State.tracer is None or not traceparent:
        return _NOTHING
    return _attached(_PROPAGATOR.extract({"traceparent": traceparent}))


@contextlib.contextmanager
def _attached(ctx: otel_context.Context) -> Iterator[None]:
    token = otel_context.attach(ctx)
    try:
        yield
    finally:
        otel_context.detach(token)
