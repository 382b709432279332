"""Amazon SES provider against a loopback fake of the SES v2 API.

Shapes checked against:
- https://docs.aws.amazon.com/ses/latest/APIReference-V2/API_SendEmail.html (POST
  /v2/email/outbound-emails; FromEmailAddress, Destination.ToAddresses, ReplyToAddresses,
  Content.Simple {Subject, Body {Text, Html}, Headers}, EmailTags, ConfigurationSetName;
  200 `{"MessageId"}`)
- https://docs.aws.amazon.com/ses/latest/APIReference-V2/CommonErrors.html (errors carry the
  `x-amzn-ErrorType` header and `{"message"}`; TooManyRequestsException is 429,
  MessageRejected and LimitExceededException are 400)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from pytest_httpserver import HTTPServer

from tidings.provider.base import Delivery, PermanentProviderError, RetryableProviderError
from tidings.provider.email.ses import SesConfig, SesProvider
from tidings.provider.registry import PROVIDERS

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
PATH = "/v2/email/outbound-emails"


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client() as http:
        yield http


def provider(httpserver: HTTPServer, client: httpx.Client, **overrides: Any) -> SesProvider:
    values: dict[str, Any] = {
        "region": "eu-west-1",
        "access_key_id": "AKIAIOSFODNN7EXAMPLE",
        "secret_access_key": SECRET,
        "from_email": "news@example.com",
        "from_name": "Example News",
        "reply_to": "help@example.com",
        "base_url": httpserver.url_for(""),
        **overrides,
    }
    return SesProvider(SesConfig(**values), client)


DELIVERY = Delivery(
    message_id="msg_01",
    idempotency_key="msg_01:email:ses",
    channel="email",
    recipient={"user_id": "u1", "email": "ada@example.com"},
    content={"subject": "Welcome", "html": "<p>Hello Ada</p>", "text": "Hello Ada"},
    headers={"List-Unsubscribe": "<https://example.com/u>"},
)


def test_send_posts_the_documented_request_and_returns_the_message_id(
    httpserver: HTTPServer, client: httpx.Client
) -> None:
    httpserver.expect_request(PATH, method="POST").respond_with_json({"MessageId": "ses-1"})
    result = provider(httpserver, client).send(DELIVERY)
    assert result.provider_message_id == "ses-1"
    ((request, _),) = httpserver.log
    assert orjson.loads(request.get_data()) == {
        "FromEmailAddress": "Example News <news@example.com>",
        "Destination": {"ToAddresses": ["ada@example.com"]},
        "ReplyToAddresses": ["help@example.com"],
        "Content": {
            "Simple": {
                "Subject": {"Data": "Welcome", "Charset": "UTF-8"},
                "Body": {
                    "Text": {"Data": "Hello Ada", "Charset": "UTF-8"},
                    "Html": {"Data": "<p>Hello Ada</p>", "Charset": "UTF-8"},
                },
                "Headers": [{"Name": "List-Unsubscribe", "Value": "<https://example.com/u>"}],
            }
        },
        "EmailTags": [{"Name": "tidings_message_id", "Value": "msg_01"}],
    }
    authorization = request.headers["Authorization"]
    assert authorization.startswith("AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/")
    assert "/eu-west-1/ses/aws4_request" in authorization
    assert SECRET not in authorization
    assert request.headers["X-Amz-Date"].endswith("Z")


def test_a_rejected_message_is_permanent_with_the_error_type(
    httpserver: HTTPServer, client: httpx.Client
) -> None:
    httpserver.expect_request(PATH, method="POST").respond_with_json(
        {"message": "Email address is not verified."},
        status=400,
        headers={"x-amzn-ErrorType": "MessageRejected:http://internal.amazon.com/"},
    )
    with pytest.raises(PermanentProviderError) as error:
        provider(httpserver, client).send(DELIVERY)
    assert error.value.reason == (
        "Amazon SES answered 400: MessageRejected: Email address is not verified."
    )


@pytest.mark.parametrize(
    ("status", "kind"), [(429, "TooManyRequestsException"), (400, "LimitExceededException")]
)
def test_throttling_is_retryable(
    httpserver: HTTPServer, client: httpx.Client, status: int, kind: str
) -> None:
    httpserver.expect_request(PATH, method="POST").respond_with_json(
        {"message": "Maximum sending rate exceeded."},
        status=status,
        headers={"x-amzn-ErrorType": kind},
    )
    with pytest.raises(RetryableProviderError):
        provider(httpserver, client).send(DELIVERY)


def test_the_region_picks_the_endpoint_and_secrets_are_masked() -> None:
    config = SesConfig(
        region="ap-southeast-2",
        access_key_id="AKIAIOSFODNN7EXAMPLE",
        secret_access_key=SECRET,
        from_email="news@example.com",
    )
    assert config.api_base_url == "https://email.ap-southeast-2.amazonaws.com"
    assert SECRET not in config.model_dump_json()


def test_registered_under_its_name() -> None:
    assert PROVIDERS["ses"] is SesProvider
    assert SesProvider.channel == "email"
