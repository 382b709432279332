"""Every send checks the suppression list before routing: real sends to the SMTP sink."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event

from tests.conftest import Keys, bearer, wait_for
from tests.message.test_send_email import setup_email
from tests.smtp_sink import SmtpSink
from tidings.message import pipeline
from tidings.runtime import Runtime

PROMO = {
    "content": {"email": {"subject": "Spring sale", "text": "Everything must go"}},
    "topic_id": "promo",
}


def send(client: TestClient, key: str, to: dict[str, Any], template: str = "welcome") -> str:
    response = client.post(
        "/send", json={"message": {"to": to, "template": template}}, headers=bearer(key)
    )
    assert response.status_code == 202, response.text
    request_id: str = response.json()["requestId"]
    return request_id


def settled(client: TestClient, key: str, message_id: str, *statuses: str) -> dict[str, Any]:
    """The message once its Tidings status is one of `statuses`."""

    def check() -> dict[str, Any] | None:
        body: dict[str, Any] = client.get(f"/messages/{message_id}", headers=bearer(key)).json()
        return body if body["tidings_status"] in statuses else None

    return wait_for(check, what=f"message {message_id} in {statuses}")


def history(client: TestClient, key: str, message_id: str) -> list[dict[str, Any]]:
    response = client.get(f"/messages/{message_id}/history", headers=bearer(key))
    results: list[dict[str, Any]] = response.json()["results"]
    return results


def test_a_suppressed_address_gets_nothing_until_it_comes_off_the_list(
    client: TestClient, keys: Keys, smtp_sink: SmtpSink
) -> None:
    setup_email(client, keys.test, smtp_sink)
    headers = bearer(keys.test)
    added = client.post(
        "/suppressions",
        json={"channel": "email", "address": " ADA@example.org", "detail": "asked us to stop"},
        headers=headers,
    )
    assert added.status_code == 200, added.text

    # u1's profile holds ada@example.org.
    kept = settled(client, keys.test, send(client, keys.test, {"user_id": "u1"}), "SUPPRESSED")
    assert (kept["status"], kept["reason"]) == ("FILTERED", "FILTERED")
    assert kept["tidings_reason"] == "MANUAL"
    assert kept["error"].startswith("email ada@example.org is suppressed since ")
    assert kept["error"].endswith("(MANUAL, from api: asked us to stop)")
    last = history(client, keys.test, kept["id"])[-1]
    assert last["type"] == "SUPPRESSED"
    assert last["suppressed"] == [
        {
            "channel": "email",
            "address": "ada@example.org",
            "topic_id": None,
            "reason": "MANUAL",
            "source": "api",
        }
    ]
    # An address given inline is checked the same way, whatever its case.
    inline = send(client, keys.test, {"email": "Ada@Example.org"})
    settled(client, keys.test, inline, "SUPPRESSED")
    sent = settled(client, keys.test, send(client, keys.test, {"email": "bob@example.org"}), "SENT")
    assert sent["tidings_status"] == "SENT"
    assert [m["To"] for m in smtp_sink.messages] == ["bob@example.org"]

    assert client.delete("/suppressions/email/ada@example.org", headers=headers).status_code == 204
    settled(client, keys.test, send(client, keys.test, {"user_id": "u1"}), "SENT")
    assert [m["To"] for m in smtp_sink.messages] == ["bob@example.org", "ada@example.org"]


def test_a_topic_scoped_entry_keeps_back_only_that_topics_messages(
    client: TestClient, keys: Keys, smtp_sink: SmtpSink
) -> None:
    setup_email(client, keys.test, smtp_sink)
    headers = bearer(keys.test)
    topic = client.put(
        "/preferences/topics/promo",
        json={"name": "Promotions", "default_status": "OPTED_IN"},
        headers=headers,
    )
    assert topic.status_code in (200, 201)
    assert client.put("/notifications/promo", json=PROMO, headers=headers).status_code == 201
    added = client.post(
        "/suppressions",
        json={"channel": "email", "address": "ada@example.org", "topic_id": "promo"},
        headers=headers,
    )
    assert added.status_code == 200

    promo = send(client, keys.test, {"user_id": "u1"}, "promo")
    kept = settled(client, keys.test, promo, "SUPPRESSED")
    assert "suppressed for topic 'promo'" in kept["error"]
    settled(client, keys.test, send(client, keys.test, {"user_id": "u1"}), "SENT")
    assert [m["Subject"] for m in smtp_sink.messages] == ["Welcome, Ada <Admin>!"]


def test_a_suppressed_channel_is_skipped_and_routing_moves_on(
    client: TestClient, keys: Keys, smtp_sink: SmtpSink
) -> None:
    """With `all`, the other channels still go; with `single`, the next one is tried."""
    setup_email(client, keys.test, smtp_sink)
    headers = bearer(keys.test)
    assert client.put("/providers/inbox", json={"config": {}}, headers=headers).status_code == 201
    content = {
        "email": {"subject": "Hi", "text": "Hello"},
        "inbox": {"title": "Hi", "body": "Hello"},
    }
    template = {"content": content, "routing": {"method": "all", "channels": ["email", "inbox"]}}
    assert client.put("/notifications/both", json=template, headers=headers).status_code == 201
    client.post(
        "/suppressions", json={"channel": "email", "address": "ada@example.org"}, headers=headers
    )

    both = settled(client, keys.test, send(client, keys.test, {"user_id": "u1"}, "both"), "SENT")
    assert [p["channel"]["name"] for p in both["providers"]] == ["inbox"]
    routed = next(e for e in history(client, keys.test, both["id"]) if e["type"] == "ROUTED")
    assert routed["suppressed"][0]["address"] == "ada@example.org"
    assert any(
        note.startswith("email: email ada@example.org is suppressed") for note in routed["notes"]
    )

    single = {**template, "routing": {"method": "single", "channels": ["email", "inbox"]}}
    assert client.put("/notifications/both", json=single, headers=headers).status_code == 200
    fell_over = send(client, keys.test, {"user_id": "u1"}, "both")
    view = settled(client, keys.test, fell_over, "SENT")
    assert [p["channel"]["name"] for p in view["providers"]] == ["inbox"]

    # Another address still takes email on the same template.
    other = send(client, keys.test, {"user_id": "u2", "email": "carol@example.org"}, "both")
    view = settled(client, keys.test, other, "SENT")
    assert [p["channel"]["name"] for p in view["providers"]] == ["email"]
    assert [m["To"] for m in smtp_sink.messages] == ["carol@example.org"]


def test_a_group_of_messages_reads_the_list_once(
    client: TestClient,
    keys: Keys,
    smtp_sink: SmtpSink,
    runtime: Runtime,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The check is one indexed query per group of messages routed together, however many
    recipients it holds."""
    headers = bearer(keys.test)
    setup_email(client, keys.test, smtp_sink)
    for index in range(20):
        profile = {"email": f"user{index}@example.org", "name": f"User {index}"}
        client.post(f"/profiles/u{index}", json={"profile": profile}, headers=headers)
    suppressed = [{"channel": "email", "address": f"USER{i}@example.org"} for i in range(0, 20, 4)]
    assert (
        client.post("/suppressions", json={"suppressions": suppressed}, headers=headers).json()[
            "added"
        ]
        == 5
    )

    groups: list[int] = []
    real = pipeline.process_messages

    def counted(context: Any, message_ids: list[str]) -> Any:
        groups.append(len(message_ids))
        return real(context, message_ids)

    monkeypatch.setattr(pipeline, "process_messages", counted)
    lookups: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "FROM suppression" in statement:
            lookups.append(statement)

    event.listen(runtime.database.engine, "before_cursor_execute", seen)
    try:
        response = client.post(
            "/send",
            json={
                "message": {"to": [{"user_id": f"u{i}"} for i in range(20)], "template": "welcome"}
            },
            headers=headers,
        )
        assert response.status_code == 202
        wait_for(lambda: len(smtp_sink.messages) == 15, what="15 emails")

        def all_kept() -> list[dict[str, Any]] | None:
            found: list[dict[str, Any]] = client.get(
                "/messages?status=SUPPRESSED", headers=headers
            ).json()["results"]
            return found if len(found) == 5 else None

        kept = wait_for(all_kept, what="the 5 suppressed messages")
    finally:
        event.remove(runtime.database.engine, "before_cursor_execute", seen)
    assert sorted(message["recipient"] for message in kept) == sorted(
        f"u{i}" for i in range(0, 20, 4)
    )
    assert sum(groups) == 20
    # At most one query per group of messages routed together.
    assert 1 <= len(lookups) <= len(groups)
