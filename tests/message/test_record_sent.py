"""The SENT transition: `MessageRepository.record_sent`, the one place a send is recorded.

The tests drive the pipeline's steps themselves (no job consumer), so each outcome lands at
a chosen moment after the attempt was committed as `sending`.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pytest_httpserver import HTTPServer

from tests.callback.support import configure, history, message, prepare, send
from tests.conftest import Keys
from tidings.app import create_app
from tidings.db import Database, Outbox
from tidings.message import pipeline
from tidings.message.repository import MessageRepository, SentReply
from tidings.models import DeliveryStatus
from tidings.runtime import Runtime
from tidings.worker.context import WorkerContext


class _CountingCursor:
    def __init__(self, cursor: Any, statements: list[str]) -> None:
        self._cursor = cursor
        self._statements = statements

    def execute(self, sql: str, parameters: Any = ()) -> Any:
        self._statements.append(sql)
        return self._cursor.execute(sql, parameters)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cursor, name)


def _started_attempt(
    client: TestClient, runtime: Runtime, keys: Keys, httpserver: HTTPServer
) -> tuple[pipeline.Attempt, str]:
    configure(
        client,
        keys.test,
        "sendgrid",
        {"api_key": "SG.k", "from_email": "n@tidings.test", "base_url": httpserver.url_for("")},
    )
    prepare(client, keys.test, {"email": "a@example.org"})
    message_id = send(client, keys.test)
    context = WorkerContext(runtime.database, runtime.settings, runtime.config_cipher, runtime.http)
    (attempt,) = pipeline.process_message(context, message_id)
    assert message(client, keys.test, message_id)["providers"][0]["status"] == "SENDING"
    return attempt, message_id


def _reply(attempt: pipeline.Attempt) -> SentReply:
    return SentReply(
        provider=attempt.provider_name,
        channel=attempt.channel,
        provider_message_id="sg-1",
        response="HTTP 202",
    )


def test_a_send_is_recorded_by_four_statements_without_a_unit_of_work(
    runtime: Runtime, keys: Keys, httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    with TestClient(create_app(runtime)) as client:
        attempt, message_id = _started_attempt(client, runtime, keys, httpserver)
        statements: list[str] = []
        units_of_work: list[Outbox] = []
        driver, write = Database.write_driver, Database.write

        def counting_driver(self: Database, work: Callable[[Any], Any]) -> Any:
            return driver(self, lambda cursor: work(_CountingCursor(cursor, statements)))

        def counting_write(self: Database) -> AbstractContextManager[Any]:
            units_of_work.append(Outbox())
            return write(self)

        monkeypatch.setattr(Database, "write_driver", counting_driver)
        monkeypatch.setattr(Database, "write", counting_write)
        status = MessageRepository.record_sent(
            runtime.database, attempt.delivery_id, attempt.message_pk, _reply(attempt)
        )
        monkeypatch.undo()

        assert status == DeliveryStatus.SENT
        # The transition's three, and its count in the metrics rollup (tests/analytics/).
        assert len(statements) == 4
        assert units_of_work == []
        view = message(client, keys.test, message_id)
        assert view["status"] == "SENT"
        assert view["sent"] is not None
        assert view["providers"][0]["status"] == "SENT"
        assert view["providers"][0]["reference"]["provider_message_id"] == "sg-1"
        (sent,) = [e for e in history(client, keys.test, message_id) if e["type"] == "SENT"]
        assert sent["provider"] == "sendgrid"
        assert sent["response"] == "HTTP 202"


def test_a_delivery_sending_again_by_the_locked_path_is_recorded_sent(
    runtime: Runtime, keys: Keys, httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between the driver's statements and the locked transaction, another attempt of the
    delivery started: the reply is recorded as the same transition, under row locks."""
    with TestClient(create_app(runtime)) as client:
        attempt, message_id = _started_attempt(client, runtime, keys, httpserver)
        with runtime.database.write() as (session, _):
            delivery = MessageRepository(session).lock_delivery(attempt.delivery_id)
            assert delivery is not None
            delivery.status = DeliveryStatus.PENDING  # a retry was scheduled meanwhile
        driver, write = Database.write_driver, Database.write

        def then_another_attempt(self: Database, work: Callable[[Any], Any]) -> Any:
            result = driver(self, work)
            with write(self) as (session, _):
                delivery = MessageRepository(session).lock_delivery(attempt.delivery_id)
                assert delivery is not None
                delivery.status = DeliveryStatus.SENDING
            return result

        monkeypatch.setattr(Database, "write_driver", then_another_attempt)
        status = MessageRepository.record_sent(
            runtime.database, attempt.delivery_id, attempt.message_pk, _reply(attempt)
        )
        monkeypatch.undo()

        assert status == DeliveryStatus.SENT
        view = message(client, keys.test, message_id)
        assert view["status"] == "SENT"
        assert view["providers"][0]["status"] == "SENT"
        assert view["providers"][0]["reference"]["provider_message_id"] == "sg-1"
        types = [e["type"] for e in history(client, keys.test, message_id)]
        assert types.count("SENT") == 1


def test_a_delivery_no_longer_sending_for_another_reason_keeps_its_status(
    runtime: Runtime, keys: Keys, httpserver: HTTPServer
) -> None:
    """A delivery put back to pending (its attempt re-driven elsewhere) is left as it is."""
    with TestClient(create_app(runtime)) as client:
        attempt, message_id = _started_attempt(client, runtime, keys, httpserver)
        with runtime.database.write() as (session, _):
            delivery = MessageRepository(session).lock_delivery(attempt.delivery_id)
            assert delivery is not None
            delivery.status = DeliveryStatus.PENDING

        status = MessageRepository.record_sent(
            runtime.database, attempt.delivery_id, attempt.message_pk, _reply(attempt)
        )

        assert status == DeliveryStatus.PENDING
        view = message(client, keys.test, message_id)
        assert view["status"] == "ROUTED"
        assert "SENT" not in [e["type"] for e in history(client, keys.test, message_id)]
