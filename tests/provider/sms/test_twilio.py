"""Twilio SMS provider against a loopback fake of Twilio's Messages resource.

Shapes checked against:
- https://www.twilio.com/docs/messaging/api/message-resource ("Create a Message resource":
  POST /2010-04-01/Accounts/{AccountSid}/Messages.json, form-encoded To, Body, From or
  MessagingServiceSid, StatusCallback; 201 with the Message resource, `sid` "SM…", initial
  `status` "queued", or "accepted" with a Messaging Service)
- https://www.twilio.com/docs/messaging/api (Programmable Messaging REST API overview: base URL
  https://api.twilio.com/2010-04-01, HTTP Basic auth with the Account SID as user name and the
  Auth Token as password)
- https://www.twilio.com/docs/messaging/guides/outbound-message-status-in-status-callbacks
  (initial status "queued", or "accepted" when sent through a Messaging Service)
- https://www.twilio.com/docs/usage/troubleshooting/debugging-your-application (error body
  `{"code": 21211, "message": "The 'To' number … is not a valid phone number.", "more_info":
  "https://www.twilio.com/docs/errors/21211", "status": 400}`)
- https://www.twilio.com/docs/api/errors/20429 (429 Too Many Requests, retry after Retry-After)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from tidings.errors import BadRequest, Forbidden
from tidings.provider.base import (
    Delivery,
    PermanentProviderError,
    ReportOutcome,
    RetryableProviderError,
    StatusCallback,
)
from tidings.provider.registry import PROVIDERS
from tidings.provider.sms.twilio import TwilioConfig, TwilioProvider

ACCOUNT_SID = "AC0123456789abcdef0123456789abcdef"
AUTH_TOKEN = "twilio-auth-token-do-not-leak"
PATH = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
MESSAGE_SID = "SM1f0e8ae6ade43cb3c0ce4525424e404f"
SUCCESS = {
    "account_sid": ACCOUNT_SID,
    "api_version": "2010-04-01",
    "body": "Your code is 4821",
    "date_created": "Thu, 24 Aug 2023 05:01:45 +0000",
    "date_sent": None,
    "date_updated": "Thu, 24 Aug 2023 05:01:45 +0000",
    "direction": "outbound-api",
    "error_code": None,
    "error_message": None,
    "from": "+15557122661",
    "messaging_service_sid": None,
    "num_media": "0",
    "num_segments": "1",
    "price": None,
    "price_unit": None,
    "sid": MESSAGE_SID,
    "status": "queued",
    "subresource_uris": {
        "media": f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{MESSAGE_SID}/Media.json"
    },
    "to": "+15558675310",
    "uri": f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{MESSAGE_SID}.json",
}
INVALID_TO = {
    "code": 21211,
    "message": "The 'To' number +1555867531 is not a valid phone number.",
    "more_info": "https://www.twilio.com/docs/errors/21211",
    "status": 400,
}


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client() as http:
        yield http


def base_url(httpserver: HTTPServer) -> str:
    return httpserver.url_for("/").rstrip("/")


def make_config(url: str, **overrides: Any) -> TwilioConfig:
    values: dict[str, Any] = {
        "account_sid": ACCOUNT_SID,
        "auth_token": AUTH_TOKEN,
        "sender": "+15557122661",
        "base_url": url,
    }
    values.update(overrides)
    return TwilioConfig(**values)


def make_delivery(**overrides: Any) -> Delivery:
    values: dict[str, Any] = {
        "message_id": "msg_01",
        "idempotency_key": "msg_01:twilio",
        "channel": "sms",
        "recipient": {"user_id": "u1", "phone_number": "+15558675310"},
        "content": {"text": "Your code is 4821"},
    }
    values.update(overrides)
    return Delivery(**values)


def recording_handler(
    seen: list[dict[str, Any]],
    status: int,
    body: dict[str, Any],
    headers: dict[str, str] | None = None,
) -> Any:
    def handle(request: Request) -> Response:
        seen.append(
            {
                "method": request.method,
                "path": request.path,
                "authorization": request.headers.get("Authorization"),
                "content_type": request.headers.get("Content-Type", ""),
                "form": request.form.to_dict(flat=False),
            }
        )
        return Response(
            json.dumps(body),
            status=status,
            headers=headers or {},
            content_type="application/json",
        )

    return handle


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_registered_for_sms() -> None:
    assert PROVIDERS["twilio"] is TwilioProvider
    assert TwilioProvider.channel == "sms"


def test_send_posts_the_documented_form_and_returns_the_message_sid(
    httpserver: HTTPServer, client: httpx.Client
) -> None:
    seen: list[dict[str, Any]] = []
    httpserver.expect_request(PATH, method="POST").respond_with_handler(
        recording_handler(seen, 201, SUCCESS)
    )
    provider = TwilioProvider(make_config(base_url(httpserver)), client)

    result = provider.send(make_delivery())

    assert result.provider_message_id == MESSAGE_SID
    assert result.response_excerpt.startswith("HTTP 201:")
    assert seen == [
        {
            "method": "POST",
            "path": PATH,
            "authorization": basic(ACCOUNT_SID, AUTH_TOKEN),
            "content_type": "application/x-www-form-urlencoded",
            "form": {
                "To": ["+15558675310"],
                "Body": ["Your code is 4821"],
                "From": ["+15557122661"],
            },
        }
    ]


def test_messaging_service_and_status_callback_are_sent(
    httpserver: HTTPServer, client: httpx.Client
) -> None:
    seen: list[dict[str, Any]] = []
    accepted = {**SUCCESS, "status": "accepted", "messaging_service_sid": "MG" + "0" * 32}
    httpserver.expect_request(PATH, method="POST").respond_with_handler(
        recording_handler(seen, 201, accepted)
    )
    config = make_config(
        base_url(httpserver),
        sender=None,
        messaging_service_sid="MG" + "0" * 32,
        status_callback_url="https://tidings.example.com/hooks/twilio",
    )

    result = TwilioProvider(config, client).send(make_delivery())

    assert result.provider_message_id == MESSAGE_SID
    assert seen[0]["form"] == {
        "To": ["+15558675310"],
        "Body": ["Your code is 4821"],
        "MessagingServiceSid": ["MG" + "0" * 32],
        "StatusCallback": ["https://tidings.example.com/hooks/twilio?tidings_message_id=msg_01"],
    }


def test_invalid_number_is_permanent_with_twilios_message(
    httpserver: HTTPServer, client: httpx.Client
) -> None:
    httpserver.expect_request(PATH, method="POST").respond_with_json(INVALID_TO, status=400)
    provider = TwilioProvider(make_config(base_url(httpserver)), client)

    with pytest.raises(PermanentProviderError) as caught:
        provider.send(make_delivery(recipient={"phone_number": "+1555867531"}))

    assert caught.value.status_code == 400
    assert "is not a valid phone number" in caught.value.reason
    assert "21211" in caught.value.reason
    assert "21211" in caught.value.response_excerpt


def test_bad_credentials_are_permanent(httpserver: HTTPServer, client: httpx.Client) -> None:
    body = {
        "code": 20003,
        "message": "Authenticate",
        "more_info": "https://www.twilio.com/docs/errors/20003",
        "status": 401,
    }
    httpserver.expect_request(PATH, method="POST").respond_with_json(body, status=401)

    with pytest.raises(PermanentProviderError) as caught:
        TwilioProvider(make_config(base_url(httpserver)), client).send(make_delivery())

    assert caught.value.status_code == 401
    assert "Authenticate (Twilio error 20003)" in caught.value.reason
    assert AUTH_TOKEN not in str(caught.value)
    assert AUTH_TOKEN not in caught.value.response_excerpt


def test_429_is_retryable_with_retry_after(httpserver: HTTPServer, client: httpx.Client) -> None:
    body = {
        "code": 20429,
        "message": "Too Many Requests",
        "more_info": "https://www.twilio.com/docs/errors/20429",
        "status": 429,
    }
    httpserver.expect_request(PATH, method="POST").respond_with_json(
        body, status=429, headers={"Retry-After": "7"}
    )

    with pytest.raises(RetryableProviderError) as caught:
        TwilioProvider(make_config(base_url(httpserver)), client).send(make_delivery())

    assert caught.value.retry_after == 7.0
    assert caught.value.status_code == 429
    assert "Too Many Requests" in caught.value.reason


def test_5xx_is_retryable(httpserver: HTTPServer, client: httpx.Client) -> None:
    body = {
        "code": 20500,
        "message": "Internal Server Error",
        "more_info": "https://www.twilio.com/docs/errors/20500",
        "status": 500,
    }
    httpserver.expect_request(PATH, method="POST").respond_with_json(body, status=500)

    with pytest.raises(RetryableProviderError) as caught:
        TwilioProvider(make_config(base_url(httpserver)), client).send(make_delivery())

    assert caught.value.status_code == 500
    assert caught.value.retry_after is None


def test_refused_connection_is_retryable(client: httpx.Client) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    provider = TwilioProvider(make_config(f"http://127.0.0.1:{port}"), client)

    with pytest.raises(RetryableProviderError) as caught:
        provider.send(make_delivery())

    assert "could not be reached" in caught.value.reason
    assert AUTH_TOKEN not in str(caught.value)


def test_missing_phone_number_is_permanent(client: httpx.Client) -> None:
    provider = TwilioProvider(make_config("http://127.0.0.1:9"), client)

    assert provider.can_deliver({"email": "ada@example.com"}) is False
    assert provider.can_deliver({"phone_number": "+15558675310"}) is True
    with pytest.raises(PermanentProviderError, match="no phone_number"):
        provider.send(make_delivery(recipient={"email": "ada@example.com"}))


def test_config_needs_a_sender() -> None:
    with pytest.raises(ValueError, match="Messaging Service SID") as caught:
        TwilioConfig(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN)
    assert AUTH_TOKEN not in str(caught.value)


def test_auth_token_is_masked() -> None:
    config = make_config("https://api.twilio.com")

    assert AUTH_TOKEN not in config.model_dump_json()
    assert AUTH_TOKEN not in repr(config)
    assert config.auth_token.get_secret_value() == AUTH_TOKEN


def _signed(params: dict[str, str], url: str, token: str = AUTH_TOKEN) -> str:
    """twilio-python's RequestValidator.compute_signature: HMAC-SHA1 of the URL followed by
    each parameter's name and value, sorted by name."""
    data = url + "".join(name + params[name] for name in sorted(params))
    return base64.b64encode(hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()).decode()


def _status_callback(params: dict[str, str], url: str, **headers: str) -> StatusCallback:
    query = dict(parse_qsl(urlsplit(url).query))
    return StatusCallback(body=urlencode(params).encode(), url=url, headers=headers, query=query)


def test_a_status_callback_becomes_one_neutral_report() -> None:
    """Shape per https://www.twilio.com/docs/messaging/guides/track-outbound-message-status."""
    params = {
        "MessageSid": MESSAGE_SID,
        "MessageStatus": "undelivered",
        "ErrorCode": "30003",
        "Body": "Your code is 4821",
    }
    url = "https://t.example/callbacks/twilio?tidings_message_id=m1"
    (report,) = TwilioProvider.parse_status_callback(_status_callback(params, url))
    assert (report.outcome, report.provider_message_id, report.tidings_message_id) == (
        ReportOutcome.UNDELIVERABLE,
        MESSAGE_SID,
        "m1",
    )
    assert (report.status, report.detail) == ("undelivered", "Twilio undelivered: error 30003")
    assert "Body" not in report.raw

    queued = {"MessageSid": MESSAGE_SID, "MessageStatus": "queued"}
    (report,) = TwilioProvider.parse_status_callback(_status_callback(queued, url))
    assert (report.outcome, report.status) == (ReportOutcome.INTERMEDIATE, "queued")

    with pytest.raises(BadRequest, match="MessageSid is missing"):
        TwilioProvider.parse_status_callback(_status_callback({"MessageStatus": "sent"}, url))
    not_utf8 = StatusCallback(body=b"MessageSid=\xff", url=url)
    with pytest.raises(BadRequest, match="not UTF-8"):
        TwilioProvider.parse_status_callback(not_utf8)


def test_the_signature_is_checked_for_the_requested_or_the_configured_url() -> None:
    params = {"MessageSid": MESSAGE_SID, "MessageStatus": "delivered"}
    configured = "https://notify.example.com:443/callbacks/twilio"
    config = TwilioConfig(
        account_sid=ACCOUNT_SID,
        auth_token=AUTH_TOKEN,
        sender="+15557122661",
        status_callback_url=configured,
    )
    seen = "http://10.0.0.5:8000/callbacks/twilio?tidings_message_id=m1"
    # Signed for the requested URL, and for the configured one without its default port.
    for signed_url in (seen, "https://notify.example.com/callbacks/twilio?tidings_message_id=m1"):
        callback = _status_callback(
            params, seen, **{"x-twilio-signature": _signed(params, signed_url)}
        )
        TwilioProvider.verify_status_callback(config, callback)

    wrong = _status_callback(params, seen, **{"x-twilio-signature": _signed(params, seen, "other")})
    for config_or_none in (config, None):
        with pytest.raises(Forbidden) as refused:
            TwilioProvider.verify_status_callback(config_or_none, wrong)
        assert refused.value.code == "invalid_signature"
