"""Shared setup for the callback tests: providers against loopback fakes, and a sent message."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from pytest_httpserver import HTTPServer

from tests.conftest import bearer
from tests.message.test_send_email import message_in

TEMPLATE = {
    "content": {
        "email": {"subject": "Shipped {{ order_id }}", "text": "Your order {{ order_id }} shipped"},
        "sms": {"text": "Order {{ order_id }} shipped"},
    },
    "routing": {"method": "single", "channels": ["email", "sms"]},
}
SENDGRID_PATH = "/v3/mail/send"
TWILIO_PATH = "/2010-04-01/Accounts/AC123/Messages.json"


def configure(client: TestClient, key: str, name: str, config: dict[str, Any]) -> None:
    response = client.put(f"/providers/{name}", json={"config": config}, headers=bearer(key))
    assert response.status_code in (200, 201), response.text


def prepare(client: TestClient, key: str, profile: dict[str, Any]) -> None:
    headers = bearer(key)
    assert client.put("/notifications/shipped", json=TEMPLATE, headers=headers).status_code in (
        200,
        201,
    )
    response = client.post("/profiles/u1", json={"profile": profile}, headers=headers)
    assert response.status_code == 200, response.text


def send(client: TestClient, key: str) -> str:
    body = {"to": {"user_id": "u1"}, "template": "shipped", "data": {"order_id": "A1"}}
    response = client.post("/send", json={"message": body}, headers=bearer(key))
    assert response.status_code == 202, response.text
    message_id: str = response.json()["requestId"]
    return message_id


def send_with_sendgrid(
    client: TestClient,
    key: str,
    httpserver: HTTPServer,
    x_message_id: str = "sg-abc123",
    verification_key: str | None = None,
) -> str:
    """Configure SendGrid against the fake, send, and wait for SENT."""
    configure(
        client,
        key,
        "sendgrid",
        {
            "api_key": "SG.secret",
            "from_email": "n@tidings.test",
            "base_url": httpserver.url_for(""),
            "event_webhook_public_key": verification_key,
        },
    )
    httpserver.expect_request(SENDGRID_PATH, method="POST").respond_with_data(
        "", status=202, headers={"X-Message-Id": x_message_id}
    )
    prepare(client, key, {"email": "a@example.org"})
    message_id = send(client, key)
    message = message_in(client, key, message_id, "SENT")
    assert message["providers"][0]["reference"]["provider_message_id"] == x_message_id
    return message_id


def twilio_config(httpserver: HTTPServer, auth_token: str, **extra: Any) -> dict[str, Any]:
    return {
        "account_sid": "AC123",
        "auth_token": auth_token,
        "sender": "+15550001111",
        "base_url": httpserver.url_for(""),
        **extra,
    }


def send_with_twilio(
    client: TestClient, key: str, httpserver: HTTPServer, auth_token: str, **extra: Any
) -> str:
    """Configure Twilio against the fake, send, and wait for SENT (sid SM42)."""
    configure(client, key, "twilio", twilio_config(httpserver, auth_token, **extra))
    httpserver.expect_request(TWILIO_PATH, method="POST").respond_with_json(
        {"sid": "SM42", "status": "queued"}, status=201
    )
    prepare(client, key, {"phone_number": "+15557654321"})
    message_id = send(client, key)
    message = message_in(client, key, message_id, "SENT")
    assert message["providers"][0]["reference"]["provider_message_id"] == "SM42"
    return message_id


def message(client: TestClient, key: str, message_id: str) -> dict[str, Any]:
    body: dict[str, Any] = client.get(f"/messages/{message_id}", headers=bearer(key)).json()
    return body


def history(client: TestClient, key: str, message_id: str) -> list[dict[str, Any]]:
    response = client.get(f"/messages/{message_id}/history", headers=bearer(key))
    assert response.status_code == 200, response.text
    results: list[dict[str, Any]] = response.json()["results"]
    return results


def without_ts(entry: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in entry.items() if key != "ts"}


def counts(**values: int) -> dict[str, int]:
    base = {
        "received": 0,
        "applied": 0,
        "duplicates": 0,
        "recorded": 0,
        "ignored": 0,
        "unknown": 0,
        "subscribed": 0,
    }
    return {**base, **values}


def send_with(
    client: TestClient,
    key: str,
    httpserver: HTTPServer,
    name: str,
    config: dict[str, Any],
    path: str,
    reply: dict[str, Any],
    provider_message_id: str,
) -> str:
    """Configure `name` against the fake (which answers `reply` at `path`), send to a profile
    with an email address and a phone number, and wait for SENT with the vendor's id."""
    configure(client, key, name, {**config, "base_url": httpserver.url_for("")})
    httpserver.expect_request(path, method="POST").respond_with_json(reply)
    prepare(client, key, {"email": "john@example.com", "phone_number": "+447700900000"})
    message_id = send(client, key)
    message = message_in(client, key, message_id, "SENT")
    assert message["providers"][0]["reference"]["provider_message_id"] == provider_message_id
    return message_id


def last_entry(client: TestClient, key: str, message_id: str) -> dict[str, Any]:
    return without_ts(history(client, key, message_id)[-1])
