"""`TIDINGS_LOG_FORMAT=json`: one JSON object per line, with the trace and span ids of the
span it was logged in."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tidings.observability import tracing
from tidings.observability.logging import JsonFormatter


@pytest.fixture
def lines() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("tidings.test.json")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    yield logger, stream
    logger.removeHandler(handler)
    logger.propagate = True


def _read(stream: io.StringIO) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in stream.getvalue().splitlines()]


def test_a_line_logged_in_a_span_carries_its_trace_and_span_ids(
    lines: tuple[logging.Logger, io.StringIO], spans: InMemorySpanExporter
) -> None:
    logger, stream = lines
    parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    with tracing.span("processing", parent=parent):
        logger.warning("event %s: %s", 7, "retrying", extra={"event_id": 7})
    logger.info("outside")
    inside, outside = _read(stream)
    (span,) = spans.get_finished_spans()
    assert span.context is not None
    assert inside["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert inside["span_id"] == f"{span.context.span_id:016x}"
    assert inside["message"] == "event 7: retrying"
    assert inside["level"] == "WARNING"
    assert inside["logger"] == "tidings.test.json"
    assert inside["event_id"] == 7
    assert inside["time"].endswith("+00:00")
    assert outside["message"] == "outside"
    assert "trace_id" not in outside


def test_an_exception_is_in_the_line(lines: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = lines
    try:
        raise ValueError("bad value")
    except ValueError:
        logger.exception("it failed")
    (line,) = _read(stream)
    assert line["message"] == "it failed"
    assert "ValueError: bad value" in line["exc_info"]
    assert "trace_id" not in line  # tracing is off
