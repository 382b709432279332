"""SendGrid provider against a loopback fake of the v3 Mail Send API.

Shapes checked against:
- https://www.twilio.com/docs/sendgrid/api-reference/mail-send/mail-send (POST /v3/mail/send,
  Bearer auth, personalizations/from/reply_to/subject/content/headers/custom_args; servers
  api.sendgrid.com and api.eu.sendgrid.com)
- https://www.twilio.com/docs/sendgrid/glossary/x-message-id (202 Accepted, X-Message-ID header)
- https://www.twilio.com/docs/sendgrid/api-reference/how-to-use-the-sendgrid-v3-api/errors
  and https://twilio.com/docs/sendgrid/api-reference/mail-send/errors
  (`{"errors": [{"field", "message", "help"}]}`)
"""

from __future__ import annotations

import base64
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pytest_httpserver import HTTPServer

from tidings.errors import Unauthorized
from tidings.provider.base import (
    Delivery,
    PermanentProviderError,
    ReportOutcome,
    RetryableProviderError,
    StatusCallback,
)
from tidings.provider.email.sendgrid import SendGridConfig, SendGridProvider
from tidings.provider.registry import PROVIDERS

SECRET = "SG.test-secret-key-do-not-leak"
PATH = "/v3/mail/send"


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client() as http:
        yield http


def make_config(base_url: str, **overrides: Any) -> SendGridConfig:
    values: dict[str, Any] = {
        "api_key": SECRET,
        "from_email": "news@example.com",
        "from_name": "Example News",
        "reply_to": "help@example.com",
        "base_url": base_url,
    }
    values.update(overrides)
    return SendGridConfig(**values)


def make_delivery(**overrides: Any) -> Delivery:
    values: dict[str, Any] = {
        "message_id": "msg_01",
        "idempotency_key": "msg_01:sendgrid",
        "channel": "email",
        "recipient": {"user_id": "u1", "email": "ada@example.com"},
        "content": {"subject": "Welcome", "html": "<p>Hello Ada</p>", "text": "Hello Ada"},
        "headers": {
            "List-Unsubscribe": "<https://example.com/unsubscribe/u1>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
    }
    values.update(overrides)
    return Delivery(**values)


def base_url(httpserver: HTTPServer) -> str:
    return httpserver.url_for("/").rstrip("/")


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        assert SECRET not in text


def test_send_posts_the_documented_request_and_returns_x_message_id(
    httpserver: HTTPServer, client: httpx.Client
) -> None:
    expected_body = {
        "personalizations": [{"to": [{"email": "ada@example.com"}]}],
        "from": {"email": "news@example.com", "name": "Example News"},
        "reply_to": {"email": "help@example.com"},
        "subject": "Welcome",
        "content": [
            {"type": "text/plain", "value": "Hello Ada"},
            {"type": "text/html", "value": "<p>Hello Ada</p>"},
        ],
        "headers": {
            "List-Unsubscribe": "<https://example.com/unsubscribe/u1>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
        "custom_args": {"tidings_message_id": "msg_01"},
    }
    httpserver.expect_request(
        PATH,
        method="POST",
        headers={"Authorization": f"Bearer {SECRET}"},
        json=expected_body,
    ).respond_with_data("", status=202, headers={"X-Message-Id": "W-yvRK3kTuqO6Mgw9ZF2rg"})

    result = SendGridProvider(make_config(base_url(httpserver)), client).send(make_delivery())

    assert result.provider_message_id == "W-yvRK3kTuqO6Mgw9ZF2rg"
    assert "202" in result.response_excerpt
    assert_no_secret(result.response_excerpt)
    httpserver.check_assertions()
    [(request, _)] = httpserver.log
    assert request.headers["Content-Type"] == "application/json"
    assert request.get_json() == expected_body


def test_text_only_email_without_optional_fields(
    httpserver: HTTPServer, client: httpx.Client
) -> None:
    httpserver.expect_request(PATH, method="POST").respond_with_data(
        "", status=202, headers={"X-Message-Id": "abc"}
    )
    config = make_config(base_url(httpserver), from_name=None, reply_to=None)
    delivery = make_delivery(content={"subject": "Hi", "html": "", "text": "Plain"}, headers={})

    SendGridProvider(config, client).send(delivery)

    [(request, _)] = httpserver.log
    body = request.get_json()
    assert body["from"] == {"email": "news@example.com"}
    assert body["content"] == [{"type": "text/plain", "value": "Plain"}]
    assert "reply_to" not in body
    assert "headers" not in body


def test_refusal_is_permanent_with_sendgrids_message(
    httpserver: HTTPServer, client: httpx.Client
) -> None:
    httpserver.expect_request(PATH, method="POST").respond_with_json(
        {
            "errors": [
                {
                    "message": "The from address does not match a verified Sender Identity.",
                    "field": "from",
                    "help": None,
                }
            ]
        },
        status=403,
    )

    with pytest.raises(PermanentProviderError) as caught:
        SendGridProvider(make_config(base_url(httpserver)), client).send(make_delivery())

    error = caught.value
    assert error.status_code == 403
    assert "does not match a verified Sender Identity. (from)" in error.reason
    assert "403" in error.response_excerpt
    assert_no_secret(str(error), error.reason, error.response_excerpt)


def test_rate_limit_is_retryable_with_retry_after(
    httpserver: HTTPServer, client: httpx.Client
) -> None:
    httpserver.expect_request(PATH, method="POST").respond_with_json(
        {"errors": [{"field": None, "message": "too many requests"}]},
        status=429,
        headers={"Retry-After": "7"},
    )

    with pytest.raises(RetryableProviderError) as caught:
        SendGridProvider(make_config(base_url(httpserver)), client).send(make_delivery())

    assert caught.value.retry_after == 7.0
    assert caught.value.status_code == 429
    assert "too many requests" in caught.value.reason
    assert_no_secret(str(caught.value), caught.value.response_excerpt)


def test_server_error_is_retryable(httpserver: HTTPServer, client: httpx.Client) -> None:
    httpserver.expect_request(PATH, method="POST").respond_with_data(
        "Internal Server Error", status=500
    )

    with pytest.raises(RetryableProviderError) as caught:
        SendGridProvider(make_config(base_url(httpserver)), client).send(make_delivery())

    assert caught.value.status_code == 500
    assert caught.value.retry_after is None


def test_refused_connection_is_retryable(client: httpx.Client) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    with pytest.raises(RetryableProviderError) as caught:
        SendGridProvider(make_config(f"http://127.0.0.1:{port}"), client).send(make_delivery())

    assert "could not be reached" in caught.value.reason
    assert_no_secret(str(caught.value))


def test_timeout_is_retryable() -> None:
    def time_out(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("read timed out", request=request)

    with httpx.Client(transport=httpx.MockTransport(time_out)) as http:
        provider = SendGridProvider(make_config("https://api.sendgrid.com"), http)
        with pytest.raises(RetryableProviderError) as caught:
            provider.send(make_delivery())

    assert "timed out" in caught.value.reason


def test_missing_address_is_permanent_and_sends_nothing(
    httpserver: HTTPServer, client: httpx.Client
) -> None:
    provider = SendGridProvider(make_config(base_url(httpserver)), client)

    assert not provider.can_deliver({"user_id": "u1"})
    with pytest.raises(PermanentProviderError, match="no email address"):
        provider.send(make_delivery(recipient={"user_id": "u1"}))
    with pytest.raises(PermanentProviderError, match="neither an HTML nor a text body"):
        provider.send(make_delivery(content={"subject": "Empty", "html": "", "text": ""}))
    assert httpserver.log == []


def test_api_key_is_masked_in_config() -> None:
    config = make_config("https://api.sendgrid.com")

    assert SECRET not in config.model_dump_json()
    assert SECRET not in repr(config)
    assert config.api_key.get_secret_value() == SECRET


def test_registered_under_its_name() -> None:
    assert PROVIDERS["sendgrid"] is SendGridProvider
    assert SendGridProvider.channel == "email"


def test_event_webhook_events_become_neutral_status_reports() -> None:
    """Shapes per https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/event."""
    sg_message_id = "14c5d75ce93.dfd.64b469.filterdrecv-p3mdw1-756b745b58-kmzbl-18-5F5FC76C-9.0"
    events = [
        {"event": "delivered", "sg_message_id": sg_message_id, "response": "250 OK"},
        {"event": "bounce", "type": "blocked", "reason": "550 blocked", "status": "5.7.1"},
        {
            "event": "deferred",
            "response": "400 try later",
            "attempt": "2",
            "tidings_message_id": "m1",
        },
        {"event": "open", "sg_message_id": sg_message_id, "useragent": "Mozilla/5.0"},
        {"event": "processed", "sg_message_id": sg_message_id},
        "not an event",
    ]
    callback = StatusCallback(body=orjson.dumps(events), url="https://t.example/callbacks/sendgrid")
    reports = SendGridProvider.parse_status_callback(callback)
    assert [
        (r.outcome, r.provider_message_id, r.tidings_message_id, r.detail) for r in reports
    ] == [
        (ReportOutcome.DELIVERED, "14c5d75ce93", None, "SendGrid delivered: 250 OK"),
        (ReportOutcome.BOUNCED, None, None, "SendGrid bounce (blocked): 550 blocked (5.7.1)"),
        (ReportOutcome.INTERMEDIATE, None, "m1", "SendGrid deferred: 400 try later (attempt 2)"),
        (ReportOutcome.OPENED, "14c5d75ce93", None, "SendGrid open: Mozilla/5.0"),
        (ReportOutcome.IGNORED, None, None, ""),
        (ReportOutcome.IGNORED, None, None, ""),
    ]
    assert reports[1].bounce == "soft"
    assert reports[3].facts == {"user_agent": "Mozilla/5.0"}
    assert reports[2].status == "deferred"
    assert reports[0].raw == events[0]


def test_signed_event_webhook_verification() -> None:
    """The Signed Event Webhook: ECDSA P-256 with SHA-256 over the timestamp and the body."""
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    config = SendGridConfig(
        api_key="SG.k", from_email="n@example.org", event_webhook_public_key=b64(public)
    )
    body = b'[{"event":"delivered"}]'
    signature = b64(key.sign(b"1700000000" + body, ec.ECDSA(hashes.SHA256())))

    def callback(**headers: str) -> StatusCallback:
        return StatusCallback(
            body=body, url="https://t.example/callbacks/sendgrid", headers=headers
        )

    signed = {SIGNATURE: signature, TIMESTAMP: "1700000000"}
    SendGridProvider.verify_status_callback(config, callback(**signed))
    with pytest.raises(Unauthorized) as missing:
        SendGridProvider.verify_status_callback(config, callback())
    assert missing.value.code == "missing_signature"
    with pytest.raises(Unauthorized) as replayed:
        SendGridProvider.verify_status_callback(
            config, callback(**{**signed, TIMESTAMP: "1700000001"})
        )
    assert replayed.value.code == "invalid_signature"
    # Without a verification key (or a SendGrid config), events are accepted unsigned.
    unsigned = config.model_copy(update={"event_webhook_public_key": None})
    SendGridProvider.verify_status_callback(unsigned, callback())
    SendGridProvider.verify_status_callback(None, callback())


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


SIGNATURE = "x-twilio-email-event-webhook-signature"
TIMESTAMP = "x-twilio-email-event-webhook-timestamp"
