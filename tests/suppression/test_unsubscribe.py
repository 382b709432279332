"""A one-click unsubscribe from a topic puts the user's email address on the suppression
list for that topic (reason UNSUBSCRIBED), next to the user's OPTED_OUT preference; opting in
again lifts both. REQUIRED topics are left alone."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from fastapi.testclient import TestClient

from tests.conftest import Keys, bearer
from tests.message.test_send_email import setup_email
from tests.smtp_sink import SmtpSink
from tests.suppression.test_send import send, settled

NEWS = {
    "content": {"email": {"subject": "News", "text": "Unsubscribe: {{ urls.unsubscribe }}"}},
    "topic_id": "news",
}


def set_up(client: TestClient, key: str, sink: SmtpSink, default_status: str) -> None:
    setup_email(client, key, sink)
    headers = bearer(key)
    topic = client.put(
        "/preferences/topics/news",
        json={"name": "News", "default_status": default_status},
        headers=headers,
    )
    assert topic.status_code in (200, 201)
    assert client.put("/notifications/news", json=NEWS, headers=headers).status_code == 201


def one_click(client: TestClient, sink: SmtpSink) -> None:
    """What a mail client does with the last email's List-Unsubscribe (RFC 8058)."""
    url = sink.messages[-1]["List-Unsubscribe"].strip("<>")
    response = client.post(
        urlparse(url).path,
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200, response.text


def entries(client: TestClient, key: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = client.get("/suppressions", headers=bearer(key)).json()["items"]
    return items


def test_a_one_click_unsubscribe_suppresses_the_address_for_that_topic(
    client: TestClient, keys: Keys, smtp_sink: SmtpSink
) -> None:
    set_up(client, keys.test, smtp_sink, "OPTED_IN")
    headers = bearer(keys.test)
    settled(client, keys.test, send(client, keys.test, {"user_id": "u1"}, "news"), "SENT")
    one_click(client, smtp_sink)
    (entry,) = entries(client, keys.test)
    assert {k: v for k, v in entry.items() if k != "created_at"} == {
        "channel": "email",
        "address": "ada@example.org",
        "topic_id": "news",
        "reason": "UNSUBSCRIBED",
        "source": "unsubscribe",
        "detail": "user 'u1' unsubscribed from topic 'news'",
        "user_id": "u1",
    }
    # The user's own sends stop at their preference, as before.
    by_user = settled(
        client, keys.test, send(client, keys.test, {"user_id": "u1"}, "news"), "FILTERED"
    )
    assert by_user["reason"] == "UNSUBSCRIBED"
    # The same address without the user id is kept back by the list.
    by_address = send(client, keys.test, {"email": "ada@example.org"}, "news")
    kept = settled(client, keys.test, by_address, "SUPPRESSED")
    assert (kept["status"], kept["reason"], kept["tidings_reason"]) == (
        "FILTERED",
        "UNSUBSCRIBED",
        "UNSUBSCRIBED",
    )
    # Other messages still reach it.
    settled(client, keys.test, send(client, keys.test, {"email": "ada@example.org"}), "SENT")
    assert len(smtp_sink.messages) == 2

    # Opting in again lifts the entry with the opt-out.
    opted_in = client.put(
        "/users/u1/preferences/news", json={"topic": {"status": "OPTED_IN"}}, headers=headers
    )
    assert opted_in.status_code == 200, opted_in.text
    assert entries(client, keys.test) == []
    settled(
        client, keys.test, send(client, keys.test, {"email": "ada@example.org"}, "news"), "SENT"
    )
    assert len(smtp_sink.messages) == 3


def test_forgetting_the_choice_lifts_it_and_required_topics_add_nothing(
    client: TestClient, keys: Keys, smtp_sink: SmtpSink
) -> None:
    set_up(client, keys.test, smtp_sink, "OPTED_IN")
    settled(client, keys.test, send(client, keys.test, {"user_id": "u1"}, "news"), "SENT")
    one_click(client, smtp_sink)
    assert len(entries(client, keys.test)) == 1
    forgotten = client.delete("/users/u1/preferences/news", headers=bearer(keys.test))
    assert forgotten.status_code == 204, forgotten.text
    assert entries(client, keys.test) == []

    required = client.put(
        "/preferences/topics/news",
        json={"name": "News", "default_status": "REQUIRED"},
        headers=bearer(keys.test),
    )
    assert required.status_code == 200
    settled(client, keys.test, send(client, keys.test, {"user_id": "u1"}, "news"), "SENT")
    one_click(client, smtp_sink)
    assert entries(client, keys.test) == []


def test_erasing_the_user_keeps_the_address_suppressed_and_names_no_one(
    client: TestClient, keys: Keys, smtp_sink: SmtpSink
) -> None:
    set_up(client, keys.test, smtp_sink, "OPTED_IN")
    settled(client, keys.test, send(client, keys.test, {"user_id": "u1"}, "news"), "SENT")
    one_click(client, smtp_sink)
    response = client.delete("/profiles/u1", headers=bearer(keys.test))
    assert response.status_code in (200, 202, 204), response.text
    (entry,) = entries(client, keys.test)
    assert (entry["address"], entry["topic_id"], entry["user_id"]) == (
        "ada@example.org",
        "news",
        None,
    )
    assert "u1" not in (entry["detail"] or "")
    kept = send(client, keys.test, {"email": "ada@example.org"}, "news")
    settled(client, keys.test, kept, "SUPPRESSED")
