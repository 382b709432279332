"""A direct route for the destination's hot path.

Segment sends one request per event, so `POST /inbound/segment` is by far the busiest route.
This ASGI middleware serves it in plain ASGI, past the router, the framework's per-request
middleware and its request and response objects; every other request goes through the app
as usual. It runs the same `accept_segment_event` as the FastAPI route, which stays as the
route's OpenAPI description, so both answer identically.
"""

from __future__ import annotations

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from tidings.errors import AppError, error_body
from tidings.ingest.endpoints import (
    accept_segment_event,
    check_declared_length,
    payload_too_large,
    presented_key,
)
from tidings.ingest.validation import MAX_EVENT_BYTES

PATH = "/inbound/segment"
_JSON = (b"content-type", b"application/json")


class IngestFastPath:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        status, body = await _serve(scope, receive)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [_JSON, (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})


async def _serve(scope: Scope, receive: Receive) -> tuple[int, bytes]:
    authorization = None
    declared = None
    for name, value in scope["headers"]:
        if name == b"authorization":
            authorization = value.decode("latin-1")
        elif name == b"content-length":
            declared = value.decode("latin-1")
    try:
        key = presented_key(authorization)
        check_declared_length(declared, MAX_EVENT_BYTES)
        body = b""
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return 400, error_body("disconnected", "The client went away.")
            body += message.get("body", b"")
            if len(body) > MAX_EVENT_BYTES:
                raise payload_too_large(MAX_EVENT_BYTES)
            more = message.get("more_body", False)
        writer = scope["app"].state.ingest_writer
        return 202, orjson.dumps(await accept_segment_event(writer, key, body))
    except AppError as exc:
        return exc.status_code, error_body(exc.code, exc.message, exc.field)
