"""The floor of `bench/ingest`: a bare Starlette app that echoes the request body.

It runs under the uvicorn settings `tidings serve` uses (`common.serve_asgi`), so the ratio
of the two throughputs isolates what Tidings adds on top of the ASGI server: routing, key
check, validation and the group-committed SQLite write.

    python bench/ingest/echo_app.py --port 8001
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import serve_asgi


async def echo(request: Request) -> Response:
    return Response(await request.body(), media_type="application/json")


app = Starlette(routes=[Route("/inbound/segment", echo, methods=["POST"])])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8001)
    serve_asgi(app, parser.parse_args().port)


if __name__ == "__main__":
    main()
