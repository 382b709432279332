"""The pipeline honours preferences (FILTERED, one-click unsubscribe) and delivers to the inbox."""

from __future__ import annotations

from urllib.parse import urlparse

from fastapi.testclient import TestClient

from tests.conftest import Keys, bearer, wait_for
from tests.message.test_send_email import message_in, setup_email
from tests.smtp_sink import SmtpSink

DIGEST = {
    "content": {
        "email": {
            "subject": "Weekly digest",
            "text": "News. Unsubscribe: {{ urls.unsubscribe }}",
            "html": '<p>News</p><a href="{{ urls.unsubscribe }}">Unsubscribe</a>',
        }
    },
    "topic_id": "digest",
}


def _setup(client: TestClient, key: str, sink: SmtpSink, default_status: str = "OPTED_IN") -> None:
    setup_email(client, key, sink)
    headers = bearer(key)
    response = client.put(
        "/preferences/topics/digest",
        json={"name": "Weekly digest", "default_status": default_status},
        headers=headers,
    )
    assert response.status_code in (200, 201), response.text
    assert client.put("/notifications/digest", json=DIGEST, headers=headers).status_code == 201


def _send_digest(client: TestClient, key: str) -> str:
    response = client.post(
        "/send",
        json={"message": {"to": {"user_id": "u1"}, "template": "digest"}},
        headers=bearer(key),
    )
    assert response.status_code == 202, response.text
    request_id: str = response.json()["requestId"]
    return request_id


def test_an_opted_out_user_gets_no_email_and_the_message_is_filtered(
    client: TestClient, keys: Keys, smtp_sink: SmtpSink
) -> None:
    _setup(client, keys.test, smtp_sink)
    opted_out = client.put(
        "/users/u1/preferences/digest",
        json={"topic": {"status": "OPTED_OUT"}},
        headers=bearer(keys.test),
    )
    assert opted_out.status_code == 200, opted_out.text
    message = message_in(client, keys.test, _send_digest(client, keys.test), "FILTERED")
    assert message["reason"] == "UNSUBSCRIBED"
    history = client.get(f"/messages/{message['id']}/history", headers=bearer(keys.test)).json()
    assert [entry["type"] for entry in history["results"]][-1] == "FILTERED"
    assert smtp_sink.messages == []


def test_an_opt_out_default_topic_filters_users_without_a_preference(
    client: TestClient, keys: Keys, smtp_sink: SmtpSink
) -> None:
    _setup(client, keys.test, smtp_sink, default_status="OPTED_OUT")
    message_in(client, keys.test, _send_digest(client, keys.test), "FILTERED")
    client.put(
        "/users/u1/preferences/digest",
        json={"topic": {"status": "OPTED_IN"}},
        headers=bearer(keys.test),
    )
    message_in(client, keys.test, _send_digest(client, keys.test), "SENT")
    assert len(smtp_sink.messages) == 1


def test_email_carries_a_working_one_click_unsubscribe(
    client: TestClient, keys: Keys, smtp_sink: SmtpSink
) -> None:
    _setup(client, keys.test, smtp_sink)
    message_in(client, keys.test, _send_digest(client, keys.test), "SENT")
    (email,) = smtp_sink.messages
    assert email["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    header_url = email["List-Unsubscribe"].strip("<>")
    text = email.get_body(("plain",))
    assert text is not None
    assert header_url in text.get_content()
    path = urlparse(header_url).path
    # What a mail client does on "Unsubscribe" (RFC 8058): a POST with no API key.
    response = client.post(
        path,
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200, response.text
    preference = client.get("/users/u1/preferences/digest", headers=bearer(keys.test)).json()
    assert preference["topic"]["status"] == "OPTED_OUT"
    message_in(client, keys.test, _send_digest(client, keys.test), "FILTERED")
    assert len(smtp_sink.messages) == 1


def test_inbox_messages_reach_the_users_inbox(client: TestClient, keys: Keys) -> None:
    headers = bearer(keys.test)
    no_provider = client.post(
        "/send",
        json={
            "message": {
                "to": {"user_id": "u1"},
                "content": {"title": "Hi", "body": "x"},
                "routing": {"method": "single", "channels": ["inbox"]},
            }
        },
        headers=headers,
    )
    assert (
        message_in(client, keys.test, no_provider.json()["requestId"], "UNROUTABLE")["reason"]
        == "NO_PROVIDERS"
    )
    assert client.put("/providers/inbox", json={"config": {}}, headers=headers).status_code == 201
    response = client.post(
        "/send",
        json={
            "message": {
                "to": {"user_id": "u1"},
                "content": {
                    "elements": [
                        {"type": "meta", "title": "Order {{ data.order }} shipped"},
                        {"type": "text", "content": "It is on its way."},
                        {"type": "action", "content": "Track", "href": "https://example.org/t/7"},
                    ]
                },
                "data": {"order": 7},
                "routing": {"method": "single", "channels": ["inbox"]},
            }
        },
        headers=headers,
    )
    message_id = response.json()["requestId"]
    message_in(client, keys.test, message_id, "SENT")
    token = client.post("/inbox/tokens", json={"user_id": "u1"}, headers=headers).json()["token"]
    inbox = wait_for(
        lambda: client.get("/inbox/messages", headers=bearer(token)).json()["results"],
        what="the inbox message",
    )
    (item,) = inbox
    assert item["messageId"] == message_id
    assert item["title"] == "Order 7 shipped"
    assert "It is on its way." in item["body"]
    assert item["action_url"] == "https://example.org/t/7"
    assert item["data"] == {"order": 7}
    assert client.get("/inbox/messages/count", headers=bearer(token)).json() == {"count": 1}
