"""Mailgun provider against a loopback fake of Mailgun's Messages API.

Shapes checked against:
- https://documentation.mailgun.com/docs/mailgun/api-reference/openapi-final/tag/Messages/
  ("Send an email": POST /v3/{domain_name}/messages, basicAuth, multipart/form-data body with
  from, to, subject, html, text, `h:X-My-Header` custom MIME headers (h:Reply-To for
  Reply-To) and `v:my-var` custom variables)
- https://documentation.mailgun.com/docs/mailgun/api-reference (Basic auth user `api` with the
  API key as password; base URLs https://api.mailgun.net/ and https://api.eu.mailgun.net/)
- https://documentation.mailgun.com/docs/mailgun/api-reference/api-overview (error bodies carry
  a JSON `message`)
- Success body `{"id": "<...>", "message": "Queued. Thank you."}` as the reference and the
  official SDKs' SendResponse (id, message) show.
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
from tidings.provider.email.mailgun import MailgunConfig, MailgunProvider
from tidings.provider.registry import PROVIDERS

SECRET = "key-mailgun-secret-do-not-leak"
DOMAIN = "mg.example.com"
PATH = f"/v3/{DOMAIN}/messages"
SUCCESS = {"id": "<20261128120000.1.ABCDEF@mg.example.com>", "message": "Queued. Thank you."}


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client() as http:
        yield http


def make_config(base_url: str | None, **overrides: Any) -> MailgunConfig:
    values: dict[str, Any] = {
        "api_key": SECRET,
        "domain": DOMAIN,
        "from_email": "news@mg.example.com",
        "from_name": "Example News",
        "reply_to": "help@example.com",
        "base_url": base_url,
    }
    values.update(overrides)
    return MailgunConfig(**values)


def make_delivery(**overrides: Any) -> Delivery:
    values: dict[str, Any] = {
        "message_id": "msg_01",
        "idempotency_key": "msg_01:mailgun",
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


def test_send_posts_the_documented_form_and_returns_message_id(
    httpserver: HTTPServer, client: httpx.Client
) -> None:
    httpserver.expect_request(PATH, method="POST").respond_with_json(SUCCESS)

    result = MailgunProvider(make_config(base_url(httpserver)), client).send(make_delivery())

    assert result.provider_message_id == "<20261128120000.1.ABCDEF@mg.example.com>"
    assert "Queued. Thank you." in result.response_excerpt
    assert_no_secret(result.response_excerpt)
    [(request, _)] = httpserver.log
    assert request.mimetype == "multipart/form-data"
    assert request.authorization is not None
    assert request.authorization.type == "basic"
    assert request.authorization.username == "api"
    assert request.authorization.password == SECRET
    assert request.form.to_dict(flat=False) == {
        "from": ["Example News <news@mg.example.com>"],
        "to": ["ada@example.com"],
        "subject": ["Welcome"],
        "html": ["<p>Hello Ada</p>"],
        "text": ["Hello Ada"],
        "h:Reply-To": ["help@example.com"],
        "h:List-Unsubscribe": ["<https://example.com/unsubscribe/u1>"],
        "h:List-Unsubscribe-Post": ["List-Unsubscribe=One-Click"],
        "v:tidings_message_id": ["msg_01"],
    }
    assert not request.files


def test_text_only_email_without_optional_fields(
    httpserver: HTTPServer, client: httpx.Client
) -> None:
    httpserver.expect_request(PATH, method="POST").respond_with_json(SUCCESS)
    config = make_config(base_url(httpserver), from_name=None, reply_to=None)
    delivery = make_delivery(content={"subject": "Hi", "text": "Plain"}, headers={})

    MailgunProvider(config, client).send(delivery)

    [(request, _)] = httpserver.log
    assert request.form.to_dict(flat=False) == {
        "from": ["news@mg.example.com"],
        "to": ["ada@example.com"],
        "subject": ["Hi"],
        "text": ["Plain"],
        "v:tidings_message_id": ["msg_01"],
    }


def test_region_picks_the_documented_api_host() -> None:
    assert make_config(None).api_base_url == "https://api.mailgun.net"
    assert make_config(None, region="eu").api_base_url == "https://api.eu.mailgun.net"
    assert make_config("http://127.0.0.1:9/", region="eu").api_base_url == "http://127.0.0.1:9"


def test_refusal_is_permanent_with_mailguns_message(
    httpserver: HTTPServer, client: httpx.Client
) -> None:
    httpserver.expect_request(PATH, method="POST").respond_with_json(
        {"message": "to parameter is not a valid address. please check documentation"},
        status=400,
    )

    with pytest.raises(PermanentProviderError) as caught:
        MailgunProvider(make_config(base_url(httpserver)), client).send(make_delivery())

    error = caught.value
    assert error.status_code == 400
    assert "to parameter is not a valid address" in error.reason
    assert_no_secret(str(error), error.reason, error.response_excerpt)


def test_plain_text_forbidden_is_permanent(httpserver: HTTPServer, client: httpx.Client) -> None:
    httpserver.expect_request(PATH, method="POST").respond_with_data(
        "Forbidden", status=401, content_type="text/plain"
    )

    with pytest.raises(PermanentProviderError) as caught:
        MailgunProvider(make_config(base_url(httpserver)), client).send(make_delivery())

    assert caught.value.status_code == 401
    assert caught.value.reason.endswith("Forbidden")
    assert_no_secret(str(caught.value), caught.value.response_excerpt)


def test_rate_limit_is_retryable_with_retry_after(
    httpserver: HTTPServer, client: httpx.Client
) -> None:
    httpserver.expect_request(PATH, method="POST").respond_with_json(
        {"message": "Too many requests"}, status=429, headers={"Retry-After": "12"}
    )

    with pytest.raises(RetryableProviderError) as caught:
        MailgunProvider(make_config(base_url(httpserver)), client).send(make_delivery())

    assert caught.value.retry_after == 12.0
    assert "Too many requests" in caught.value.reason
    assert_no_secret(str(caught.value), caught.value.response_excerpt)


def test_server_error_is_retryable(httpserver: HTTPServer, client: httpx.Client) -> None:
    httpserver.expect_request(PATH, method="POST").respond_with_json(
        {"message": "Internal Server Error"}, status=500
    )

    with pytest.raises(RetryableProviderError) as caught:
        MailgunProvider(make_config(base_url(httpserver)), client).send(make_delivery())

    assert caught.value.status_code == 500


def test_refused_connection_is_retryable(client: httpx.Client) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    with pytest.raises(RetryableProviderError) as caught:
        MailgunProvider(make_config(f"http://127.0.0.1:{port}"), client).send(make_delivery())

    assert "could not be reached" in caught.value.reason
    assert_no_secret(str(caught.value))


def test_timeout_is_retryable() -> None:
    def time_out(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("read timed out", request=request)

    with httpx.Client(transport=httpx.MockTransport(time_out)) as http:
        provider = MailgunProvider(make_config(None), http)
        with pytest.raises(RetryableProviderError) as caught:
            provider.send(make_delivery())

    assert "timed out" in caught.value.reason


def test_missing_address_is_permanent_and_sends_nothing(
    httpserver: HTTPServer, client: httpx.Client
) -> None:
    provider = MailgunProvider(make_config(base_url(httpserver)), client)

    assert not provider.can_deliver({"phone_number": "+15555550100"})
    with pytest.raises(PermanentProviderError, match="no email address"):
        provider.send(make_delivery(recipient={"email": None}))
    with pytest.raises(PermanentProviderError, match="neither an HTML nor a text body"):
        provider.send(make_delivery(content={"subject": "Empty", "html": None}))
    assert httpserver.log == []


def test_api_key_is_masked_in_config() -> None:
    config = make_config(None)

    assert SECRET not in config.model_dump_json()
    assert SECRET not in repr(config)


def test_registered_under_its_name() -> None:
    assert PROVIDERS["mailgun"] is MailgunProvider
    assert MailgunProvider.channel == "email"
