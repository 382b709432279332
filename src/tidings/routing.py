"""The API's route class: the key is checked first, then the JSON body within the limits."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from tidings.dependencies import key_check
from tidings.kit import json_input


class ApiRoute(APIRoute):
    """Every API router's route class. Before FastAPI reads, parses and validates the body:

    1. the route's API key is checked (`dependencies.key_check`): FastAPI solves the
       dependencies only after the body, so an unauthenticated request with a malformed body
       would get 400 and learn how the endpoint parses. The dependency then finds the caller
       already checked;
    2. a JSON body is parsed by `kit.json_input.loads`, so a document too deep, an integer
       wider than 64 bits or a NUL is a 400 naming it (an AppError), not a failure where the
       value is stored. FastAPI then uses that parse (Request caches it). A body that is not
       JSON is left to FastAPI, which answers it as usual (invalid_json).
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        check = key_check(self.dependant)
        parses_json = self.body_field is not None

        async def route(request: Request) -> Response:
            if check is not None:
                await run_in_threadpool(check, request)
            if parses_json:
                content_type = request.headers.get("content-type", "")
                if not content_type or "json" in content_type.lower():
                    body = await request.body()
                    if body:
                        with contextlib.suppress(json_input.JSONDecodeError):
                            request._json = json_input.loads(body)
            return await handler(request)

        return route
