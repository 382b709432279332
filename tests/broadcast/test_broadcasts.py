"""Broadcasts: the API and its errors, chunks at a small size, a crash between chunks that
neither skips nor repeats a recipient, pause, resume and cancel, the per-environment rate,
and a transactional send that goes ahead of a broadcast's remaining messages."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.conftest import Keys, bearer
from tidings.app import create_app
from tidings.automation import membership
from tidings.broadcast import service
from tidings.jobs.engine import BULK_PRIORITY
from tidings.kit.time import utcnow
from tidings.models import Audience, Broadcast, Message
from tidings.runtime import Runtime
from tidings.tenant.service import apply_group
from tidings.workspace.service import resolve_keys

NEWS = {
    "name": "News",
    "content": {
        "email": {"subject": "News for {{ profile.name }}", "text": "Issue {{ data.issue }}"}
    },
}
USERS = [f"user-{n}" for n in range(7)]


@pytest.fixture
def api(runtime: Runtime, keys: Keys) -> Iterator[TestClient]:
    """The API without a consumer: the tests take the queued jobs themselves."""
    with TestClient(create_app(runtime, consumer_workers=0)) as client:
        client.headers.update(bearer(keys.test))
        assert client.put("/notifications/news", json=NEWS).status_code == 201
        recipients = [{"recipientId": user} for user in USERS]
        response = client.put("/lists/readers/subscriptions", json={"recipients": recipients})
        assert response.status_code == 204, response.text
        yield client


def _messages(runtime: Runtime, broadcast_id: str) -> list[Message]:
    with runtime.database.read() as session:
        return list(
            session.scalars(
                select(Message).where(Message.request_id == broadcast_id).order_by(Message.id)
            )
        )


def _row(runtime: Runtime, broadcast_id: str) -> Broadcast:
    with runtime.database.read() as session:
        row = session.scalars(select(Broadcast).where(Broadcast.broadcast_id == broadcast_id)).one()
        session.expunge(row)
        return row


def _release(runtime: Runtime, broadcast_id: str, chunk: int) -> service.Released:
    row = _row(runtime, broadcast_id)
    with runtime.database.write() as (session, outbox):
        return service.release_chunk(
            session,
            outbox,
            row.id,
            row.cursor,
            rate=1_000_000,
            message_timeout=timedelta(hours=1),
            chunk=chunk,
        )


def _create(api: TestClient, **body: Any) -> dict[str, Any]:
    response = api.post(
        "/broadcasts",
        json={"template": "news", "to": {"list_id": "readers"}, **body},
    )
    assert response.status_code == 202, response.text
    answer: dict[str, Any] = response.json()
    return answer


ERRORS = [
    ({"template": "nope", "to": {"list_id": "readers"}}, 404, "template"),
    ({"template": "news", "to": {}}, 400, "to"),
    ({"template": "news", "to": {"list_id": "readers", "tenant_id": "t"}}, 400, "to.tenant_id"),
    ({"template": "news", "to": {"list_id": "nobody"}}, 400, "to.list_id"),
    ({"template": "news", "to": {"audience_id": "nobody"}}, 400, "to.audience_id"),
    ({"template": "news", "to": {"tenant_id": "nobody"}}, 400, "to.tenant_id"),
    ({"template": "news", "to": {"list_id": "readers"}, "send_at": "soon"}, 400, "send_at"),
    (
        {
            "template": "news",
            "to": {"list_id": "readers"},
            "window": {"hours": {"start": "25:00", "end": "18:00"}},
        },
        400,
        "window.hours.start",
    ),
    ({"template": "news", "to": {"list_id": "readers"}, "extra": 1}, 400, "extra"),
    (
        {"template": "news", "to": {"list_id": "readers"}, "broadcast_id": "a b"},
        400,
        "broadcast_id",
    ),
]


@pytest.mark.parametrize(("body", "status", "field"), ERRORS)
def test_a_broadcasts_errors_name_the_field(
    api: TestClient, body: dict[str, Any], status: int, field: str
) -> None:
    response = api.post("/broadcasts", json=body)
    assert response.status_code == status, response.text
    answer = response.json()
    assert set(answer) >= {"code", "message", "field"}
    assert answer["field"].endswith(field), answer


def test_a_broadcast_releases_its_list_in_chunks_one_message_per_member(
    runtime: Runtime, api: TestClient
) -> None:
    created = _create(api, broadcast_id="weekly", data={"issue": 7})
    assert created["status"] == "running"
    assert created["counts"]["targeted"] == 0
    assert _release(runtime, "weekly", 3).messages == 3
    view = api.get("/broadcasts/weekly").json()
    assert view["counts"]["targeted"] == 3
    assert view["cursor"] > 0
    assert _release(runtime, "weekly", 3).messages == 3
    last = _release(runtime, "weekly", 3)
    assert last == service.Released(1, None)
    messages = _messages(runtime, "weekly")
    assert sorted(m.recipient or "" for m in messages) == sorted(USERS)
    assert {m.message_id for m in messages} == {
        service.message_id_of(m.environment_id, "weekly", m.recipient or "") for m in messages
    }
    assert all(m.data == {"issue": 7} and m.source["type"] == "broadcast" for m in messages)
    view = api.get("/broadcasts/weekly").json()
    assert view["status"] == "completed"
    assert view["counts"]["targeted"] == len(USERS)
    # A repeat of the body answers the same broadcast; another body is refused.
    again = api.post(
        "/broadcasts",
        json={
            "broadcast_id": "weekly",
            "template": "news",
            "to": {"list_id": "readers"},
            "data": {"issue": 7},
        },
    )
    assert again.status_code == 200
    assert again.json()["id"] == "weekly"
    other = api.post(
        "/broadcasts",
        json={"broadcast_id": "weekly", "template": "news", "to": {"list_id": "readers"}},
    )
    assert other.status_code == 409
    assert other.json()["field"] == "broadcast_id"
    listed = api.get("/broadcasts").json()
    assert [item["id"] for item in listed["items"]] == ["weekly"]


def test_a_tenant_and_an_audience_are_released_one_message_per_member(
    runtime: Runtime, api: TestClient, keys: Keys
) -> None:
    with runtime.database.read() as session:
        scope = resolve_keys(session, runtime.cipher, [keys.test])[keys.test]
    with runtime.database.write() as (session, _):
        for user in ("user-1", "user-3", "user-5"):
            apply_group(session, scope, "acme", {"name": "Acme"}, user)
    response = api.put("/audiences/acme-people", json={"condition": {"tenant": "acme"}})
    assert response.status_code == 200, response.text
    with runtime.database.read() as session:
        audience = session.scalars(select(Audience)).one()
    assert membership.scan(runtime.database, audience.id)
    for broadcast_id, to in (
        ("to-tenant", {"tenant_id": "acme"}),
        ("to-audience", {"audience_id": "acme-people"}),
    ):
        response = api.post(
            "/broadcasts", json={"broadcast_id": broadcast_id, "template": "news", "to": to}
        )
        assert response.status_code == 202, response.text
        while _release(runtime, broadcast_id, 2).next_at is not None:
            pass
        messages = _messages(runtime, broadcast_id)
        assert sorted(m.recipient or "" for m in messages) == ["user-1", "user-3", "user-5"]
        assert api.get(f"/broadcasts/{broadcast_id}").json()["status"] == "completed"


def test_a_broadcast_with_a_send_window_holds_each_message_until_its_opening(
    runtime: Runtime, api: TestClient
) -> None:
    hour = (utcnow().hour + 2) % 24
    window = {
        "hours": {"start": f"{hour:02d}:00", "end": f"{(hour + 1) % 24:02d}:00"},
        "timezone": "UTC",
    }
    _create(api, broadcast_id="windowed", window=window)
    while _release(runtime, "windowed", 3).next_at is not None:
        pass
    messages = _messages(runtime, "windowed")
    assert len(messages) == len(USERS)
    for message in messages:
        assert message.status == "DELAYED"
        assert message.send_at is not None
        assert message.send_at > utcnow()
        assert message.send_at.hour == hour


class Crash(BaseException):
    """Stands for the process dying: nothing in the engine catches it."""


def test_a_crash_after_a_chunk_commits_resumes_without_skipping_or_repeating(
    runtime: Runtime, api: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    _create(api, broadcast_id="crashy")
    row = _row(runtime, "crashy")
    original = service.release_chunk
    calls = {"n": 0}

    def release_then_crash(*args: Any, **kwargs: Any) -> service.Released:
        calls["n"] += 1
        if calls["n"] == 2:
            # The second chunk is being made when the process dies: its transaction
            # rolls back, chunk 1 stays committed.
            original(*args, **kwargs)
            raise Crash
        return original(*args, **kwargs)

    monkeypatch.setattr(service, "release_chunk", release_then_crash)
    monkeypatch.setattr(service, "CHUNK", 3)
    first = service.advance(
        runtime.database, row.id, 0, rate=1_000_000, message_timeout=timedelta(hours=1)
    )
    assert first.messages == 3
    cursor = _row(runtime, "crashy").cursor
    with pytest.raises(Crash):
        service.advance(
            runtime.database, row.id, cursor, rate=1_000_000, message_timeout=timedelta(hours=1)
        )
    assert len(_messages(runtime, "crashy")) == 3
    assert _row(runtime, "crashy").cursor == cursor
    monkeypatch.setattr(service, "release_chunk", original)
    # A stale job (its cursor was passed) does nothing; the sweeper's re-drive resumes.
    assert service.advance(
        runtime.database, row.id, 0, rate=1_000_000, message_timeout=timedelta(hours=1)
    ) == service.Released(0, None)
    assert service.redrive(runtime.database, utcnow(), utcnow(), 100) == 1
    while True:
        current = _row(runtime, "crashy")
        if current.status == "completed":
            break
        service.advance(
            runtime.database,
            row.id,
            current.cursor,
            rate=1_000_000,
            message_timeout=timedelta(hours=1),
        )
    recipients = Counter(m.recipient for m in _messages(runtime, "crashy"))
    assert recipients == Counter(USERS)


def test_pause_resume_and_cancel(runtime: Runtime, api: TestClient) -> None:
    _create(api, broadcast_id="held")
    assert _release(runtime, "held", 2).messages == 2
    paused = api.post("/broadcasts/held/pause")
    assert paused.status_code == 200
    assert paused.json()["status"] == "paused"
    assert _release(runtime, "held", 2) == service.Released(0, None)
    assert len(_messages(runtime, "held")) == 2
    resumed = api.post("/broadcasts/held/resume").json()
    assert resumed["status"] == "running"
    assert _release(runtime, "held", 2).messages == 2
    # Cancel: no more recipients, and the messages made but not sent are canceled.
    canceled = api.post("/broadcasts/held/cancel").json()
    assert canceled["status"] == "canceled"
    assert canceled["counts"] == {
        "targeted": 4,
        "sent": 0,
        "suppressed": 0,
        "failed": 0,
        "canceled": 4,
        "pending": 0,
    }
    assert _release(runtime, "held", 2) == service.Released(0, None)
    assert len(_messages(runtime, "held")) == 4
    assert api.post("/broadcasts/held/resume").status_code == 409
    assert api.get("/broadcasts/nope").status_code == 404


def test_a_scheduled_broadcast_waits_for_send_at(runtime: Runtime, api: TestClient) -> None:
    later = (utcnow() + timedelta(hours=1)).isoformat()
    created = _create(api, broadcast_id="later", send_at=later)
    assert created["status"] == "scheduled"
    assert _release(runtime, "later", 5).next_at is not None
    assert _messages(runtime, "later") == []
    (job,) = [runtime.jobs.huey.dequeue()]
    assert job.args == ((_row(runtime, "later").id, 0),)
    assert job.eta is not None
    assert abs((job.eta - utcnow().replace(tzinfo=None)) - timedelta(hours=1)) < timedelta(
        minutes=1
    )


def test_the_environments_rate_paces_its_broadcasts_together(
    runtime: Runtime, api: TestClient
) -> None:
    _create(api, broadcast_id="one")
    _create(api, broadcast_id="two")
    first = _row(runtime, "one")
    now = utcnow()
    with runtime.database.write() as (session, outbox):
        released = service.release_chunk(
            session, outbox, first.id, 0, rate=2, message_timeout=timedelta(hours=1), now=now
        )
    assert released.messages == 2  # a second's worth at 2 per second
    assert released.next_at == now + timedelta(seconds=1)
    second = _row(runtime, "two")
    with runtime.database.write() as (session, outbox):
        waiting = service.release_chunk(
            session, outbox, second.id, 0, rate=2, message_timeout=timedelta(hours=1), now=now
        )
    assert waiting == service.Released(0, now + timedelta(seconds=1))
    assert _messages(runtime, "two") == []


def test_a_transactional_send_goes_ahead_of_a_broadcasts_remaining_messages(
    runtime: Runtime, api: TestClient
) -> None:
    """The outcome the bound promises: a /send made while a broadcast is mid-way is routed
    before the broadcast's messages already queued and before its next chunks."""
    created = _create(api, broadcast_id="big")
    huey = runtime.jobs.huey
    # The first release job, then its messages' jobs, at the bulk priority.
    job = huey.dequeue()
    assert job.args == ((_row(runtime, "big").id, 0),)
    assert job.priority == BULK_PRIORITY
    huey.execute(job)
    assert len(_messages(runtime, "big")) == len(USERS)  # at the default rate, one chunk
    assert created["status"] == "running"
    urgent = api.post(
        "/send",
        json={"message": {"to": {"email": "reset@example.org"}, "content": {"title": "Reset"}}},
    )
    assert urgent.status_code == 202
    first = huey.dequeue()
    assert first.args == ([urgent.json()["requestId"]],)
    huey.execute(first)
    with runtime.database.read() as session:
        statuses = Counter(
            session.scalars(select(Message.status).where(Message.request_id == "big"))
        )
    assert statuses == Counter({"ENQUEUED": len(USERS)})
    while (task := huey.dequeue()) is not None:
        huey.execute(task)
    view = api.get("/broadcasts/big").json()
    # No provider is configured: every message ends UNROUTABLE, none left behind.
    assert view["counts"]["failed"] == len(USERS)
    assert view["counts"]["pending"] == 0
