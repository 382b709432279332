"""The Send API end to end: template → SMTP sink, with the message log."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.conftest import Keys, bearer, wait_for
from tests.smtp_sink import SmtpSink

WELCOME = {
    "name": "Welcome",
    "content": {
        "email": {
            "subject": "Welcome, {{ profile.name }}!",
            "html": "<p>Order {{ data.order_id }} for {{ profile.name }}</p>",
            "text": "Order {{ order_id }} for {{ profile.name }}",
        }
    },
}


def setup_email(client: TestClient, key: str, sink: SmtpSink) -> None:
    headers = bearer(key)
    assert client.put("/notifications/welcome", json=WELCOME, headers=headers).status_code == 201
    response = client.put(
        "/providers/smtp", json={"config": sink.provider_config()}, headers=headers
    )
    assert response.status_code == 201, response.text
    client.post(
        "/profiles/u1",
        json={"profile": {"email": "ada@example.org", "name": "Ada <Admin>"}},
        headers=headers,
    )


def message_in(client: TestClient, key: str, message_id: str, *statuses: str) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        body: dict[str, Any] = client.get(f"/messages/{message_id}", headers=bearer(key)).json()
        return body if body["status"] in statuses else None

    return wait_for(check, what=f"message {message_id} in {statuses}")


def test_template_send_to_a_user_puts_one_rendered_email_in_the_sink(
    client: TestClient, keys: Keys, smtp_sink: SmtpSink
) -> None:
    setup_email(client, keys.test, smtp_sink)
    response = client.post(
        "/send",
        json={
            "message": {"to": {"user_id": "u1"}, "template": "welcome", "data": {"order_id": "A-7"}}
        },
        headers=bearer(keys.test),
    )
    assert response.status_code == 202, response.text
    request_id = response.json()["requestId"]
    message = message_in(client, keys.test, request_id, "SENT")
    assert message["recipient"] == "u1"
    assert message["providers"][0]["provider"] == "smtp"
    wait_for(lambda: smtp_sink.messages, what="email in the sink")
    (email,) = smtp_sink.messages
    assert email["To"] == "ada@example.org"
    assert email["Subject"] == "Welcome, Ada <Admin>!"
    html = email.get_body(("html",))
    text = email.get_body(("plain",))
    assert html is not None
    assert text is not None
    assert "Order A-7 for Ada &lt;Admin&gt;" in html.get_content()
    assert "Order A-7 for Ada <Admin>" in text.get_content()
    history = client.get(f"/messages/{request_id}/history", headers=bearer(keys.test)).json()
    assert [entry["type"] for entry in history["results"]] == [
        "ENQUEUED",
        "PROFILE_LOADED",
        "RENDERED",
        "ROUTED",
        "SENT",
    ]
    assert "accepted" in history["results"][-1]["response"]
    output = client.get(f"/messages/{request_id}/output", headers=bearer(keys.test)).json()
    assert output["results"][0]["channel"] == "email"
    assert output["results"][0]["content"]["subject"] == "Welcome, Ada <Admin>!"


def test_same_idempotency_key_gives_one_email_and_the_same_request_id(
    client: TestClient, keys: Keys, smtp_sink: SmtpSink
) -> None:
    setup_email(client, keys.test, smtp_sink)
    body = {"message": {"to": {"user_id": "u1"}, "template": "welcome", "data": {"order_id": "1"}}}
    headers = {**bearer(keys.test), "Idempotency-Key": "order-1-welcome"}
    first = client.post("/send", json=body, headers=headers)
    second = client.post("/send", json=body, headers=headers)
    assert first.status_code == second.status_code == 202
    assert first.json() == second.json()
    message_in(client, keys.test, first.json()["requestId"], "SENT")
    listing = client.get("/messages", headers=bearer(keys.test)).json()
    assert len(listing["results"]) == 1
    assert len(smtp_sink.messages) == 1
    other = {"message": {**body["message"], "data": {"order_id": "2"}}}
    conflict = client.post("/send", json=other, headers=headers)
    assert conflict.status_code == 409
    assert conflict.json()["code"] == "idempotency_key_reused"


def test_no_provider_is_unroutable_no_providers(client: TestClient, keys: Keys) -> None:
    headers = bearer(keys.test)
    client.put("/notifications/welcome", json=WELCOME, headers=headers)
    client.post("/profiles/u1", json={"profile": {"email": "a@example.org"}}, headers=headers)
    response = client.post(
        "/send", json={"message": {"to": {"user_id": "u1"}, "template": "welcome"}}, headers=headers
    )
    message = message_in(client, keys.test, response.json()["requestId"], "UNROUTABLE")
    assert message["reason"] == "NO_PROVIDERS"


def test_no_address_is_unroutable_no_channels(
    client: TestClient, keys: Keys, smtp_sink: SmtpSink
) -> None:
    setup_email(client, keys.test, smtp_sink)
    response = client.post(
        "/send",
        json={"message": {"to": {"user_id": "nobody"}, "template": "welcome"}},
        headers=bearer(keys.test),
    )
    message = message_in(client, keys.test, response.json()["requestId"], "UNROUTABLE")
    assert message["reason"] == "NO_CHANNELS"
    assert smtp_sink.messages == []


def test_a_tenant_send_reaches_every_member_once(
    client: TestClient, keys: Keys, smtp_sink: SmtpSink
) -> None:
    setup_email(client, keys.test, smtp_sink)
    headers = bearer(keys.test)
    for user in ("u1", "u2"):
        client.post(
            "/profiles/" + user, json={"profile": {"email": f"{user}@example.org"}}, headers=headers
        )
        response = client.post(
            "/inbound/segment",
            json={"type": "group", "messageId": f"g-{user}", "userId": user, "groupId": "acme"},
            headers=headers,
        )
        assert response.status_code == 202
    wait_for(
        lambda: (
            len(client.get("/tenants/acme/users", headers=headers).json().get("items", [])) == 2
        ),
        what="both members",
    )
    response = client.post(
        "/send",
        json={"message": {"to": [{"tenant_id": "acme"}, {"user_id": "u1"}], "template": "welcome"}},
        headers=headers,
    )
    request_id = response.json()["requestId"]
    assert request_id.startswith("req_")
    wait_for(lambda: len(smtp_sink.messages) == 2, what="two emails")
    assert sorted(message["To"] for message in smtp_sink.messages) == [
        "u1@example.org",
        "u2@example.org",
    ]
