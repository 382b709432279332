"""The API's route class: JSON bodies are parsed within the input limits first."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from tidings.kit import json_input


class LimitedJsonRoute(APIRoute):
    """An APIRoute whose JSON body is parsed by `kit.json_input.loads`, so a document too
    deep, an integer wider than 64 bits or a NUL is a 400 naming it (an AppError), not a
    failure where the value is stored. FastAPI then uses that parse (Request caches it).
    A body that is not JSON is left to FastAPI, which answers it as usual."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        if self.body_field is None:
            return handler

        async def limited(request: Request) -> Response:
            content_type = request.headers.get("content-type", "")
            if not content_type or "json" in content_type.lower():
                body = await request.body()
                # Not JSON: FastAPI's own parser answers it (invalid_json).
                if body:
                    with contextlib.suppress(json_input.JSONDecodeError):
                        request._json = json_input.loads(body)
            return await handler(request)

        return limited
