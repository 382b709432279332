"""The floor of `bench/batch`: a minimal Starlette app for `POST /v1/batch`.

Per request it parses the body with orjson and writes the batch's events to SQLite (WAL,
the synchronous setting given, Tidings' by default) in one multi-row INSERT and one commit,
then answers 200 `{"success": true}`, as Tidings does once the batch is committed. Each row
holds the event's messageId (unique, as Tidings' idempotency needs), type, userId and the
event as JSON. No key check, no validation, no queue: what is left is the ASGI server, the
JSON parse and the durable write, under the uvicorn settings of `tidings serve`.

    python bench/batch/floor_app.py --port 8002 --database floor.db [--synchronous FULL]
"""

from __future__ import annotations

import argparse
import functools
import sqlite3
import sys
from pathlib import Path
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import open_sqlite, serve_asgi

SUCCESS = orjson.dumps({"success": True})


# The floor's table: a row per event with its messageId (unique, as Tidings' idempotency
# needs), type, userId and the event as JSON.
TABLE = (
    "CREATE TABLE IF NOT EXISTS event (id INTEGER PRIMARY KEY, message_id TEXT NOT NULL"
    " UNIQUE, type TEXT, user_id TEXT, body BLOB NOT NULL)"
)


@functools.cache
def insert(count: int) -> str:
    """The one multi-row INSERT of `count` events."""
    values = ",".join(["(?,?,?,?)"] * count)
    return f"INSERT INTO event (message_id, type, user_id, body) VALUES {values}"


def store(connection: sqlite3.Connection, events: list[dict[str, Any]]) -> None:
    """Write the events in one INSERT and one commit."""
    parameters: list[object] = []
    for event in events:
        parameters += (event["messageId"], event["type"], event["userId"], orjson.dumps(event))
    connection.execute("BEGIN IMMEDIATE")
    connection.execute(insert(len(events)), parameters)
    connection.execute("COMMIT")


def build_app(database: Path, synchronous: str) -> Starlette:
    connection = open_sqlite(database, synchronous)
    connection.execute(TABLE)

    async def batch(request: Request) -> Response:
        store(connection, orjson.loads(await request.body())["batch"])
        return Response(SUCCESS, media_type="application/json")

    return Starlette(routes=[Route("/v1/batch", batch, methods=["POST"])])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8002)
    parser.add_argument("--database", type=Path, required=True)
    parser.add_argument("--synchronous", default="FULL", choices=["FULL", "NORMAL"])
    args = parser.parse_args()
    serve_asgi(build_app(args.database, args.synchronous), args.port)


if __name__ == "__main__":
    main()
