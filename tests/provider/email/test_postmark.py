"""Postmark provider against a loopback fake of Postmark's Email API.

Shapes checked against:
- https://postmarkapp.com/developer/api/email-api ("Send a single email": POST /email, headers
  Accept/Content-Type application/json and X-Postmark-Server-Token; body From, To, Subject,
  HtmlBody, TextBody, ReplyTo, Headers [{Name, Value}], Metadata, MessageStream)
- https://postmarkapp.com/developer/api/overview (200 success, 401 bad token, 422 with
  `{"ErrorCode", "Message"}`, 429, 500)
- https://postmarkapp.com/support/article/troubleshooting-422-unprocessable-entity-errors
  (example 422 body with ErrorCode 300)
- Success body `{"To", "SubmittedAt", "MessageID", "ErrorCode": 0, "Message": "OK"}` as in
  the send-a-single-email reference.
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
from tidings.provider.email.postmark import PostmarkConfig, PostmarkProvider
from tidings.provider.registry import PROVIDERS

SECRET = "pm-server-token-do-not-leak"
PATH = "/email"
SUCCESS = {
    "To": "ada@example.com",
    "SubmittedAt": "2026-11-28T12:00:00.0000000-05:00",
    "MessageID": "b7bc2f4a-e38e-4336-af7d-e6c392c2f817",
    "ErrorCode": 0,
    "Message": "OK",
}


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client() as http:
        yield http


def make_config(base_url: str, **overrides: Any) -> PostmarkConfig:
    values: dict[str, Any] = {
        "server_token": SECRET,
        "from_email": "news@example.com",
        "from_name": "Example News",
        "reply_to": "help@example.com",
        "base_url": base_url,
    }
    values.update(overrides)
    return PostmarkConfig(**values)


def make_delivery(**overrides: Any) -> Delivery:
    values: dict[str, Any] = {
        "message_id": "msg_01",
        "idempotency_key": "msg_01:postmark",
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


def test_send_posts_the_documented_request_and_returns_message_id(
    httpserver: HTTPServer, client: httpx.Client
) -> None:
    expected_body = {
        "From": "Example News <news@example.com>",
        "To": "ada@example.com",
        "Subject": "Welcome",
        "HtmlBody": "<p>Hello Ada</p>",
        "TextBody": "Hello Ada",
        "ReplyTo": "help@example.com",
        "Headers": [
            {"Name": "List-Unsubscribe", "Value": "<https://example.com/unsubscribe/u1>"},
            {"Name": "List-Unsubscribe-Post", "Value": "List-Unsubscribe=One-Click"},
        ],
        "Metadata": {"tidings_message_id": "msg_01"},
        "MessageStream": "outbound",
    }
    httpserver.expect_request(
        PATH,
        method="POST",
        headers={"X-Postmark-Server-Token": SECRET, "Accept": "application/json"},
        json=expected_body,
    ).respond_with_json(SUCCESS)

    result = PostmarkProvider(make_config(base_url(httpserver)), client).send(make_delivery())

    assert result.provider_message_id == "b7bc2f4a-e38e-4336-af7d-e6c392c2f817"
    assert "HTTP 200" in result.response_excerpt
    assert_no_secret(result.response_excerpt)
    httpserver.check_assertions()
    [(request, _)] = httpserver.log
    assert request.headers["Content-Type"] == "application/json"
    assert request.get_json() == expected_body


def test_html_only_email_on_another_stream(httpserver: HTTPServer, client: httpx.Client) -> None:
    httpserver.expect_request(PATH, method="POST").respond_with_json(SUCCESS)
    config = make_config(
        base_url(httpserver), from_name=None, reply_to=None, message_stream="broadcast"
    )
    delivery = make_delivery(content={"subject": "Hi", "html": "<b>Hi</b>", "text": ""}, headers={})

    PostmarkProvider(config, client).send(delivery)

    [(request, _)] = httpserver.log
    body = request.get_json()
    assert body["From"] == "news@example.com"
    assert body["HtmlBody"] == "<b>Hi</b>"
    assert body["MessageStream"] == "broadcast"
    assert not {"TextBody", "ReplyTo", "Headers"} & body.keys()


def test_422_is_permanent_with_postmarks_message(
    httpserver: HTTPServer, client: httpx.Client
) -> None:
    httpserver.expect_request(PATH, method="POST").respond_with_json(
        {
            "ErrorCode": 406,
            "Message": "You tried to send to recipient(s) that have been marked as inactive.",
        },
        status=422,
    )

    with pytest.raises(PermanentProviderError) as caught:
        PostmarkProvider(make_config(base_url(httpserver)), client).send(make_delivery())

    error = caught.value
    assert error.status_code == 422
    assert "marked as inactive. (ErrorCode 406)" in error.reason
    assert_no_secret(str(error), error.reason, error.response_excerpt)


def test_bad_token_is_permanent(httpserver: HTTPServer, client: httpx.Client) -> None:
    httpserver.expect_request(PATH, method="POST").respond_with_json(
        {
            "ErrorCode": 10,
            "Message": "The Server Token you provided in the "
            "X-Postmark-Server-Token request header was invalid.",
        },
        status=401,
    )

    with pytest.raises(PermanentProviderError) as caught:
        PostmarkProvider(make_config(base_url(httpserver)), client).send(make_delivery())

    assert caught.value.status_code == 401
    assert "was invalid. (ErrorCode 10)" in caught.value.reason
    assert_no_secret(str(caught.value), caught.value.response_excerpt)


def test_200_with_nonzero_error_code_is_permanent(
    httpserver: HTTPServer, client: httpx.Client
) -> None:
    httpserver.expect_request(PATH, method="POST").respond_with_json(
        {"ErrorCode": 300, "Message": "Invalid email request"}
    )

    with pytest.raises(PermanentProviderError) as caught:
        PostmarkProvider(make_config(base_url(httpserver)), client).send(make_delivery())

    assert "Invalid email request (ErrorCode 300)" in caught.value.reason


def test_rate_limit_is_retryable_with_retry_after(
    httpserver: HTTPServer, client: httpx.Client
) -> None:
    httpserver.expect_request(PATH, method="POST").respond_with_json(
        {"ErrorCode": 429, "Message": "Rate limit exceeded"},
        status=429,
        headers={"Retry-After": "3"},
    )

    with pytest.raises(RetryableProviderError) as caught:
        PostmarkProvider(make_config(base_url(httpserver)), client).send(make_delivery())

    assert caught.value.retry_after == 3.0
    assert "Rate limit exceeded" in caught.value.reason
    assert_no_secret(str(caught.value), caught.value.response_excerpt)


def test_server_error_is_retryable(httpserver: HTTPServer, client: httpx.Client) -> None:
    httpserver.expect_request(PATH, method="POST").respond_with_data("Service Unavailable", 503)

    with pytest.raises(RetryableProviderError) as caught:
        PostmarkProvider(make_config(base_url(httpserver)), client).send(make_delivery())

    assert caught.value.status_code == 503


def test_refused_connection_is_retryable(client: httpx.Client) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    with pytest.raises(RetryableProviderError) as caught:
        PostmarkProvider(make_config(f"http://127.0.0.1:{port}"), client).send(make_delivery())

    assert "could not be reached" in caught.value.reason
    assert_no_secret(str(caught.value))


def test_timeout_is_retryable() -> None:
    def time_out(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectTimeout("connect timed out", request=request)

    with httpx.Client(transport=httpx.MockTransport(time_out)) as http:
        provider = PostmarkProvider(make_config("https://api.postmarkapp.com"), http)
        with pytest.raises(RetryableProviderError) as caught:
            provider.send(make_delivery())

    assert "timed out" in caught.value.reason


def test_missing_address_is_permanent_and_sends_nothing(
    httpserver: HTTPServer, client: httpx.Client
) -> None:
    provider = PostmarkProvider(make_config(base_url(httpserver)), client)

    assert not provider.can_deliver({"email": ""})
    assert provider.can_deliver({"email": "ada@example.com"})
    with pytest.raises(PermanentProviderError, match="no email address"):
        provider.send(make_delivery(recipient={"user_id": "u1"}))
    with pytest.raises(PermanentProviderError, match="neither an HTML nor a text body"):
        provider.send(make_delivery(content={"subject": "Empty"}))
    assert httpserver.log == []


def test_server_token_is_masked_in_config() -> None:
    config = make_config("https://api.postmarkapp.com")

    assert SECRET not in config.model_dump_json()
    assert SECRET not in repr(config)


def test_registered_under_its_name() -> None:
    assert PROVIDERS["postmark"] is PostmarkProvider
    assert PostmarkProvider.channel == "email"
