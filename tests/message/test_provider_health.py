"""The provider-health queries: the 24-hour window's first history row, found by a binary
search on ids, and the counts and errors read from it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from sqlalchemy import delete, insert, select

from tests.conftest import Keys, bearer, wait_for
from tidings.message.repository import MessageRepository, ProviderCounts
from tidings.models import Message, MessageEvent
from tidings.runtime import Runtime

START = datetime(2026, 1, 1, tzinfo=UTC)


def _message(client: TestClient, keys: Keys, runtime: Runtime) -> tuple[int, str]:
    """A message that has ended (UNROUTABLE: no provider), so nothing adds to its history."""
    body = {"message": {"to": {"email": "a@example.org"}, "content": {"title": "T", "body": "B"}}}
    answer = client.post("/send", json=body, headers=bearer(keys.test))
    assert answer.status_code == 202

    def found() -> list[dict[str, str]]:
        return client.get("/messages", headers=bearer(keys.test)).json()["results"]

    wait_for(
        lambda: [message["status"] for message in found()] == ["UNROUTABLE"],
        what="the message UNROUTABLE",
    )
    message_id = found()[0]["id"]
    with runtime.database.read() as session:
        pk = session.scalar(select(Message.id).where(Message.message_id == message_id))
    assert pk is not None
    return pk, message_id


def test_the_window_starts_at_the_first_row_written_in_it(
    client: TestClient, keys: Keys, runtime: Runtime
) -> None:
    message_pk, message_id = _message(client, keys, runtime)
    with runtime.database.write() as (session, _):
        session.execute(delete(MessageEvent))
        rows = [
            {
                "message_pk": message_pk,
                "type": "PROVIDER_ERROR" if minute % 3 else "SENT",
                "created_at": START + timedelta(minutes=minute),
                "data": {"provider": "smtp", "channel": "email", "reason": f"r{minute}"},
            }
            for minute in range(40)
        ]
        session.execute(insert(MessageEvent), rows)
    with runtime.database.write() as (session, _):
        ids = list(session.scalars(select(MessageEvent.id).order_by(MessageEvent.id)))
        # Gaps, as deleted messages leave them.
        gone = ids[10:15]
        session.execute(delete(MessageEvent).where(MessageEvent.id.in_(gone)))
    kept = [row_id for row_id in ids if row_id not in gone]
    minute_of = {row_id: ids.index(row_id) for row_id in kept}
    with runtime.database.read() as session:
        repository = MessageRepository(session)
        for minute in (0, 1, 9, 10, 12, 15, 16, 39):
            first = repository.first_history_id_since(START + timedelta(minutes=minute))
            expected = min(row_id for row_id in kept if minute_of[row_id] >= minute)
            assert first == expected, minute
        assert repository.first_history_id_since(START + timedelta(minutes=40)) is None
        assert repository.first_history_id_since(START - timedelta(days=1)) == kept[0]

        environment_id = session.scalar(
            select(Message.environment_id).where(Message.id == message_pk)
        )
        assert environment_id is not None
        # Minutes 30..39: SENT at 30, 33, 36, 39; errors at the other six, on one message.
        counts = repository.provider_counts(environment_id, START + timedelta(minutes=30))
        assert counts == {"smtp": ProviderCounts(sent=1, failed=1)}
        assert repository.provider_counts("another-environment", START) == {}

        page = repository.provider_errors(
            environment_id, "smtp", before_id=None, after_id=None, limit=3
        )
        assert [row.reason for row in page] == ["r38", "r37", "r35"]
        assert {row.message_id for row in page} == {message_id}
        older = repository.provider_errors(
            environment_id, "smtp", before_id=page[-1].id, after_id=None, limit=2
        )
        assert [row.reason for row in older] == ["r34", "r32"]
        newer = repository.provider_errors(
            environment_id, "smtp", before_id=None, after_id=older[0].id, limit=2
        )
        assert [row.reason for row in newer] == ["r35", "r37"]
        assert (
            repository.provider_errors(
                environment_id, "twilio", before_id=None, after_id=None, limit=3
            )
            == []
        )
