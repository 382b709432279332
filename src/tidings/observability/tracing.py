"""OpenTelemetry traces: one trace per Segment event, off unless configured.

Tracing is on when `OTEL_TRACES_EXPORTER` names `otlp` or `console` (and `OTEL_SDK_DISABLED`
is not `true`); everything else about the export is the SDK's standard `OTEL_*` variables
(`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_SERVICE_NAME`, `OTEL_TRACES_SAMPLER`, …).

This module imports nothing of OpenTelemetry until tracing is turned on, so a process that
does not trace pays neither the import nor any per-event work: call sites check `enabled`
(a module attribute) or call `span`, which then hands back one shared no-op context.

A trace crosses the queue in the rows: the ingest span's `traceparent` (W3C Trace Context)
is stored in the event's `context`, a run keeps the one of the step that started it in its
context, and a message the one of the span that made it in its `source`. Each later span
(processing, a run's step, routing, a provider attempt, a delivery report) starts from the
stored one, in whichever process and job it runs.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any, TypeVar

from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span, SpanKind, Tracer

# Read on every traced call site: False until `enable` (or `setup_from_environment`).
enabled = False
TRACEPARENT = "traceparent"
EXPORTERS = ("otlp", "console")
_tracer: Tracer | None = None
_provider: TracerProvider | None = None
_NO_SPAN: contextlib.nullcontext[None] = contextlib.nullcontext()

AttributeValue = str | int | float | bool
Attributes = Mapping[str, AttributeValue | None]
Result = TypeVar("Result")


def wanted(environ: Mapping[str, str] = os.environ) -> str | None:
    """The exporter the environment asks for, or None when tracing stays off."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    exporter = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    return exporter if exporter in EXPORTERS else None


def setup_from_environment(environ: Mapping[str, str] = os.environ) -> bool:
    """Turn tracing on when the environment asks for it; whether it is on. Called once per
    process by `tidings serve` and `tidings worker`."""
    exporter = wanted(environ)
    if exporter is None or enabled:
        return enabled
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

    span_exporter: SpanExporter
    if exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        span_exporter = OTLPSpanExporter()
    else:
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        span_exporter = ConsoleSpanExporter()
    # Resource.create reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES over this default.
    resource = Resource.create({"service.name": "tidings"})
    if "OTEL_SERVICE_NAME" in environ:
        resource = resource.merge(Resource.create({"service.name": environ["OTEL_SERVICE_NAME"]}))
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(span_exporter))
    enable(provider)
    return True


def enable(provider: TracerProvider) -> None:
    """Trace with this provider (the environment's, or a test's with an in-memory
    exporter). Tidings keeps its own provider rather than the global one, which can be set
    only once per process."""
    global enabled, _tracer, _provider
    _provider = provider
    _tracer = provider.get_tracer("tidings")
    enabled = True


def disable() -> None:
    """Stop tracing (tests); the provider's pending spans are flushed."""
    global enabled, _tracer, _provider
    enabled = False
    if _provider is not None:
        _provider.force_flush()
    _tracer = None
    _provider = None


def _parent(traceparent: str | None) -> Context | None:
    """The context of a stored `traceparent`, or None (the current one) when there is none
    or it does not parse."""
    if not traceparent:
        return None
    from opentelemetry.trace import get_current_span
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    context = TraceContextTextMapPropagator().extract({TRACEPARENT: traceparent})
    return context if get_current_span(context).get_span_context().is_valid else None


def span(
    name: str,
    *,
    parent: str | None = None,
    kind: str = "internal",
    attributes: Attributes | None = None,
) -> contextlib.AbstractContextManager[Span | None]:
    """A span around a block, the current one: a child of `parent` (a stored traceparent)
    when given, else of the current span; each attribute is named `tidings.<key>`. A no-op
    (yielding None) while tracing is off. An exception leaving the block is recorded on it
    and sets its status to error."""
    if not enabled:
        return _NO_SPAN
    return _started(name, parent, kind, attributes)


def traced(
    name: str,
    call: Callable[[], Result],
    outcome: Callable[[Result], Attributes],
    *,
    parent: str | None = None,
    kind: str = "internal",
    attributes: Attributes | None = None,
) -> Result:
    """`call()` in a span (see `span`), with the attributes `outcome` makes of its result.
    Call sites check `enabled` first, so that a process that does not trace builds neither
    the call nor the attributes."""
    with span(name, parent=parent, kind=kind, attributes=attributes) as current:
        result = call()
        set_attributes(current, **outcome(result))
        return result


@contextlib.contextmanager
def _started(
    name: str,
    parent: str | None,
    kind: str,
    attributes: Attributes | None,
) -> Iterator[Span]:
    assert _tracer is not None
    with _tracer.start_as_current_span(
        name,
        context=_parent(parent),
        kind=_kind(kind),
        attributes={
            f"tidings.{key}": value
            for key, value in (attributes or {}).items()
            if value is not None
        },
    ) as current:
        yield current


async def traced_request(app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
    """An HTTP request in a `request` span: the child of its `traceparent` header, with its
    method, path and status."""
    traceparent = None
    for name, value in scope["headers"]:
        if name == b"traceparent":
            traceparent = value.decode("latin-1")
    status: list[int] = []

    async def sent(message: Message) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])
        await send(message)

    with span(
        "request",
        parent=traceparent,
        kind="server",
        attributes={"method": scope["method"], "path": scope["path"]},
    ) as current:
        await app(scope, receive, sent)
        set_attributes(current, status=status[0] if status else None)


def _kind(kind: str) -> SpanKind:
    from opentelemetry.trace import SpanKind

    return {"server": SpanKind.SERVER, "client": SpanKind.CLIENT}.get(kind, SpanKind.INTERNAL)


def current_traceparent() -> str | None:
    """The current span's `traceparent`, for a row to carry; None while tracing is off or
    outside any span."""
    if not enabled:
        return None
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier)
    return carrier.get(TRACEPARENT)


def stamp(carrier: MutableMapping[str, Any]) -> None:
    """Put the current span's `traceparent` into a row's JSON (a run's context, a message's
    source), for the spans of later jobs to continue the trace."""
    traceparent = current_traceparent()
    if traceparent is not None:
        carrier[TRACEPARENT] = traceparent


def stamp_event(payload: dict[str, Any]) -> None:
    """Put the current span's `traceparent` into a Segment event's `context` (made when the
    event has none; left alone when it is not an object), for its processing to continue
    the trace."""
    traceparent = current_traceparent()
    if traceparent is None:
        return
    context = payload.get("context")
    if context is None:
        payload["context"] = {TRACEPARENT: traceparent}
    elif isinstance(context, dict):
        payload["context"] = {**context, TRACEPARENT: traceparent}


def stored_in_event(payload: Mapping[str, Any]) -> str | None:
    """The `traceparent` an event's `context` carries."""
    context = payload.get("context")
    return stored(context) if isinstance(context, Mapping) else None


def stored(carrier: Mapping[str, Any] | None) -> str | None:
    """The `traceparent` a row's JSON carries, if it is a string."""
    value = carrier.get(TRACEPARENT) if isinstance(carrier, Mapping) else None
    return value if isinstance(value, str) else None


def set_attributes(current: Span | None, **attributes: AttributeValue | None) -> None:
    """Add attributes to a span from `span` (nothing while tracing is off)."""
    if current is not None:
        for key, value in attributes.items():
            if value is not None:
                current.set_attribute(f"tidings.{key}", value)


def trace_ids() -> tuple[str, str] | None:
    """The current trace and span ids in hex, for a log line; None outside a span."""
    if not enabled:
        return None
    from opentelemetry.trace import get_current_span

    context = get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")
