"""A loopback HTTP receiver for outbound webhooks: it records every request and answers as
each path is told to (a status, a sequence of statuses, or a hold that keeps the request
waiting until the test releases it, or the receiver stops)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
import pytest
from standardwebhooks import Webhook

from tests.processes import START_SECONDS, scaled


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)

    def verified(self, secret: str) -> Any:
        """The payload, once the official Standard Webhooks verifier accepts the request."""
        return Webhook(secret).verify(self.body, self.headers)


@dataclass
class Route:
    statuses: list[int] = field(default_factory=lambda: [200])
    hold: threading.Event | None = None


class Receiver:
    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[Received] = []
        # Requests waiting on a hold right now.
        self.held = 0
        self._lock = threading.Lock()
        self._holds: list[threading.Event] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                received = Received(
                    self.path, {k.lower(): v for k, v in self.headers.items()}, body
                )
                status, hold = receiver._answer(received)
                if hold is not None:
                    with receiver._lock:
                        receiver.held += 1
                    try:
                        hold.wait(scaled(START_SECONDS))
                    finally:
                        with receiver._lock:
                            receiver.held -= 1
                try:
                    self.send_response(status)
                    answer = f"answer {status} to {self.path}: " + "x" * 3000
                    self.send_header("content-length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer.encode())
                except OSError:
                    pass  # the sender gave up waiting (a timeout)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _answer(self, received: Received) -> tuple[int, threading.Event | None]:
        with self._lock:
            self.requests.append(received)
            route = self.routes.get(received.path, Route())
            status = route.statuses.pop(0) if len(route.statuses) > 1 else route.statuses[0]
            return status, route.hold

    def answer(self, path: str, *statuses: int) -> str:
        """Answer requests to `path` with these statuses in turn (the last one from then on);
        returns the URL."""
        self.routes[path] = Route(list(statuses) or [200])
        return self.url + path

    def hang(self, path: str) -> threading.Event:
        """Keep each request to `path` waiting until the returned event is set."""
        hold = threading.Event()
        self._holds.append(hold)
        self.routes[path] = Route([200], hold)
        return hold

    def to(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        for hold in self._holds:
            hold.set()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver()
    running.start()
    yield running
    running.stop()
