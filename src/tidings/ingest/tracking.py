"""Segment's HTTP Tracking API: what Segment's own SDKs post to.

`POST /v1/identify|track|group|page|screen|alias` take one event, `/v1/batch` and `/v1/import`
take `{"batch": [...]}`, and analytics.js's short forms `/v1/i|t|g|p|s|a|b` are the same
routes. The write key is a Tidings API key (`writeKey` in the body, Basic auth, or Bearer).

Every accepted event goes through `validate_segment_event` and the ingest writer, exactly as
`POST /inbound/segment` does: the same inbox rows (source `segment`), the same duplicate
rule, the same processing. A batch is one `submit`, hence one group commit, and 200 is sent
only after it is committed.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from tidings.config import Settings
from tidings.dependencies import (
    INVALID_KEY_MESSAGE,
    invalid_key,
    refuse_locked_client,
)
from tidings.errors import AppError, BadRequest, ServiceUnavailable, TooManyRequests, Unauthorized
from tidings.ingest.validation import MAX_EVENT_BYTES, ValidEvent, validate_segment_event
from tidings.ingest.writer import IngestItem, IngestResult, IngestWriter, Outcome
from tidings.kit import json_input
from tidings.kit.ratelimit import TokenBuckets
from tidings.kit.time import parse_timestamp, utcnow, within_bounds
from tidings.observability import tracing
from tidings.workspace.keys import key_from_authorization
from tidings.workspace.limits import AuthLimits

MAX_BATCH_BYTES = 500 * 1024
MAX_BATCH_EVENTS = 2500

SINGLE_PATHS: dict[str, str] = {
    "/v1/identify": "identify",
    "/v1/track": "track",
    "/v1/group": "group",
    "/v1/page": "page",
    "/v1/screen": "screen",
    "/v1/alias": "alias",
    "/v1/i": "identify",
    "/v1/t": "track",
    "/v1/g": "group",
    "/v1/p": "page",
    "/v1/s": "screen",
    "/v1/a": "alias",
}
BATCH_PATHS = ("/v1/batch", "/v1/import", "/v1/b")
PATHS = (*SINGLE_PATHS, *BATCH_PATHS)

SUCCESS = orjson.dumps({"success": True})

MISSING_WRITE_KEY_MESSAGE = (
    "Missing write key. Use a Tidings API key as the Segment write key: `writeKey` in the "
    "body, Basic auth with the key as the username, or `Authorization: Bearer <key>`; "
    "`tidings keys list` prints your keys."
)


class KeyCheck:
    """What ingest requests' keys are checked with, one per app (`app.state.key_check`): the
    writer's key cache, and the failed checks counted per client address
    (TIDINGS_AUTH_FAILURE_LIMIT)."""

    __slots__ = ("limits", "writer")

    def __init__(self, writer: IngestWriter, limits: AuthLimits) -> None:
        self.writer = writer
        self.limits = limits

    async def verify(self, key: str, client: str) -> None:
        """401 for an unknown or revoked key, 429 for a client that sent too many. A key the
        writer has verified already (accepted lately) costs a dictionary lookup."""
        if self.writer.has_verified(key):
            return
        refuse_locked_client(self.limits, client, key)
        if await self.writer.key_scope(key) is None:
            raise invalid_key(self.limits.api_clients, client)
        self.limits.accepted_keys.add(key)

    async def note_key(self, error: AppError, key: str) -> None:
        """Put the public id of `key`, which `verify` accepted, on the error that refuses its
        request: the log line of the refusal names it. Called on the error path only."""
        scope = await self.writer.key_scope(key)
        if scope is not None:
            error.key_id = scope.key_id


@dataclass(frozen=True, slots=True)
class TrackingRequest:
    path: str
    client: str
    authorization: str | None
    content_encoding: str | None
    content_length: str | None
    # The W3C `traceparent` header: the ingest span's parent when tracing is on.
    traceparent: str | None = None


# -- limits ------------------------------------------------------------------------------------


def body_limit(path: str) -> int:
    return MAX_EVENT_BYTES if path in SINGLE_PATHS else MAX_BATCH_BYTES


def over_limit(path: str) -> BadRequest:
    if path in SINGLE_PATHS:
        return BadRequest(
            f"The event is over {MAX_EVENT_BYTES // 1024} KB, Segment's limit for one event. "
            "Send smaller events: move large values out of traits and properties.",
            code="event_too_large",
        )
    return BadRequest(
        f"The batch is over {MAX_BATCH_BYTES // 1024} KB, Segment's limit for one batch. "
        "Split it into smaller batches.",
        code="batch_too_large",
    )


async def read_within(
    chunks: AsyncIterator[bytes],
    declared: str | None,
    limit: int,
    too_large: Callable[[], AppError],
) -> bytes:
    """A body of at most `limit` bytes: `too_large()` is raised as soon as its declared
    length (Content-Length) or what arrived is over. Every ingest route reads with it."""
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large()
    parts = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise too_large()
        parts.append(chunk)
    return b"".join(parts)


async def read_body(request: TrackingRequest, chunks: AsyncIterator[bytes]) -> bytes:
    """The request body, decompressed, within the path's size limit."""
    limit = body_limit(request.path)
    raw = await read_within(
        chunks, request.content_length, limit, functools.partial(over_limit, request.path)
    )
    encoding = (request.content_encoding or "").strip().lower()
    if encoding in ("", "identity"):
        return raw
    if encoding not in ("gzip", "x-gzip"):
        raise BadRequest(
            f"Content-Encoding {encoding!r} is not supported. Send the body as is, or gzip it "
            "with `Content-Encoding: gzip`.",
            code="unsupported_content_encoding",
        )
    decompressor = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        body = decompressor.decompress(raw, limit + 1)
    except zlib.error as exc:
        raise BadRequest(
            f"The body says `Content-Encoding: gzip` but is not valid gzip ({exc}).",
            code="invalid_gzip",
        ) from exc
    if len(body) > limit:
        raise over_limit(request.path)
    if not decompressor.eof:
        raise BadRequest(
            "The gzip body ends early: it is truncated. Send the whole compressed body.",
            code="invalid_gzip",
        )
    if decompressor.unused_data:
        raise BadRequest(
            f"The gzip body has {len(decompressor.unused_data)} bytes after the end of the "
            "compressed data. Send exactly one gzip stream, with nothing after it.",
            code="invalid_gzip",
        )
    return body


# -- rate limit --------------------------------------------------------------------------------


class RateLimiter(TokenBuckets):
    """A token bucket per write key, per process: `rate` requests a second, `burst` at once."""

    @classmethod
    def from_settings(cls, settings: Settings) -> RateLimiter:
        rate = settings.tracking_rate_limit
        return cls(rate, settings.tracking_rate_burst or rate)

    def check(self, key: str, now: float | None = None) -> None:
        """Take a token for `key`, or raise 429 saying when to retry."""
        wait = self.take(key, now)
        if wait:
            raise TooManyRequests(
                f"Too many requests for this write key: the limit is {self.rate:g} requests "
                f"a second (TIDINGS_TRACKING_RATE_LIMIT). Retry after {wait} s.",
                retry_after=wait,
            )


# -- events ------------------------------------------------------------------------------------


def _parse(body: bytes, path: str) -> dict[str, Any]:
    try:
        parsed = json_input.loads(body)
    except json_input.JSONDecodeError as exc:
        raise BadRequest(
            f"The request body is not valid JSON ({exc}). Send a JSON object.",
            code="invalid_json",
        ) from exc
    if not isinstance(parsed, dict):
        expected = "one event" if path in SINGLE_PATHS else '{"batch": [...]}'
        raise BadRequest(
            f"The body must be a JSON object: {expected}.",
            code="invalid_event" if path in SINGLE_PATHS else "invalid_batch",
        )
    return parsed


def write_key(body: dict[str, Any], authorization: str | None) -> str:
    """`writeKey` in the body first (with OAuth the header holds a token), then the header."""
    key = body.pop("writeKey", None)
    if isinstance(key, str) and key:
        return key
    from_header = key_from_authorization(authorization)
    if from_header is None:
        raise Unauthorized(MISSING_WRITE_KEY_MESSAGE, code="missing_api_key")
    return from_header


def _iso(value: datetime) -> str:
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Clock:
    """The times a request's events are corrected with: computed once per request."""

    received_at: datetime
    received_text: str
    sent_text: Any
    sent_at: datetime | None

    @classmethod
    def of(cls, received_at: datetime, sent_text: Any) -> Clock:
        return cls(received_at, _iso(received_at), sent_text, parse_timestamp(sent_text))


def correct_timestamp(event: dict[str, Any], clock: Clock) -> datetime | None:
    """Segment's rule: timestamp = receivedAt - (sentAt - originalTimestamp).

    The device's own time becomes `originalTimestamp`; without a timestamp the event happened
    when it was received. Returns the event's `timestamp`, parsed.
    """
    event["receivedAt"] = clock.received_text
    original_text = event.get("timestamp") or event.get("originalTimestamp")
    original = parse_timestamp(original_text)
    if original is None:
        if original_text:  # Unreadable: kept as sent, and the event dated on arrival.
            event["originalTimestamp"] = original_text
        event["timestamp"] = clock.received_text
        return clock.received_at
    event["originalTimestamp"] = original_text
    own_sent_text = event.get("sentAt")
    if own_sent_text:
        sent = parse_timestamp(own_sent_text)
    else:
        sent = clock.sent_at
        if sent is not None:
            event["sentAt"] = clock.sent_text
    if sent is None:  # Kept as sent.
        return original if event.get("timestamp") == original_text else None
    corrected = clock.received_at - (sent - original)
    if not within_bounds(corrected):  # The clocks disagree past belief: dated on arrival.
        event["timestamp"] = clock.received_text
        return clock.received_at
    event["timestamp"] = _iso(corrected)
    return corrected


def _merged(batch_value: Any, item_value: Any) -> Any:
    if isinstance(batch_value, dict) and isinstance(item_value, dict):
        return {**batch_value, **item_value}
    return item_value if item_value is not None else batch_value


def _in_batch(index: int, error: BadRequest) -> BadRequest:
    field = f"batch[{index}].{error.field}" if error.field else f"batch[{index}]"
    return BadRequest(f"batch[{index}]: {error.message}", code=error.code, field=field)


def batch_events(
    body: dict[str, Any], received_at: datetime, body_bytes: int = MAX_BATCH_BYTES
) -> list[ValidEvent]:
    """The batch's events, validated and completed. No item of a body of at most 32 KB can
    be over 32 KB, so only larger bodies have their items measured."""
    clock = Clock.of(received_at, body.get("sentAt"))
    measure = body_bytes > MAX_EVENT_BYTES
    items = body.get("batch")
    if not isinstance(items, list):
        raise BadRequest(
            'A batch is `{"batch": [event, ...]}`; `batch` is missing or not a list.',
            code="invalid_batch",
            field="batch",
        )
    if len(items) > MAX_BATCH_EVENTS:
        raise BadRequest(
            f"The batch has {len(items)} events; Segment's limit is {MAX_BATCH_EVENTS} events "
            "per batch. Split it into smaller batches.",
            code="too_many_events",
            field="batch",
        )
    context = body.get("context")
    integrations = body.get("integrations")
    events = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise BadRequest(
                f"batch[{index}] must be a JSON object with a `type`.",
                code="invalid_event",
                field=f"batch[{index}]",
            )
        item.pop("writeKey", None)
        if measure and len(orjson.dumps(item)) > MAX_EVENT_BYTES:
            raise BadRequest(
                f"batch[{index}] is over {MAX_EVENT_BYTES // 1024} KB, Segment's limit for one "
                "event. Send smaller events: move large values out of traits and properties.",
                code="event_too_large",
                field=f"batch[{index}]",
            )
        if context is not None:
            item["context"] = _merged(context, item.get("context"))
        if integrations is not None:
            item["integrations"] = _merged(integrations, item.get("integrations"))
        timestamp = correct_timestamp(item, clock)
        try:
            events.append(validate_segment_event(item, timestamp=timestamp))
        except BadRequest as exc:
            raise _in_batch(index, exc) from exc
    return events


def single_event(body: dict[str, Any], event_type: str, received_at: datetime) -> ValidEvent:
    declared = body.get("type")
    if declared is None:
        body["type"] = event_type
    elif declared != event_type:
        raise BadRequest(
            f"`type` is {declared!r} but this endpoint takes {event_type!r} events. Post it to "
            f"/v1/{declared}, or to /v1/batch.",
            code="type_mismatch",
            field="type",
        )
    timestamp = correct_timestamp(body, Clock.of(received_at, None))
    return validate_segment_event(body, timestamp=timestamp)


async def accept_tracking(
    check: KeyCheck,
    limiter: RateLimiter,
    request: TrackingRequest,
    chunks: AsyncIterator[bytes],
) -> bytes:
    """Serve one Tracking API request; the 200 body, or an AppError.

    The write key is checked before the events are validated: a wrong key is a 401 whatever
    the events hold. When the body cannot be read as a JSON object at all (too large, broken
    gzip, not JSON), a key in the header is still checked first; without one, the key may be
    in that unreadable body (analytics.js sends it there), so the answer says what is wrong
    with the body rather than that the key is missing.

    With tracing on, the request is one `ingest` span, and its events share its trace."""
    if tracing.enabled:
        with tracing.span(
            "ingest", parent=request.traceparent, kind="server", attributes={"route": request.path}
        ):
            return await _accept_tracking(check, limiter, request, chunks)
    return await _accept_tracking(check, limiter, request, chunks)


async def _accept_tracking(
    check: KeyCheck,
    limiter: RateLimiter,
    request: TrackingRequest,
    chunks: AsyncIterator[bytes],
) -> bytes:
    try:
        raw = await read_body(request, chunks)
        body = _parse(raw, request.path)
    except BadRequest as exc:
        header_key = key_from_authorization(request.authorization)
        if header_key is not None:
            await check.verify(header_key, request.client)
            await check.note_key(exc, header_key)
        raise
    key = write_key(body, request.authorization)
    await check.verify(key, request.client)
    try:
        limiter.check(key)
        received_at = utcnow()
        event_type = SINGLE_PATHS.get(request.path)
        if event_type is None:
            events = batch_events(body, received_at, len(raw))
        else:
            events = [single_event(body, event_type, received_at)]
        if tracing.enabled:
            for event in events:
                tracing.stamp_event(event.payload)
        if events:
            await submit(check.writer, [IngestItem(key=key, event=event) for event in events])
    except AppError as exc:
        await check.note_key(exc, key)
        raise
    return SUCCESS


STORAGE_UNAVAILABLE_MESSAGE = (
    "The events could not be stored right now and were not accepted. Send them again "
    "later; Segment's libraries retry this automatically."
)


async def submit(
    writer: IngestWriter,
    items: Iterable[IngestItem],
    unavailable: str = STORAGE_UNAVAILABLE_MESSAGE,
) -> list[IngestResult]:
    """Hand the items to the writer, for every ingest route: their results once committed;
    503 with the `unavailable` message when the storage failed, 401 when a key turned out
    revoked."""
    try:
        results = await writer.submit(list(items))
    except AppError:  # an event the writer refused on its own (unstorable)
        raise
    except Exception as exc:
        raise ServiceUnavailable(unavailable, code="storage_unavailable") from exc
    if any(result.outcome is Outcome.UNAUTHORIZED for result in results):
        raise Unauthorized(INVALID_KEY_MESSAGE, code="invalid_api_key")
    return results
