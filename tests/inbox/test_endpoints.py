"""The inbox as a user sees it: stored once, listed newest first, read, unread, archived."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.conftest import Keys, bearer
from tests.inbox.conftest import Scopes, deliver, token_for, user_headers
from tidings.inbox.service import inbox_token
from tidings.kit.pagination import encode_cursor
from tidings.kit.time import isoformat, utcnow
from tidings.models import InboxMessage
from tidings.runtime import Runtime


def view(row: InboxMessage, **changes: Any) -> dict[str, Any]:
    body = {
        "messageId": row.message_id,
        "title": row.title,
        "body": row.body,
        "action_url": row.action_url,
        "data": row.data,
        "created": isoformat(row.created_at),
        "read": isoformat(row.read_at),
        "archived": isoformat(row.archived_at),
    }
    body.update(changes)
    return body


def stored(runtime: Runtime, message_id: str) -> InboxMessage:
    with runtime.database.read() as session:
        return session.scalars(
            select(InboxMessage).where(InboxMessage.message_id == message_id)
        ).one()


def listing(client: TestClient, headers: dict[str, str], **params: Any) -> list[str]:
    response = client.get("/inbox/messages", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return [item["messageId"] for item in response.json()["results"]]


def unread(client: TestClient, headers: dict[str, str]) -> int:
    response = client.get("/inbox/messages/count", headers=headers)
    assert response.status_code == 200, response.text
    count: int = response.json()["count"]
    return count


def test_store_is_idempotent_per_environment_and_message(runtime: Runtime, scopes: Scopes) -> None:
    first = deliver(
        runtime, scopes.test, "u1", "msg_1", title="Order shipped", action_url="https://x.test/o"
    )
    again = deliver(runtime, scopes.test, "u1", "msg_1", title="A retried delivery")
    assert again.id == first.id
    assert again.title == "Order shipped"
    assert again.action_url == "https://x.test/o"
    other_environment = deliver(runtime, scopes.production, "u1", "msg_1")
    assert other_environment.id != first.id
    with runtime.database.read() as session:
        rows = session.scalars(select(InboxMessage).order_by(InboxMessage.id)).all()
    assert [(row.environment_id, row.message_id, row.title) for row in rows] == [
        (scopes.test.environment_id, "msg_1", "Order shipped"),
        (scopes.production.environment_id, "msg_1", "Hello"),
    ]
    assert rows[1].action_url is None


def test_messages_are_listed_newest_first_in_pages(
    client: TestClient, runtime: Runtime, scopes: Scopes, secret: bytes
) -> None:
    for number in (1, 2, 3):
        deliver(
            runtime, scopes.test, "u1", f"msg_{number}", title=f"Title {number}", data={"n": number}
        )
    headers = user_headers(secret, scopes.test, "u1")

    first = client.get("/inbox/messages", params={"limit": 2}, headers=headers)
    assert first.status_code == 200
    body = first.json()
    assert body["results"] == [view(stored(runtime, "msg_3")), view(stored(runtime, "msg_2"))]
    assert body["results"][0]["data"] == {"n": 3}
    assert body["paging"]["more"] is True

    second = client.get(
        "/inbox/messages", params={"limit": 2, "cursor": body["paging"]["cursor"]}, headers=headers
    )
    assert second.json() == {
        "paging": {"cursor": None, "more": False},
        "results": [view(stored(runtime, "msg_1"))],
    }


def test_read_unread_archive_and_count(
    client: TestClient, runtime: Runtime, scopes: Scopes, secret: bytes
) -> None:
    for number in (1, 2, 3):
        deliver(runtime, scopes.test, "u1", f"msg_{number}")
    headers = user_headers(secret, scopes.test, "u1")
    assert unread(client, headers) == 3

    read = client.post("/inbox/messages/msg_1/read", headers=headers)
    assert read.status_code == 200
    row = stored(runtime, "msg_1")
    assert row.read_at is not None
    assert read.json() == view(row)
    assert unread(client, headers) == 2
    assert listing(client, headers, status="read") == ["msg_1"]
    assert listing(client, headers, status="unread") == ["msg_3", "msg_2"]
    # Reading again keeps the first read time.
    client.post("/inbox/messages/msg_1/read", headers=headers)
    assert stored(runtime, "msg_1").read_at == row.read_at

    marked_unread = client.post("/inbox/messages/msg_1/unread", headers=headers)
    assert marked_unread.json() == view(row, read=None)
    assert stored(runtime, "msg_1").read_at is None
    assert unread(client, headers) == 3

    archived = client.post("/inbox/messages/msg_2/archive", headers=headers)
    archived_row = stored(runtime, "msg_2")
    assert archived_row.archived_at is not None
    assert archived.json() == view(archived_row)
    assert listing(client, headers) == ["msg_3", "msg_1"]
    assert listing(client, headers, status="unread") == ["msg_3", "msg_1"]
    assert listing(client, headers, status="archived") == ["msg_2"]
    assert unread(client, headers) == 2


def test_read_all_marks_every_unread_message(
    client: TestClient, runtime: Runtime, scopes: Scopes, secret: bytes
) -> None:
    for number in (1, 2, 3):
        deliver(runtime, scopes.test, "u1", f"msg_{number}")
    deliver(runtime, scopes.test, "u2", "msg_other")
    headers = user_headers(secret, scopes.test, "u1")
    client.post("/inbox/messages/msg_1/read", headers=headers)

    response = client.post("/inbox/messages/read-all", headers=headers)
    assert response.status_code == 200
    assert response.json() == {"updated": 2}
    assert unread(client, headers) == 0
    assert listing(client, headers, status="read") == ["msg_3", "msg_2", "msg_1"]
    assert stored(runtime, "msg_other").read_at is None
    assert client.post("/inbox/messages/read-all", headers=headers).json() == {"updated": 0}


def test_a_user_cannot_touch_another_users_message(
    client: TestClient, runtime: Runtime, scopes: Scopes, secret: bytes
) -> None:
    deliver(runtime, scopes.test, "u1", "msg_1")
    intruder = user_headers(secret, scopes.test, "u2")
    for action in ("read", "unread", "archive"):
        response = client.post(f"/inbox/messages/msg_1/{action}", headers=intruder)
        assert response.status_code == 404
        assert response.json() == {
            "code": "inbox_message_not_found",
            "message": "No inbox message 'msg_1' for this user. Use a `messageId` from "
            "GET /inbox/messages.",
            "field": "message_id",
        }
    assert client.post("/inbox/messages/read-all", headers=intruder).json() == {"updated": 0}
    assert listing(client, intruder) == []
    assert unread(client, intruder) == 0
    row = stored(runtime, "msg_1")
    assert (row.read_at, row.archived_at) == (None, None)


def test_environments_are_isolated(
    client: TestClient, runtime: Runtime, scopes: Scopes, secret: bytes, keys: Keys
) -> None:
    deliver(runtime, scopes.test, "u1", "msg_test", title="Test only")
    response = client.post("/inbox/tokens", json={"user_id": "u1"}, headers=bearer(keys.production))
    production = bearer(response.json()["token"])
    assert listing(client, production) == []
    assert listing(client, production, status="archived") == []
    assert unread(client, production) == 0
    assert client.post("/inbox/messages/msg_test/read", headers=production).status_code == 404
    assert client.post("/inbox/messages/read-all", headers=production).json() == {"updated": 0}
    assert stored(runtime, "msg_test").read_at is None

    deliver(runtime, scopes.production, "u1", "msg_production")
    assert listing(client, production) == ["msg_production"]
    assert listing(client, user_headers(secret, scopes.test, "u1")) == ["msg_test"]


def test_user_endpoints_need_a_valid_inbox_token(
    client: TestClient, runtime: Runtime, scopes: Scopes, secret: bytes, keys: Keys
) -> None:
    deliver(runtime, scopes.test, "u1", "msg_1")
    missing = client.get("/inbox/messages")
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == 'Bearer realm="inbox"'
    assert missing.json() == {
        "code": "missing_inbox_token",
        "message": "Missing inbox token. Issue one for the user with POST /inbox/tokens (with an "
        "API key) and send it as `Authorization: Bearer <token>`.",
        "field": "Authorization",
    }

    api_key = client.get("/inbox/messages/count", headers=bearer(keys.test))
    assert api_key.status_code == 401
    assert api_key.json()["code"] == "invalid_inbox_token"
    assert api_key.json()["field"] == "Authorization"

    token = inbox_token(secret, scopes.test.environment_id, "u1", utcnow(), scopes.test.key_id)
    expired_response = client.post("/inbox/messages/msg_1/read", headers=bearer(token))
    assert expired_response.status_code == 401
    assert expired_response.json()["code"] == "expired_inbox_token"

    forged = inbox_token(
        b"someone else's secret", scopes.test.environment_id, "u1", utcnow(), scopes.test.key_id
    )
    assert client.post("/inbox/messages/read-all", headers=bearer(forged)).status_code == 401
    assert stored(runtime, "msg_1").read_at is None

    # Only the stream takes the token in the query string.
    query = client.get("/inbox/messages", params={"token": token_for(secret, scopes.test, "u1")})
    assert query.status_code == 401
    assert query.json()["code"] == "missing_inbox_token"


def test_bad_list_parameters_name_the_field(
    client: TestClient, scopes: Scopes, secret: bytes
) -> None:
    headers = user_headers(secret, scopes.test, "u1")
    status = client.get("/inbox/messages", params={"status": "deleted"}, headers=headers)
    assert status.status_code == 400
    assert status.json()["field"] == "status"
    for forged in ("???", encode_cursor(2**64)):
        cursor = client.get("/inbox/messages", params={"cursor": forged}, headers=headers)
        assert cursor.status_code == 400
        assert cursor.json()["code"] == "invalid_cursor"
        assert cursor.json()["field"] == "cursor"
    limit = client.get("/inbox/messages", params={"limit": 0}, headers=headers)
    assert limit.status_code == 400
    assert limit.json()["field"] == "limit"
