"""A direct route for the destination's hot path.

Segment sends one request per event, so `POST /inbound/segment` is by far the busiest route.
This ASGI middleware hands it straight to its handler, past the router and the framework's
per-request middleware; every other request goes through the app as usual. The handler is
the same function the FastAPI route uses (which stays for the OpenAPI description), so both
answer identically.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from tidings.errors import AppError, error_response
from tidings.ingest.endpoints import inbound_segment

PATH = "/inbound/segment"


class IngestFastPath:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            response = await inbound_segment(request)
        except AppError as exc:
            response = error_response(exc)
        await response(scope, receive, send)
