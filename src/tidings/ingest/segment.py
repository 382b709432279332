"""`POST /inbound/segment`: one Segment event, as Segment's Courier destination sends it.

Implemented once, free of any web framework, as the Tracking API is (`tracking.py`): the
fast path (`fastpath.py`) and the documented FastAPI route (`endpoints.py`) each build a
`SegmentRequest` and hand `accept_segment` the body's chunks, so both answer alike. The
body is JSON whatever its Content-Type (Segment's senders differ).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import orjson

from tidings.dependencies import INVALID_KEY_MESSAGE, presented_key
from tidings.errors import AppError, PayloadTooLarge, ServiceUnavailable, Unauthorized
from tidings.ingest.tracking import KeyCheck
from tidings.ingest.validation import (
    MAX_EVENT_BYTES,
    ValidEvent,
    parse_json,
    validate_segment_event,
)
from tidings.ingest.writer import IngestItem, IngestWriter, Outcome


@dataclass(frozen=True, slots=True)
class SegmentRequest:
    client: str
    authorization: str | None
    content_length: str | None


async def accept_segment(
    check: KeyCheck, request: SegmentRequest, chunks: AsyncIterator[bytes]
) -> bytes:
    """Serve one `/inbound/segment` request; the 202 body, or an AppError.

    The key is checked before the body is read: a wrong key is a 401 whatever the body
    holds. A repeated `messageId` answers `"duplicate": true` and has no second effect."""
    key = presented_key(request.authorization)
    await check.verify(key, request.client)
    body = await read_within(chunks, request.content_length, MAX_EVENT_BYTES)
    event = validate_segment_event(parse_json(body))
    outcome, message_id = await store_event(check.writer, key, event)
    if outcome is Outcome.DUPLICATE:
        return orjson.dumps({"messageId": message_id, "duplicate": True})
    return orjson.dumps({"messageId": message_id})


def payload_too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"The body is over {limit // 1024} KB, Segment's limit for one event. Send smaller "
        "events: move large values out of traits and properties.",
    )


async def read_within(chunks: AsyncIterator[bytes], declared: str | None, limit: int) -> bytes:
    """The body, or 413 as soon as its declared length or what arrived is over `limit`."""
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise payload_too_large(limit)
    parts = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise payload_too_large(limit)
        parts.append(chunk)
    return b"".join(parts)


async def store_event(writer: IngestWriter, key: str, event: ValidEvent) -> tuple[Outcome, str]:
    """Store one event durably; its outcome (accepted or duplicate) and its messageId."""
    try:
        (result,) = await writer.submit([IngestItem(key=key, event=event)])
    except AppError:  # an event the writer refused on its own (unstorable)
        raise
    except Exception as exc:
        raise ServiceUnavailable(
            "The event could not be stored right now and was not accepted. Send it again "
            "later; Segment retries this automatically.",
            code="storage_unavailable",
        ) from exc
    if result.outcome is Outcome.UNAUTHORIZED:
        raise Unauthorized(INVALID_KEY_MESSAGE, code="invalid_api_key")
    return result.outcome, result.message_id
