"""Suppression against a live `tidings serve`: Postmark's documented hard-bounce webhook,
replayed over HTTP, suppresses the address; the next send to it falls over to SMS (a
loopback Twilio fake), an email-only send ends SUPPRESSED (FILTERED to Courier's SDK), and
mail to other addresses still reaches the real SMTP sink, as it does again for the address
once it is taken off the list."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from courier import Courier
from pytest_httpserver import HTTPServer

from tests.callback import test_postmark
from tests.callback.payloads import POSTMARK_BOUNCE, POSTMARK_MESSAGE_ID
from tests.callback.support import TEMPLATE, TWILIO_PATH, twilio_config
from tests.conftest import LiveServer, cli_keys, wait_for
from tests.processes import HTTP_TIMEOUT
from tests.smtp_sink import SmtpSink
from tidings.config import Settings

ADDRESS = "john@example.com"


@pytest.fixture
def api(live_server: LiveServer, settings: Settings) -> Iterator[httpx.Client]:
    key = next(k["key"] for k in cli_keys(settings) if k["environment"] == "test")
    with httpx.Client(
        base_url=live_server.url,
        headers={"Authorization": f"Bearer {key}"},
        timeout=HTTP_TIMEOUT,
    ) as client:
        yield client


@pytest.fixture
def vendor(live_server: LiveServer) -> Iterator[httpx.Client]:
    """Postmark's side: no API key, the webhook's basic-auth credentials."""
    with httpx.Client(base_url=live_server.url, timeout=HTTP_TIMEOUT) as client:
        yield client


@pytest.fixture
def courier(api: httpx.Client, live_server: LiveServer) -> Iterator[Courier]:
    key = api.headers["Authorization"].removeprefix("Bearer ")
    with Courier(api_key=key, base_url=live_server.url, max_retries=0) as client:
        yield client


def send(api: httpx.Client, to: dict[str, Any], **message: Any) -> str:
    body = {"to": to, "template": "shipped", "data": {"order_id": "A1"}, **message}
    response = api.post("/send", json={"message": body})
    assert response.status_code == 202, response.text
    message_id: str = response.json()["requestId"]
    return message_id


def settled(api: httpx.Client, message_id: str, status: str) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        view: dict[str, Any] = api.get(f"/messages/{message_id}").json()
        return view if view["tidings_status"] == status else None

    return wait_for(check, what=f"message {message_id} {status}")


def channels(view: dict[str, Any]) -> list[str]:
    return [provider["channel"]["name"] for provider in view["providers"]]


def test_a_bounce_webhook_suppresses_the_address_on_a_live_server(
    api: httpx.Client,
    vendor: httpx.Client,
    courier: Courier,
    httpserver: HTTPServer,
    smtp_sink: SmtpSink,
) -> None:
    httpserver.expect_request("/email", method="POST").respond_with_json(
        {"MessageID": POSTMARK_MESSAGE_ID, "ErrorCode": 0, "Message": "OK"}
    )
    httpserver.expect_request(TWILIO_PATH, method="POST").respond_with_json(
        {"sid": "SM42", "status": "queued"}, status=201
    )
    postmark = {**test_postmark.CONFIG, "base_url": httpserver.url_for("")}
    assert api.put("/providers/postmark", json={"config": postmark}).status_code == 201
    twilio = twilio_config(httpserver, "twilio-token")
    assert api.put("/providers/twilio", json={"config": twilio}).status_code == 201
    assert api.put("/notifications/shipped", json=TEMPLATE).status_code == 201
    profile = {"email": "John@Example.com", "phone_number": "+15557654321"}
    assert api.post("/profiles/u1", json={"profile": profile}).status_code == 200

    # Sent by Postmark; Postmark reports the hard bounce.
    first = send(api, {"user_id": "u1"})
    assert channels(settled(api, first, "SENT")) == ["email"]
    bounce = {**POSTMARK_BOUNCE, "Metadata": {"tidings_message_id": first}}
    answer = test_postmark.post(vendor, bounce)
    assert answer.status_code == 200, answer.text
    assert answer.json()["applied"] == 1
    (entry,) = api.get("/suppressions", params={"channel": "email"}).json()["items"]
    assert (entry["address"], entry["reason"], entry["source"]) == (
        ADDRESS,
        "HARD_BOUNCE",
        "postmark",
    )

    # Email now goes through SMTP: the list is the environment's, whatever the provider.
    assert api.delete("/providers/postmark").status_code in (200, 204)
    assert api.put("/providers/smtp", json={"config": smtp_sink.provider_config()}).status_code in (
        200,
        201,
    )

    fell_over = settled(api, send(api, {"user_id": "u1"}), "SENT")
    assert channels(fell_over) == ["sms"]
    twilio_bodies = [request.form for request, _ in httpserver.log if request.path == TWILIO_PATH]
    assert [(body["To"], body["Body"]) for body in twilio_bodies] == [
        ("+15557654321", "Order A1 shipped")
    ]

    email_only = send(api, {"user_id": "u1"}, routing={"method": "single", "channels": ["email"]})
    kept = settled(api, email_only, "SUPPRESSED")
    assert kept["tidings_reason"] == "HARD_BOUNCE"
    read = courier.messages.retrieve(email_only)
    assert (read.status, read.reason) == ("FILTERED", "FILTERED")
    history = api.get(f"/messages/{email_only}/history").json()["results"]
    assert history[-1]["type"] == "SUPPRESSED"
    assert history[-1]["suppressed"][0]["address"] == ADDRESS

    # Another address still gets its email, through the real SMTP sink.
    settled(api, send(api, {"email": "jane@example.com"}), "SENT")
    assert [message["To"] for message in smtp_sink.messages] == ["jane@example.com"]

    exported = api.get("/suppressions.csv")
    assert exported.status_code == 200
    assert f"email,{ADDRESS},,HARD_BOUNCE,postmark," in exported.text

    # Off the list, the address takes email again (as the profile writes it).
    assert api.delete(f"/suppressions/email/{ADDRESS}").status_code == 204
    assert channels(settled(api, send(api, {"user_id": "u1"}), "SENT")) == ["email"]
    assert [m["To"] for m in smtp_sink.messages] == ["jane@example.com", "John@Example.com"]
