"""Tracing on, into the SDK's in-memory exporter, for the tests that read spans."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tidings.observability import tracing
from tidings.runtime import Runtime
from tidings.workspace.scopes import INGEST
from tidings.workspace.service import create_key


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.enable(provider)
    yield exporter
    tracing.disable()
    provider.shutdown()


@pytest.fixture
def ingest_key(runtime: Runtime) -> str:
    with runtime.database.write() as (session, _):
        key = create_key(session, runtime.cipher, "test", INGEST).key
    assert key is not None
    return key


def of_trace(exporter: InMemorySpanExporter, trace_id: int) -> list[ReadableSpan]:
    return [
        span
        for span in exporter.get_finished_spans()
        if span.context is not None and span.context.trace_id == trace_id
    ]


def tree(spans: list[ReadableSpan]) -> str:
    """The spans as an indented tree, children in start order, each with its attributes."""
    by_parent: dict[int | None, list[ReadableSpan]] = {}
    ids = {span.context.span_id for span in spans if span.context is not None}
    for span in spans:
        parent = span.parent.span_id if span.parent is not None else None
        by_parent.setdefault(parent if parent in ids else None, []).append(span)
    lines: list[str] = []

    def walk(parent: int | None, depth: int) -> None:
        for span in sorted(by_parent.get(parent, []), key=lambda span: span.start_time or 0):
            attributes = ", ".join(
                f"{key.removeprefix('tidings.')}={value}"
                for key, value in sorted((span.attributes or {}).items())
                if not key.endswith("_id") or key == "tidings.automation_id"
            )
            lines.append(f"{'  ' * depth}{span.name}" + (f"  [{attributes}]" if attributes else ""))
            assert span.context is not None
            walk(span.context.span_id, depth + 1)

    walk(None, 0)
    return "\n".join(lines)
