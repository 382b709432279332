"""The floor of `bench/pipeline`: Segment track event -> SQLite -> Liquid -> SMTP, minimally.

- `POST /inbound/segment` (a minimal Starlette app, under the uvicorn settings of
  `tidings serve`) parses the event with orjson and inserts it into SQLite (WAL, the
  synchronous setting given, Tidings' by default), one INSERT committed per request, then
  answers 202 `{"messageId": ..., "duplicate": ...}`.
- One thread of the same process polls the table for new rows, renders the benchmark's
  notification (one Liquid template: its subject and text, parsed once, with python-liquid
  as Tidings uses it) for the event's user, and sends it with smtplib over one connection to
  the SMTP server given, in the shape Tidings' SMTP provider writes.

No key check, no validation, no automation, no queue, no record of the outcome: what is left
is what any such pipeline has to do. The users are `bench-u<k>` (`--users` of them), each
with the name `User <k>` and the address `bench-u<k>@bench.test`, held in memory.
`GET /status` answers `{"stored": n, "sent": m}`.

    python bench/pipeline/floor_app.py --port 8003 --database floor.db --smtp-port 2525
        [--synchronous FULL] [--users 200]
"""

from __future__ import annotations

import argparse
import contextlib
import smtplib
import sys
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
from liquid import Environment
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import email_bytes, open_sqlite, serve_asgi

SENDER = ("Tidings bench", "bench@tidings.test")
# The benchmark's notification (bench/pipeline/run.py), with the floor's subject word.
SUBJECT = "floor {{ data.seq }}"
TEXT = "Hello {{ profile.name }}, this is benchmark event {{ data.seq }}."
POLL_SECONDS = 0.005


class Sender(threading.Thread):
    """Sends an email for each new row, in id order, one at a time."""

    def __init__(self, database: Path, synchronous: str, smtp_port: int, users: int) -> None:
        super().__init__(name="floor-sender", daemon=True)
        self.connection = open_sqlite(database, synchronous)
        self.smtp_port = smtp_port
        self.profiles = {
            f"bench-u{k}": {"name": f"User {k}", "email": f"bench-u{k}@bench.test"}
            for k in range(users)
        }
        environment = Environment()
        self.subject = environment.from_string(SUBJECT)
        self.text = environment.from_string(TEXT)
        self.smtp: smtplib.SMTP | None = None
        self.last_id = 0
        self.sent = 0

    def run(self) -> None:
        while True:
            rows = self.connection.execute(
                "SELECT id, message_id, user_id, properties FROM event WHERE id > ?"
                " ORDER BY id LIMIT 500",
                (self.last_id,),
            ).fetchall()
            if not rows:
                time.sleep(POLL_SECONDS)
            for row_id, message_id, user, properties in rows:
                profile = self.profiles.get(user)
                if profile is not None:
                    self.send(message_id, profile, orjson.loads(properties))
                self.last_id = row_id

    def send(self, message_id: str, profile: dict[str, str], data: dict[str, Any]) -> None:
        context = {"data": data, "profile": profile}
        message = email_bytes(
            sender=SENDER,
            to=profile["email"],
            subject=self.subject.render(**context),
            text=self.text.render(**context),
            html="",
            message_id=f"<{message_id}@tidings.test>",
        )
        for attempt in range(2):
            if self.smtp is None:
                self.smtp = smtplib.SMTP("127.0.0.1", self.smtp_port, local_hostname="floor")
            try:
                self.smtp.sendmail(SENDER[1], [profile["email"]], message)
                break
            except smtplib.SMTPServerDisconnected:
                self.smtp = None  # The server closed an idle connection: once more.
                if attempt:
                    raise
        self.sent += 1


def build_app(database: Path, synchronous: str, smtp_port: int, users: int) -> Starlette:
    connection = open_sqlite(database, synchronous)
    connection.execute(
        "CREATE TABLE IF NOT EXISTS event (id INTEGER PRIMARY KEY, message_id TEXT NOT NULL"
        " UNIQUE, user_id TEXT, properties BLOB NOT NULL)"
    )
    sender = Sender(database, synchronous, smtp_port, users)
    stored = [0]

    async def inbound(request: Request) -> Response:
        event = orjson.loads(await request.body())
        cursor = connection.execute(
            "INSERT OR IGNORE INTO event (message_id, user_id, properties) VALUES (?, ?, ?)",
            (event["messageId"], event.get("userId"), orjson.dumps(event.get("properties", {}))),
        )
        duplicate = cursor.rowcount == 0
        stored[0] += not duplicate
        body = {"messageId": event["messageId"], "duplicate": duplicate}
        return Response(orjson.dumps(body), status_code=202, media_type="application/json")

    async def status(_request: Request) -> Response:
        body = {"stored": stored[0], "sent": sender.sent}
        return Response(orjson.dumps(body), media_type="application/json")

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        sender.start()
        yield

    return Starlette(
        routes=[
            Route("/inbound/segment", inbound, methods=["POST"]),
            Route("/status", status, methods=["GET"]),
        ],
        lifespan=lifespan,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8003)
    parser.add_argument("--database", type=Path, required=True)
    parser.add_argument("--smtp-port", type=int, required=True)
    parser.add_argument("--synchronous", default="FULL", choices=["FULL", "NORMAL"])
    parser.add_argument("--users", type=int, default=200)
    args = parser.parse_args()
    serve_asgi(build_app(args.database, args.synchronous, args.smtp_port, args.users), args.port)


if __name__ == "__main__":
    main()
