"""`POST /inbound/segment`: one Segment event, as Segment's Courier destination sends it.

Implemented once, free of any web framework, as the Tracking API is (`tracking.py`): the
fast path (`fastpath.py`) and the documented FastAPI route (`endpoints.py`) each build a
`SegmentRequest` and hand `accept_segment` the body's chunks, so both answer alike. The
body is JSON whatever its Content-Type (Segment's senders differ).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import orjson

from tidings.dependencies import presented_key
from tidings.errors import AppError, PayloadTooLarge
from tidings.ingest.tracking import KeyCheck, read_within, submit
from tidings.ingest.validation import (
    MAX_EVENT_BYTES,
    ValidEvent,
    parse_json,
    validate_segment_event,
)
from tidings.ingest.writer import IngestItem, IngestResult, IngestWriter, Outcome
from tidings.observability import tracing

if TYPE_CHECKING:
    from opentelemetry.trace import Span


@dataclass(frozen=True, slots=True)
class SegmentRequest:
    client: str
    authorization: str | None
    content_length: str | None
    # The W3C `traceparent` header: the ingest span's parent when tracing is on.
    traceparent: str | None = None


async def accept_segment(
    check: KeyCheck, request: SegmentRequest, chunks: AsyncIterator[bytes]
) -> bytes:
    """Serve one `/inbound/segment` request; the 202 body, or an AppError.

    The key is checked before the body is read: a wrong key is a 401 whatever the body
    holds. A repeated `messageId` answers `"duplicate": true` and has no second effect.
    With tracing on, the request is the trace's `ingest` span (observability.tracing)."""
    if tracing.enabled:
        with tracing.span(
            "ingest",
            parent=request.traceparent,
            kind="server",
            attributes={"route": "/inbound/segment"},
        ) as current:
            return await _accept(check, request, chunks, current)
    return await _accept(check, request, chunks, None)


async def _accept(
    check: KeyCheck,
    request: SegmentRequest,
    chunks: AsyncIterator[bytes],
    current: Span | None,
) -> bytes:
    key = presented_key(request.authorization)
    await check.verify(key, request.client)
    try:
        body = await read_event(chunks, request.content_length)
        event = validate_segment_event(parse_json(body))
        if current is not None:
            tracing.stamp_event(event.payload)
            tracing.set_attributes(
                current, event_type=event.type, event_name=event.name, message_id=event.message_id
            )
        result = await store_event(check.writer, key, event)
        tracing.set_attributes(current, outcome=str(result.outcome))
    except AppError as exc:
        await check.note_key(exc, key)
        raise
    if result.outcome is Outcome.DUPLICATE:
        return orjson.dumps({"messageId": result.message_id, "duplicate": True})
    return orjson.dumps({"messageId": result.message_id})


def payload_too_large() -> PayloadTooLarge:
    return PayloadTooLarge(
        f"The body is over {MAX_EVENT_BYTES // 1024} KB, Segment's limit for one event. Send "
        "smaller events: move large values out of traits and properties.",
    )


async def read_event(chunks: AsyncIterator[bytes], declared: str | None) -> bytes:
    """One event's body: 413 past Segment's limit for one event."""
    return await read_within(chunks, declared, MAX_EVENT_BYTES, payload_too_large)


async def store_event(writer: IngestWriter, key: str, event: ValidEvent) -> IngestResult:
    """Store one event durably; accepted or a duplicate."""
    (result,) = await submit(
        writer,
        [IngestItem(key=key, event=event)],
        "The event could not be stored right now and was not accepted. Send it again later; "
        "Segment retries this automatically.",
    )
    return result
