"""`POST /inbound/segment`, `POST /inbound/courier`, the Tracking API and `POST /debug`.

These take raw requests rather than Pydantic bodies: the body is JSON whatever its
Content-Type (Segment's senders differ). `/inbound/segment` and the Tracking API are served
by `tidings.ingest.fastpath`; their routes here describe them in the OpenAPI document and
call the same framework-free cores (`segment.accept_segment`, `tracking.accept_tracking`).
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from tidings.dependencies import (
    Caller,
    IngestCaller,
    ReadSession,
    client_address,
    presented_key,
)
from tidings.errors import Conflict
from tidings.ingest.segment import SegmentRequest, accept_segment, read_event, store_event
from tidings.ingest.tracking import (
    BATCH_PATHS,
    SINGLE_PATHS,
    TrackingRequest,
    accept_tracking,
)
from tidings.ingest.validation import parse_json, validate_courier_event
from tidings.ingest.writer import Outcome
from tidings.routing import ApiRoute
from tidings.workspace.repository import WorkspaceRepository

router = APIRouter(tags=["inbound"], route_class=ApiRoute)


def _json_body(schema: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI `requestBody` of a route that reads its JSON body itself."""
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


_SEGMENT_EVENT_SCHEMA = _json_body(
    {
        "type": "object",
        "description": "One Segment event, exactly as Segment sends it.",
        "required": ["type"],
        "properties": {
            "type": {
                "type": "string",
                "enum": ["identify", "track", "group", "page", "screen", "alias"],
            },
            "messageId": {"type": "string", "maxLength": 100},
            "userId": {"type": "string"},
            "anonymousId": {"type": "string"},
            "event": {"type": "string"},
            "groupId": {"type": "string"},
            "traits": {"type": "object"},
            "properties": {"type": "object"},
            "timestamp": {"type": "string", "format": "date-time"},
        },
    }
)

_COURIER_EVENT_SCHEMA = _json_body(
    {
        "type": "object",
        "required": ["event", "messageId", "type", "properties"],
        "properties": {
            "event": {"type": "string"},
            "messageId": {"type": "string"},
            "type": {"type": "string", "enum": ["track"]},
            "properties": {"type": "object"},
            "userId": {"type": "string"},
        },
    }
)


def _json(body: dict[str, Any], status_code: int) -> Response:
    return Response(orjson.dumps(body), status_code=status_code, media_type="application/json")


@router.post("/inbound/segment", status_code=202, openapi_extra=_SEGMENT_EVENT_SCHEMA)
async def inbound_segment(request: Request) -> Response:
    """Take one Segment event, as Segment's Courier destination sends it.

    Answers 202 once the event is committed. A repeated `messageId` answers 202 with
    `"duplicate": true` and has no second effect. (Requests are served by
    `tidings.ingest.fastpath`; both run `tidings.ingest.segment.accept_segment`.)
    """
    segment_request = SegmentRequest(
        client=client_address(request.scope),
        authorization=request.headers.get("authorization"),
        content_length=request.headers.get("content-length"),
        traceparent=request.headers.get("traceparent"),
    )
    body = await accept_segment(request.app.state.key_check, segment_request, request.stream())
    return Response(body, status_code=202, media_type="application/json")


@router.post("/inbound/courier", status_code=202, openapi_extra=_COURIER_EVENT_SCHEMA)
async def inbound_courier(request: Request, caller: Caller) -> Response:
    """Courier's inbound track event (a secret key). A repeated `messageId` gets 409, as on
    Courier."""
    key = presented_key(request.headers.get("authorization"))
    body = await read_event(request.stream(), request.headers.get("content-length"))
    event = validate_courier_event(parse_json(body))
    result = await store_event(request.app.state.ingest_writer, key, event)
    if result.outcome is Outcome.DUPLICATE:
        raise Conflict(
            f"An event with messageId {result.message_id!r} was already received; it was not "
            "processed again. Use a new messageId for a new event.",
            code="duplicate_message_id",
            field="messageId",
        )
    return _json({"messageId": result.message_id}, 202)


_TRACKING_EVENT: dict[str, Any] = {
    "type": "object",
    "description": "One Segment event. `writeKey` may be in the body instead of the header.",
    "properties": {
        "writeKey": {"type": "string"},
        "userId": {"type": "string"},
        "anonymousId": {"type": "string"},
        "messageId": {"type": "string", "maxLength": 100},
        "timestamp": {"type": "string", "format": "date-time"},
        "sentAt": {"type": "string", "format": "date-time"},
        "context": {"type": "object"},
        "integrations": {"type": "object"},
    },
}
_TRACKING_BATCH: dict[str, Any] = {
    "type": "object",
    "required": ["batch"],
    "properties": {
        "batch": {"type": "array", "maxItems": 2500, "items": {"type": "object"}},
        "writeKey": {"type": "string"},
        "sentAt": {"type": "string", "format": "date-time"},
        "context": {"type": "object", "description": "Merged into each item's context."},
        "integrations": {"type": "object", "description": "Merged into each item's."},
    },
}


async def tracking_api(request: Request) -> Response:
    """Segment's HTTP Tracking API (served by `tidings.ingest.fastpath`)."""
    tracking_request = TrackingRequest(
        path=request.url.path,
        client=client_address(request.scope),
        authorization=request.headers.get("authorization"),
        content_encoding=request.headers.get("content-encoding"),
        content_length=request.headers.get("content-length"),
        traceparent=request.headers.get("traceparent"),
    )
    body = await accept_tracking(
        request.app.state.key_check,
        request.app.state.tracking_limiter,
        tracking_request,
        request.stream(),
    )
    return Response(body, status_code=200, media_type="application/json")


def _tracking_schema(schema: dict[str, Any]) -> dict[str, Any]:
    return {
        **_json_body(schema),
        "responses": {"200": {"description": '`{"success": true}` once committed.'}},
    }


for _path, _type in SINGLE_PATHS.items():
    router.add_api_route(
        _path,
        tracking_api,
        methods=["POST"],
        tags=["tracking"],
        summary=f"Tracking API: one {_type} event",
        description='Segment\'s HTTP Tracking API. 200 `{"success": true}` once committed; '
        "gzip bodies accepted; JSON whatever the Content-Type; at most 32 KB.",
        openapi_extra=_tracking_schema(_TRACKING_EVENT),
    )
for _path in BATCH_PATHS:
    router.add_api_route(
        _path,
        tracking_api,
        methods=["POST"],
        tags=["tracking"],
        summary="Tracking API: a batch of events",
        description="At most 2,500 events and 500 KB (32 KB per event); one commit per batch.",
        openapi_extra=_tracking_schema(_TRACKING_BATCH),
    )


@router.post("/debug")
def debug(caller: IngestCaller, session: ReadSession) -> dict[str, Any]:
    """Segment calls this when the API key is saved: 200 names the key's workspace."""
    workspace = WorkspaceRepository(session).workspace(caller.workspace_id)
    return {
        "ok": True,
        "workspace": {"id": caller.workspace_id, "name": workspace.name if workspace else None},
        "environment": caller.environment,
    }
