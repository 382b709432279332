"""A slow answer to DATA is waited for, and a missing one is an unknown outcome, never a
second email."""

from __future__ import annotations

import threading
from typing import Any

from fastapi.testclient import TestClient
from pytest_httpserver import HTTPServer

from tests.conftest import Keys, bearer, wait_for
from tests.message.test_send_email import WELCOME, message_in
from tests.smtp_sink import SmtpSink
from tidings.models import DeliveryStatus, MessageDelivery
from tidings.runtime import Runtime


def _send(client: TestClient, key: str, sink: SmtpSink, **smtp: Any) -> str:
    headers = bearer(key)
    assert client.put("/notifications/welcome", json=WELCOME, headers=headers).status_code == 201
    response = client.put(
        "/providers/smtp", json={"config": sink.provider_config(**smtp)}, headers=headers
    )
    assert response.status_code == 201, response.text
    client.post("/profiles/u1", json={"profile": {"email": "ada@example.org"}}, headers=headers)
    response = client.post(
        "/send",
        json={"message": {"to": {"user_id": "u1"}, "template": "welcome"}},
        headers=headers,
    )
    assert response.status_code == 202, response.text
    request_id: str = response.json()["requestId"]
    return request_id


def _history(client: TestClient, key: str, message_id: str) -> list[dict[str, Any]]:
    response = client.get(f"/messages/{message_id}/history", headers=bearer(key))
    results: list[dict[str, Any]] = response.json()["results"]
    return results


def test_a_reply_to_data_slower_than_the_timeout_is_waited_for_and_sent_once(
    client: TestClient, keys: Keys, smtp_sink: SmtpSink
) -> None:
    # The per-operation timeout is shorter than the server's answer to the end of DATA.
    smtp_sink.handler.delay = 1.5
    message_id = _send(client, keys.test, smtp_sink, timeout_seconds=0.5)
    message_in(client, keys.test, message_id, "SENT")
    assert len(smtp_sink.messages) == 1
    assert smtp_sink.handler.data_count == 1
    types = [entry["type"] for entry in _history(client, keys.test, message_id)]
    assert types.count("SENT") == 1
    assert "PROVIDER_ERROR" not in types


def test_no_reply_to_data_is_an_unknown_outcome_that_is_not_sent_again(
    client: TestClient, runtime: Runtime, keys: Keys, smtp_sink: SmtpSink
) -> None:
    # No answer to DATA until the test ends: longer than any timeout, on any machine.
    smtp_sink.handler.data_hold = threading.Event()
    message_id = _send(client, keys.test, smtp_sink, data_timeout_seconds=0.3)

    def unknown() -> list[dict[str, Any]] | None:
        history = _history(client, keys.test, message_id)
        return history if history[-1]["type"] == "UNKNOWN_OUTCOME" else None

    entry = wait_for(unknown, what="the unknown outcome")[-1]
    assert entry["provider"] == "smtp"
    assert "may have been accepted" in entry["reason"]
    # The server received the whole message once.
    assert smtp_sink.handler.data_count == 1
    # Neither a retry nor the sweeper sends it again.
    assert runtime.jobs.sweep(0) == 0
    message = client.get(f"/messages/{message_id}", headers=bearer(keys.test)).json()
    assert (message["status"], message["reason"], message["tidings_reason"]) == (
        "ROUTED",
        None,
        "UNKNOWN_OUTCOME",
    )
    with runtime.database.read() as session:
        (delivery,) = session.query(MessageDelivery).all()
        assert delivery.status == DeliveryStatus.UNKNOWN
        assert delivery.attempts == 1
    types = [entry["type"] for entry in _history(client, keys.test, message_id)]
    assert "PROVIDER_ERROR" not in types
    assert "SENT" not in types
    assert smtp_sink.handler.data_count == 1


def test_resend_gets_the_same_idempotency_key_on_a_retry(
    client: TestClient, keys: Keys, httpserver: HTTPServer
) -> None:
    headers = bearer(keys.test)
    assert client.put("/notifications/welcome", json=WELCOME, headers=headers).status_code == 201
    config = {
        "api_key": "re_secret",
        "from_email": "n@tidings.test",
        "base_url": httpserver.url_for(""),
    }
    response = client.put("/providers/resend", json={"config": config}, headers=headers)
    assert response.status_code == 201, response.text
    client.post("/profiles/u1", json={"profile": {"email": "ada@example.org"}}, headers=headers)
    # The first answer is lost to a server error; the retry succeeds.
    httpserver.expect_ordered_request("/emails", method="POST").respond_with_json(
        {"statusCode": 500, "name": "internal_server_error", "message": "try again"}, status=500
    )
    httpserver.expect_ordered_request("/emails", method="POST").respond_with_json({"id": "re_1"})
    response = client.post(
        "/send", json={"message": {"to": {"user_id": "u1"}, "template": "welcome"}}, headers=headers
    )
    message_id = response.json()["requestId"]
    message_in(client, keys.test, message_id, "SENT")
    keys_sent = [request.headers["Idempotency-Key"] for request, _ in httpserver.log]
    assert keys_sent == [f"{message_id}:email:resend"] * 2
