"""A direct route for the ingest hot paths.

Segment sends one request per event to `POST /inbound/segment`, and its SDKs post batches to
the Tracking API (`POST /v1/...`): by far the busiest routes. This ASGI layer, which
`tidings.app.TidingsAPI` puts ahead of FastAPI, serves them in plain ASGI, past the
framework's per-request telemetry check, its middleware, the router and its request and
response objects; every other request goes through the app as usual. It runs the same
framework-free cores as the FastAPI routes (`segment.accept_segment`,
`tracking.accept_tracking`), which stay as the routes' OpenAPI description, so both answer
identically.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from starlette.types import ASGIApp, Receive, Scope, Send

from tidings.dependencies import client_address
from tidings.errors import AppError, BadRequest, error_body
from tidings.http_errors import INTERNAL_ERROR, INTERNAL_ERROR_BODY, log_error_answer
from tidings.ingest.segment import SegmentRequest, accept_segment
from tidings.ingest.tracking import PATHS as TRACKING_PATHS
from tidings.ingest.tracking import TrackingRequest, accept_tracking

PATH = "/inbound/segment"
_TRACKING = frozenset(TRACKING_PATHS)
_JSON = (b"content-type", b"application/json")
# The request headers the cores read (`traceparent`: a trace's parent, when tracing is on).
_HEADERS = (b"authorization", b"content-encoding", b"content-length", b"traceparent")
_ANY_ORIGIN = (b"access-control-allow-origin", b"*")
_PREFLIGHT = [
    _ANY_ORIGIN,
    (b"access-control-allow-methods", b"POST, OPTIONS"),
    (b"access-control-allow-headers", b"authorization, content-type, content-encoding"),
    (b"access-control-max-age", b"86400"),
]


class ClientDisconnected(Exception):
    pass


class IngestFastPath:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if scope["method"] == "OPTIONS":
            if path not in _TRACKING:
                await self.app(scope, receive, send)
                return
            # analytics.js posts from web pages: let any origin send, with a write key.
            await send({"type": "http.response.start", "status": 204, "headers": _PREFLIGHT})
            await send({"type": "http.response.body", "body": b""})
            return
        if path != PATH and path not in _TRACKING:
            await self.app(scope, receive, send)
            return
        try:
            status, body, headers = await _serve(scope, receive, path)
        except Exception:
            # A bug: answered in the one shape and logged, then raised for the server to log
            # its traceback, as FastAPI's routes do (http_errors.internal_error).
            log_error_answer(scope, 500, INTERNAL_ERROR, None)
            await _respond(send, path, 500, INTERNAL_ERROR_BODY, [])
            raise
        await _respond(send, path, status, body, headers)


async def _respond(
    send: Send, path: str, status: int, body: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    if path != PATH:
        headers.append(_ANY_ORIGIN)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [_JSON, (b"content-length", str(len(body)).encode()), *headers],
        }
    )
    await send({"type": "http.response.body", "body": body})


_DISCONNECTED = BadRequest("The client went away.", code="disconnected")


def _error(scope: Scope, exc: AppError) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    """The one JSON error shape, with the error's headers (`Retry-After` on a 429), logged."""
    log_error_answer(scope, exc.status_code, exc.code, exc.key_id)
    headers = [(k.lower().encode(), v.encode()) for k, v in (exc.headers or {}).items()]
    return exc.status_code, error_body(exc.code, exc.message, exc.field), headers


async def body_chunks(receive: Receive) -> AsyncIterator[bytes]:
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected
        yield message.get("body", b"")
        more = message.get("more_body", False)


async def _serve(
    scope: Scope, receive: Receive, path: str
) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    """Run the path's core on the request: its status and body, or its error's."""
    headers = {}
    for name, value in scope["headers"]:
        if name in _HEADERS:
            headers[name] = value.decode("latin-1")
    client = client_address(scope)
    state = scope["app"].state
    try:
        if path == PATH:
            segment_request = SegmentRequest(
                client=client,
                authorization=headers.get(b"authorization"),
                content_length=headers.get(b"content-length"),
                traceparent=headers.get(b"traceparent"),
            )
            body = await accept_segment(state.key_check, segment_request, body_chunks(receive))
            return 202, body, []
        tracking_request = TrackingRequest(
            path=path,
            client=client,
            authorization=headers.get(b"authorization"),
            content_encoding=headers.get(b"content-encoding"),
            content_length=headers.get(b"content-length"),
            traceparent=headers.get(b"traceparent"),
        )
        body = await accept_tracking(
            state.key_check, state.tracking_limiter, tracking_request, body_chunks(receive)
        )
        return 200, body, []
    except ClientDisconnected:
        return _error(scope, _DISCONNECTED)
    except AppError as exc:
        return _error(scope, exc)
