"""The live inbox stream (Server-Sent Events), against a real uvicorn server on loopback."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx
import orjson
import pytest
import uvicorn
from fastapi import FastAPI

from tests.conftest import free_port, wait_for
from tests.inbox.conftest import Scopes, deliver, token_for
from tests.processes import WAIT_SECONDS, scaled
from tidings.app import create_app
from tidings.inbox import service
from tidings.inbox.service import message_view
from tidings.runtime import Runtime
from tidings.workspace.service import create_key, resolve_keys, revoke_key

# Long enough for a busy machine; a test waiting on it fails rather than hangs.
READ_TIMEOUT = scaled(WAIT_SECONDS)


@dataclass
class Server:
    url: str
    app: FastAPI


@pytest.fixture
def server(runtime: Runtime) -> Iterator[Server]:
    app = create_app(runtime)
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        ws="none",
        lifespan="on",
        timeout_graceful_shutdown=5,
    )
    uvicorn_server = uvicorn.Server(config)
    thread = threading.Thread(target=uvicorn_server.run, daemon=True)
    thread.start()
    wait_for(lambda: uvicorn_server.started, what="uvicorn to start")
    yield Server(url=f"http://127.0.0.1:{port}", app=app)
    uvicorn_server.should_exit = True
    thread.join(scaled(WAIT_SECONDS))
    assert not thread.is_alive()


@dataclass
class Event:
    event: str | None = None
    id: str | None = None
    data: str = ""
    comments: list[str] = field(default_factory=list)


class EventReader:
    """Reads an SSE response one block (up to a blank line) at a time."""

    def __init__(self, response: httpx.Response) -> None:
        self.lines = response.iter_lines()

    def next_block(self) -> Event:
        block = Event()
        for line in self.lines:
            if line == "":
                return block
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "":
                block.comments.append(value)
            elif name == "event":
                block.event = value
            elif name == "id":
                block.id = value
            elif name == "data":
                block.data += value
        raise AssertionError("the stream ended")

    def next_message(self) -> Event:
        while True:
            block = self.next_block()
            if block.event == "message":
                return block


@contextmanager
def open_stream(
    server: Server, token: str, *, in_query: bool = True, last_event_id: str | None = None
) -> Iterator[EventReader]:
    headers = {"Accept": "text/event-stream"}
    params = {}
    if in_query:
        params["token"] = token
    else:
        headers["Authorization"] = f"Bearer {token}"
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    timeout = httpx.Timeout(READ_TIMEOUT)
    with httpx.stream(
        "GET", f"{server.url}/inbox/stream", params=params, headers=headers, timeout=timeout
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        reader = EventReader(response)
        # The first block arrives once the stream listens: anything stored later reaches it.
        assert "listening" in reader.next_block().comments
        yield reader


def test_a_published_message_arrives_at_once(
    server: Server, runtime: Runtime, scopes: Scopes, secret: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No polling within the test's patience: only the broker can deliver the event in time.
    monkeypatch.setattr(service, "POLL_SECONDS", 10 * READ_TIMEOUT)
    deliver(runtime, scopes.test, "u1", "msg_before", title="Already there")
    with open_stream(server, token_for(secret, scopes.test, "u1")) as reader:
        # Another user's message wakes nobody here.
        deliver(runtime, scopes.test, "u2", "msg_other", title="Not for u1")
        runtime.inbox_broker.publish(scopes.test.environment_id, "u2")
        row = deliver(
            runtime, scopes.test, "u1", "msg_new", title="Your order shipped", data={"o": 7}
        )
        woken = runtime.inbox_broker.publish(scopes.test.environment_id, "u1")
        assert woken == 1
        event = reader.next_message()
    assert event.id == str(row.id)
    payload = orjson.loads(event.data)
    assert payload["title"] == "Your order shipped"
    assert payload == message_view(row).model_dump()
    wait_for(
        lambda: runtime.inbox_broker.publish(scopes.test.environment_id, "u1") == 0,
        what="the stream to unsubscribe after the client left",
    )


def test_a_message_stored_without_publishing_arrives_by_polling(
    server: Server, runtime: Runtime, scopes: Scopes, secret: bytes
) -> None:
    with open_stream(server, token_for(secret, scopes.test, "u1"), in_query=False) as reader:
        # As another process (`tidings worker`) would: stored and committed, never published.
        row = deliver(runtime, scopes.test, "u1", "msg_polled", title="Found by polling")
        event = reader.next_message()
    assert event.id == str(row.id)
    assert orjson.loads(event.data)["title"] == "Found by polling"


def test_last_event_id_resumes_after_that_event(
    server: Server, runtime: Runtime, scopes: Scopes, secret: bytes
) -> None:
    first = deliver(runtime, scopes.test, "u1", "msg_1", title="Seen")
    deliver(runtime, scopes.test, "u1", "msg_2", title="Missed while away")
    deliver(runtime, scopes.test, "u1", "msg_3", title="Also missed")
    token = token_for(secret, scopes.test, "u1")
    with open_stream(server, token, last_event_id=str(first.id)) as reader:
        titles = [orjson.loads(reader.next_message().data)["title"] for _ in range(2)]
    assert titles == ["Missed while away", "Also missed"]


def test_a_quiet_stream_sends_keepalive_comments(
    server: Server, scopes: Scopes, secret: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service, "KEEPALIVE_SECONDS", 0.2)
    with open_stream(server, token_for(secret, scopes.test, "u1")) as reader:
        assert reader.next_block().comments == ["keepalive"]


def test_the_stream_refuses_bad_tokens_with_the_error_shape(
    server: Server, scopes: Scopes, secret: bytes
) -> None:
    missing = httpx.get(f"{server.url}/inbox/stream", timeout=READ_TIMEOUT)
    assert missing.status_code == 401
    assert missing.json()["code"] == "missing_inbox_token"
    assert missing.json()["field"] == "token"
    forged = token_for(b"another server", scopes.test, "u1")
    bad = httpx.get(f"{server.url}/inbox/stream", params={"token": forged}, timeout=READ_TIMEOUT)
    assert bad.status_code == 401
    assert bad.json()["code"] == "invalid_inbox_token"
    # "²" passes str.isdigit() but is no event id.
    for last_event_id in (b"yesterday", b"9" * 30, "\u00b2".encode("latin-1")):
        resume = httpx.get(
            f"{server.url}/inbox/stream",
            params={"token": token_for(secret, scopes.test, "u1")},
            headers={"Last-Event-ID": last_event_id},
            timeout=READ_TIMEOUT,
        )
        assert resume.status_code == 400
        assert resume.json()["code"] == "invalid_last_event_id"
        assert resume.json()["field"] == "Last-Event-ID"


def test_an_open_stream_ends_when_the_key_that_issued_its_token_is_revoked(
    server: Server, runtime: Runtime, secret: bytes
) -> None:
    with runtime.database.write() as (session, _):
        issuer = create_key(session, runtime.cipher, "test")
    assert issuer.key is not None
    with runtime.database.read() as session:
        scope = resolve_keys(session, runtime.cipher, [issuer.key])[issuer.key]
    with open_stream(server, token_for(secret, scope, "u1")) as reader:
        with runtime.database.write() as (session, _):
            revoke_key(session, issuer.id)
        # The next poll (within a second) sees the revoked key and ends the stream.
        with pytest.raises(AssertionError, match="the stream ended"):
            reader.next_block()
