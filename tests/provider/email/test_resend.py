"""Resend provider against a loopback fake of Resend's Emails API.

Shapes checked against:
- https://resend.com/docs/api-reference/emails/send-email (POST /emails; body from, to
  (string or array), subject, html, text, reply_to, headers object; optional Idempotency-Key
  header; 200 `{"id": "49a3999c-..."}`)
- https://resend.com/docs/api-reference (Authorization: Bearer re_...; 429 when rate limited)
- https://resend.com/docs/dashboard/emails/idempotency-keys (Idempotency-Key header, 24 h)
- https://resend.com/docs/api-reference/errors, as modelled by the official Rust SDK
  (resend/resend-rust src/error.rs: `{"statusCode", "message", "name"}`; 409
  `invalid_idempotent_request` and `concurrent_idempotent_requests`)
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pytest_httpserver import HTTPServer

from tidings.provider.base import (
    Delivery,
    PermanentProviderError,
    RetryableProviderError,
)
from tidings.provider.email.resend import ResendConfig, ResendProvider
from tidings.provider.registry import PROVIDERS

SECRET = "re_secret_key_do_not_leak"
PATH = "/emails"


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client() as http:
        yield http


def make_config(base_url: str, **overrides: Any) -> ResendConfig:
    values: dict[str, Any] = {
        "api_key": SECRET,
        "from_email": "news@example.com",
        "from_name": "Example News",
        "reply_to": "help@example.com",
        "base_url": base_url,
    }
    values.update(overrides)
    return ResendConfig(**values)


def make_delivery(**overrides: Any) -> Delivery:
    values: dict[str, Any] = {
        "message_id": "msg_01",
        "idempotency_key": "msg_01:resend",
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


def resend_error(status: int, name: str, message: str) -> dict[str, Any]:
    return {"statusCode": status, "name": name, "message": message}


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        assert SECRET not in text


def test_send_posts_the_documented_request_and_returns_id(
    httpserver: HTTPServer, client: httpx.Client
) -> None:
    expected_body = {
        "from": "Example News <news@example.com>",
        "to": ["ada@example.com"],
        "subject": "Welcome",
        "html": "<p>Hello Ada</p>",
        "text": "Hello Ada",
        "reply_to": "help@example.com",
        "headers": {
            "List-Unsubscribe": "<https://example.com/unsubscribe/u1>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
    }
    httpserver.expect_request(
        PATH,
        method="POST",
        headers={"Authorization": f"Bearer {SECRET}", "Idempotency-Key": "msg_01:resend"},
        json=expected_body,
    ).respond_with_json({"id": "49a3999c-0ce1-4ea6-ab68-afcd6dc2e794"})

    result = ResendProvider(make_config(base_url(httpserver)), client).send(make_delivery())

    assert result.provider_message_id == "49a3999c-0ce1-4ea6-ab68-afcd6dc2e794"
    assert_no_secret(result.response_excerpt)
    httpserver.check_assertions()
    [(request, _)] = httpserver.log
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Idempotency-Key"] == "msg_01:resend"
    assert request.get_json() == expected_body


def test_html_only_email_leaves_text_to_resend(
    httpserver: HTTPServer, client: httpx.Client
) -> None:
    httpserver.expect_request(PATH, method="POST").respond_with_json({"id": "e1"})
    config = make_config(base_url(httpserver), from_name=None, reply_to=None)
    delivery = make_delivery(content={"subject": "Hi", "html": "<b>Hi</b>", "text": ""}, headers={})

    ResendProvider(config, client).send(delivery)

    [(request, _)] = httpserver.log
    assert request.get_json() == {
        "from": "news@example.com",
        "to": ["ada@example.com"],
        "subject": "Hi",
        "html": "<b>Hi</b>",
    }


def test_validation_error_is_permanent_with_resends_message(
    httpserver: HTTPServer, client: httpx.Client
) -> None:
    httpserver.expect_request(PATH, method="POST").respond_with_json(
        resend_error(
            422,
            "invalid_from_address",
            "Invalid `from` field. The email address needs to follow the "
            "`email@example.com` or `Name <email@example.com>` format.",
        ),
        status=422,
    )

    with pytest.raises(PermanentProviderError) as caught:
        ResendProvider(make_config(base_url(httpserver)), client).send(make_delivery())

    error = caught.value
    assert error.status_code == 422
    assert "invalid_from_address: Invalid `from` field." in error.reason
    assert_no_secret(str(error), error.reason, error.response_excerpt)


def test_bad_key_is_permanent(httpserver: HTTPServer, client: httpx.Client) -> None:
    httpserver.expect_request(PATH, method="POST").respond_with_json(
        resend_error(403, "invalid_api_key", "API key is invalid"), status=403
    )

    with pytest.raises(PermanentProviderError) as caught:
        ResendProvider(make_config(base_url(httpserver)), client).send(make_delivery())

    assert "invalid_api_key: API key is invalid" in caught.value.reason
    assert_no_secret(str(caught.value), caught.value.response_excerpt)


def test_idempotency_conflicts(httpserver: HTTPServer, client: httpx.Client) -> None:
    provider = ResendProvider(make_config(base_url(httpserver)), client)
    httpserver.expect_oneshot_request(PATH, method="POST").respond_with_json(
        resend_error(
            409,
            "concurrent_idempotent_requests",
            "Same idempotency key used while original request is still in progress.",
        ),
        status=409,
    )
    httpserver.expect_oneshot_request(PATH, method="POST").respond_with_json(
        resend_error(
            409,
            "invalid_idempotent_request",
            "Same idempotency key used with a different request payload.",
        ),
        status=409,
    )

    with pytest.raises(RetryableProviderError) as in_progress:
        provider.send(make_delivery())
    with pytest.raises(PermanentProviderError) as reused:
        provider.send(make_delivery())

    assert in_progress.value.status_code == 409
    assert "still in progress" in in_progress.value.reason
    assert not isinstance(reused.value, RetryableProviderError)
    assert "different request payload" in reused.value.reason


def test_rate_limit_is_retryable_with_retry_after(
    httpserver: HTTPServer, client: httpx.Client
) -> None:
    httpserver.expect_request(PATH, method="POST").respond_with_json(
        resend_error(429, "rate_limit_exceeded", "Too many requests."),
        status=429,
        headers={"Retry-After": "1"},
    )

    with pytest.raises(RetryableProviderError) as caught:
        ResendProvider(make_config(base_url(httpserver)), client).send(make_delivery())

    assert caught.value.retry_after == 1.0
    assert "rate_limit_exceeded" in caught.value.reason
    assert_no_secret(str(caught.value), caught.value.response_excerpt)


def test_server_error_is_retryable(httpserver: HTTPServer, client: httpx.Client) -> None:
    httpserver.expect_request(PATH, method="POST").respond_with_json(
        resend_error(500, "application_error", "An unexpected error occurred."), status=500
    )

    with pytest.raises(RetryableProviderError) as caught:
        ResendProvider(make_config(base_url(httpserver)), client).send(make_delivery())

    assert "application_error" in caught.value.reason


def test_refused_connection_is_retryable(client: httpx.Client) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    with pytest.raises(RetryableProviderError) as caught:
        ResendProvider(make_config(f"http://127.0.0.1:{port}"), client).send(make_delivery())

    assert "could not be reached" in caught.value.reason
    assert_no_secret(str(caught.value))


def test_timeout_is_retryable() -> None:
    def time_out(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("read timed out", request=request)

    with httpx.Client(transport=httpx.MockTransport(time_out)) as http:
        provider = ResendProvider(make_config("https://api.resend.com"), http)
        with pytest.raises(RetryableProviderError) as caught:
            provider.send(make_delivery())

    assert "timed out" in caught.value.reason


def test_missing_address_is_permanent_and_sends_nothing(
    httpserver: HTTPServer, client: httpx.Client
) -> None:
    provider = ResendProvider(make_config(base_url(httpserver)), client)

    assert not provider.can_deliver({})
    with pytest.raises(PermanentProviderError, match="no email address"):
        provider.send(make_delivery(recipient={"user_id": "u1"}))
    with pytest.raises(PermanentProviderError, match="neither an HTML nor a text body"):
        provider.send(make_delivery(content={"subject": "Empty", "html": "", "text": ""}))
    assert httpserver.log == []


def test_api_key_is_masked_in_config() -> None:
    config = make_config("https://api.resend.com")

    assert SECRET not in config.model_dump_json()
    assert SECRET not in repr(config)


def test_registered_under_its_name() -> None:
    assert PROVIDERS["resend"] is ResendProvider
    assert ResendProvider.channel == "email"
