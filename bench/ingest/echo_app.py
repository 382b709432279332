"""The baseline for `bench/ingest`: a bare Starlette app that echoes the request body.

It runs under exactly the uvicorn settings `tidings serve` uses (one process, `loop` and
`http` left on "auto", access log off, log level warning), so the ratio of the two
throughputs isolates what Tidings adds on top of the ASGI server: routing, key check,
validation and the group-committed SQLite write.

    python bench/ingest/echo_app.py --port 8001
"""

from __future__ import annotations

import argparse

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


async def echo(request: Request) -> Response:
    return Response(await request.body(), media_type="application/json")


app = Starlette(routes=[Route("/inbound/segment", echo, methods=["POST"])])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args()
    # Keep in step with the uvicorn.run call in tidings.cli.serve.
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=10,
    )


if __name__ == "__main__":
    main()
