"""Routing fallbacks, provider failover, retries and permanent failures."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from pytest_httpserver import HTTPServer

from tests.conftest import Keys, bearer, wait_for
from tests.message.test_send_email import message_in
from tests.smtp_sink import SmtpSink
from tidings.runtime import Runtime

TEMPLATE = {
    "content": {
        "email": {"subject": "Shipped {{ order_id }}", "text": "Your order {{ order_id }} shipped"},
        "sms": {"text": "Order {{ order_id }} shipped"},
    },
    "routing": {"method": "single", "channels": ["email", "sms"]},
}

SENDGRID_PATH = "/v3/mail/send"
TWILIO_PATH = "/2010-04-01/Accounts/AC123/Messages.json"


def configure(
    client: TestClient, key: str, name: str, config: dict[str, Any], priority: int = 0
) -> None:
    response = client.put(
        f"/providers/{name}", json={"config": config, "priority": priority}, headers=bearer(key)
    )
    assert response.status_code in (200, 201), response.text


def sendgrid(httpserver: HTTPServer) -> dict[str, Any]:
    return {
        "api_key": "SG.secret",
        "from_email": "n@tidings.test",
        "base_url": httpserver.url_for(""),
    }


def send(client: TestClient, key: str, user_id: str = "u1", **message: Any) -> str:
    body = {
        "to": {"user_id": user_id},
        "template": "shipped",
        "data": {"order_id": "A1"},
        **message,
    }
    response = client.post("/send", json={"message": body}, headers=bearer(key))
    assert response.status_code == 202, response.text
    request_id: str = response.json()["requestId"]
    return request_id


def history_types(client: TestClient, key: str, message_id: str) -> list[str]:
    history = client.get(f"/messages/{message_id}/history", headers=bearer(key)).json()
    return [entry["type"] for entry in history["results"]]


def test_single_routing_falls_over_to_sms_when_the_profile_has_no_email(
    client: TestClient, keys: Keys, smtp_sink: SmtpSink, httpserver: HTTPServer
) -> None:
    headers = bearer(keys.test)
    client.put("/notifications/shipped", json=TEMPLATE, headers=headers)
    configure(client, keys.test, "smtp", smtp_sink.provider_config())
    configure(
        client,
        keys.test,
        "twilio",
        {
            "account_sid": "AC123",
            "auth_token": "tok",
            "sender": "+15550001111",
            "base_url": httpserver.url_for(""),
        },
    )
    httpserver.expect_request(TWILIO_PATH, method="POST").respond_with_json(
        {"sid": "SM42", "status": "queued"}, status=201
    )
    client.post("/profiles/u1", json={"profile": {"phone_number": "+15557654321"}}, headers=headers)
    message_id = send(client, keys.test)
    message = message_in(client, keys.test, message_id, "SENT")
    assert message["providers"][0]["channel"]["name"] == "sms"
    assert message["providers"][0]["reference"]["provider_message_id"] == "SM42"
    (request, _response) = httpserver.log[0]
    assert request.form["To"] == "+15557654321"
    assert request.form["Body"] == "Order A1 shipped"
    assert smtp_sink.messages == []


def test_a_failing_provider_fails_over_to_the_next_one(
    client: TestClient, keys: Keys, smtp_sink: SmtpSink, httpserver: HTTPServer
) -> None:
    headers = bearer(keys.test)
    client.put("/notifications/shipped", json=TEMPLATE, headers=headers)
    configure(client, keys.test, "sendgrid", sendgrid(httpserver), priority=0)
    configure(client, keys.test, "smtp", smtp_sink.provider_config(), priority=1)
    httpserver.expect_request(SENDGRID_PATH, method="POST").respond_with_json(
        {"errors": [{"message": "The from address does not match a verified Sender Identity"}]},
        status=403,
    )
    client.post("/profiles/u1", json={"profile": {"email": "a@example.org"}}, headers=headers)
    message_id = send(client, keys.test)
    message = message_in(client, keys.test, message_id, "SENT")
    assert message["providers"][0]["provider"] == "smtp"
    assert len(smtp_sink.messages) == 1
    types = history_types(client, keys.test, message_id)
    assert types[-3:] == ["PROVIDER_ERROR", "FAILOVER", "SENT"]


def test_retryable_errors_fail_over_after_the_failover_window(
    client: TestClient, keys: Keys, runtime: Runtime, smtp_sink: SmtpSink, httpserver: HTTPServer
) -> None:
    runtime.settings.failover_window_seconds = 0.3
    headers = bearer(keys.test)
    client.put("/notifications/shipped", json=TEMPLATE, headers=headers)
    configure(client, keys.test, "sendgrid", sendgrid(httpserver), priority=0)
    configure(client, keys.test, "smtp", smtp_sink.provider_config(), priority=1)
    httpserver.expect_request(SENDGRID_PATH).respond_with_data("busy", status=503)
    client.post("/profiles/u1", json={"profile": {"email": "a@example.org"}}, headers=headers)
    message_id = send(client, keys.test)
    message_in(client, keys.test, message_id, "SENT")
    assert len(httpserver.log) >= 2
    types = history_types(client, keys.test, message_id)
    assert types.count("PROVIDER_ERROR") == len(httpserver.log)
    assert types[-2:] == ["FAILOVER", "SENT"]
    assert len(smtp_sink.messages) == 1


def test_a_503_is_retried_and_then_succeeds(
    client: TestClient, keys: Keys, httpserver: HTTPServer
) -> None:
    headers = bearer(keys.test)
    client.put("/notifications/shipped", json=TEMPLATE, headers=headers)
    configure(client, keys.test, "sendgrid", sendgrid(httpserver))
    httpserver.expect_ordered_request(SENDGRID_PATH).respond_with_data("unavailable", status=503)
    httpserver.expect_ordered_request(SENDGRID_PATH).respond_with_data(
        "", status=202, headers={"X-Message-Id": "sg-77"}
    )
    client.post("/profiles/u1", json={"profile": {"email": "a@example.org"}}, headers=headers)
    message_id = send(client, keys.test)
    message = message_in(client, keys.test, message_id, "SENT")
    assert message["providers"][0]["reference"]["provider_message_id"] == "sg-77"
    assert len(httpserver.log) == 2
    history = client.get(f"/messages/{message_id}/history", headers=headers).json()["results"]
    errors = [entry for entry in history if entry["type"] == "PROVIDER_ERROR"]
    assert len(errors) == 1
    assert errors[0]["retryable"] is True
    assert "503" in errors[0]["response"]


def test_a_permanent_400_ends_undeliverable_with_the_reason(
    client: TestClient, keys: Keys, httpserver: HTTPServer
) -> None:
    headers = bearer(keys.test)
    client.put("/notifications/shipped", json=TEMPLATE, headers=headers)
    configure(client, keys.test, "sendgrid", sendgrid(httpserver))
    httpserver.expect_request(SENDGRID_PATH).respond_with_json(
        {
            "errors": [
                {
                    "message": "Does not contain a valid address.",
                    "field": "personalizations.0.to.0.email",
                }
            ]
        },
        status=400,
    )
    client.post("/profiles/u1", json={"profile": {"email": "not-an-address"}}, headers=headers)
    message_id = send(client, keys.test)
    message = message_in(client, keys.test, message_id, "UNDELIVERABLE")
    assert message["reason"] == "PROVIDER_ERROR"
    assert "Does not contain a valid address" in message["error"]
    assert len(httpserver.log) == 1
    wait_for(lambda: history_types(client, keys.test, message_id)[-1] == "UNDELIVERABLE")
