"""Expo provider against a loopback fake of the Expo push API.

Shapes checked against:
- https://docs.expo.dev/push-notifications/sending-notifications/ (expo/expo
  `docs/pages/push-notifications/sending-notifications.mdx`): `POST
  https://exp.host/--/api/v2/push/send`, JSON body of one message or an array of up to 100,
  message fields `to`, `title`, `body`, `data` (only `to` is required); `Authorization: Bearer
  <access token>` with enhanced push security; reply `{"data": [tickets]}` in message order,
  ticket `{"status": "ok", "id"}` or `{"status": "error", "message", "details": {"error":
  "DeviceNotRegistered"}}`; a failed request has a 4xx/5xx status and `{"errors": [{"code",
  "message"}]}` (e.g. TOO_MANY_REQUESTS, PUSH_TOO_MANY_EXPERIENCE_IDS, UNAUTHORIZED); retry 429
  and 5xx with backoff; MessageRateExceeded means "retry sending messages".
- expo/expo-server-sdk-node `src/ExpoClient.ts` (headers `Accept: application/json`,
  `Content-Type: application/json`; a 200 reply with `errors` is also a request failure; ticket
  error details `DeviceNotRegistered | InvalidCredentials | MessageTooBig | MessageRateExceeded`).
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
from tidings.provider.push.expo import ExpoConfig, ExpoProvider
from tidings.provider.registry import PROVIDERS

ACCESS_TOKEN = "expo-access-token-do-not-leak"
PATH = "/--/api/v2/push/send"
TOKEN_A = "ExponentPushToken[xxxxxxxxxxxxxxxxxxxxxx]"
TOKEN_B = "ExponentPushToken[yyyyyyyyyyyyyyyyyyyyyy]"
RECEIPT_A = "XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX"
RECEIPT_B = "YYYYYYYY-YYYY-YYYY-YYYY-YYYYYYYYYYYY"


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client() as http:
        yield http


def base_url(httpserver: HTTPServer) -> str:
    return httpserver.url_for("/").rstrip("/")


def make_provider(url: str, http: httpx.Client, **overrides: Any) -> ExpoProvider:
    values: dict[str, Any] = {"access_token": ACCESS_TOKEN, "base_url": url}
    values.update(overrides)
    return ExpoProvider(ExpoConfig(**values), http)


def make_delivery(**overrides: Any) -> Delivery:
    values: dict[str, Any] = {
        "message_id": "msg_01",
        "idempotency_key": "msg_01:expo",
        "channel": "push",
        "recipient": {"user_id": "u1", "expo": {"token": TOKEN_A}},
        "content": {
            "title": "Order shipped",
            "body": "Your order #42 is on its way",
            "data": {"order_id": 42, "tracking": {"carrier": "DHL"}},
        },
    }
    values.update(overrides)
    return Delivery(**values)


def recording_handler(seen: list[dict[str, Any]], body: dict[str, Any], status: int = 200) -> Any:
    def handle(request: Request) -> Response:
        seen.append(
            {
                "method": request.method,
                "authorization": request.headers.get("Authorization"),
                "accept": request.headers.get("Accept"),
                "content_type": request.headers.get("Content-Type"),
                "json": json.loads(request.get_data()),
            }
        )
        return Response(json.dumps(body), status=status, content_type="application/json")

    return handle


def device_not_registered(token: str) -> dict[str, Any]:
    return {
        "status": "error",
        "message": f'"{token}" is not a registered push notification recipient',
        "details": {"error": "DeviceNotRegistered"},
    }


def test_registered_for_push() -> None:
    assert PROVIDERS["expo"] is ExpoProvider
    assert ExpoProvider.channel == "push"


def test_send_posts_the_documented_messages_and_returns_the_receipt_id(
    httpserver: HTTPServer, client: httpx.Client
) -> None:
    seen: list[dict[str, Any]] = []
    httpserver.expect_request(PATH, method="POST").respond_with_handler(
        recording_handler(seen, {"data": [{"status": "ok", "id": RECEIPT_A}]})
    )

    result = make_provider(base_url(httpserver), client).send(make_delivery())

    assert result.provider_message_id == RECEIPT_A
    assert result.response_excerpt.startswith("HTTP 200:")
    assert seen == [
        {
            "method": "POST",
            "authorization": f"Bearer {ACCESS_TOKEN}",
            "accept": "application/json",
            "content_type": "application/json",
            "json": [
                {
                    "to": TOKEN_A,
                    "title": "Order shipped",
                    "body": "Your order #42 is on its way",
                    "data": {"order_id": 42, "tracking": {"carrier": "DHL"}},
                }
            ],
        }
    ]


def test_without_access_token_no_authorization_is_sent(
    httpserver: HTTPServer, client: httpx.Client
) -> None:
    seen: list[dict[str, Any]] = []
    httpserver.expect_request(PATH, method="POST").respond_with_handler(
        recording_handler(seen, {"data": [{"status": "ok", "id": RECEIPT_A}]})
    )

    make_provider(base_url(httpserver), client, access_token=None).send(
        make_delivery(content={"body": "Hello"})
    )

    assert seen[0]["authorization"] is None
    assert seen[0]["json"] == [{"to": TOKEN_A, "body": "Hello"}]


def test_every_token_gets_a_message_and_any_ok_ticket_is_success(
    httpserver: HTTPServer, client: httpx.Client
) -> None:
    seen: list[dict[str, Any]] = []
    tickets = {"data": [device_not_registered(TOKEN_A), {"status": "ok", "id": RECEIPT_B}]}
    httpserver.expect_request(PATH, method="POST").respond_with_handler(
        recording_handler(seen, tickets)
    )
    delivery = make_delivery(recipient={"expo": {"tokens": [TOKEN_A, TOKEN_B]}})

    result = make_provider(base_url(httpserver), client).send(delivery)

    assert result.provider_message_id == RECEIPT_B
    assert [message["to"] for message in seen[0]["json"]] == [TOKEN_A, TOKEN_B]


def test_device_not_registered_is_permanent(httpserver: HTTPServer, client: httpx.Client) -> None:
    httpserver.expect_request(PATH, method="POST").respond_with_json(
        {"data": [device_not_registered(TOKEN_A)]}
    )

    with pytest.raises(PermanentProviderError) as caught:
        make_provider(base_url(httpserver), client).send(make_delivery())

    assert "is not a registered push notification recipient" in caught.value.reason
    assert "(DeviceNotRegistered)" in caught.value.reason
    assert ACCESS_TOKEN not in str(caught.value)
    assert ACCESS_TOKEN not in caught.value.response_excerpt


def test_invalid_credentials_ticket_is_permanent(
    httpserver: HTTPServer, client: httpx.Client
) -> None:
    ticket = {
        "status": "error",
        "message": "Could not find APNs credentials for @acme/app.",
        "details": {"error": "InvalidCredentials"},
    }
    httpserver.expect_request(PATH, method="POST").respond_with_json({"data": [ticket]})

    with pytest.raises(PermanentProviderError, match="InvalidCredentials"):
        make_provider(base_url(httpserver), client).send(make_delivery())


def test_message_rate_exceeded_ticket_is_retryable(
    httpserver: HTTPServer, client: httpx.Client
) -> None:
    ticket = {
        "status": "error",
        "message": "Too many messages were sent to this device.",
        "details": {"error": "MessageRateExceeded"},
    }
    httpserver.expect_request(PATH, method="POST").respond_with_json({"data": [ticket]})

    with pytest.raises(RetryableProviderError, match="MessageRateExceeded"):
        make_provider(base_url(httpserver), client).send(make_delivery())


def test_request_error_in_a_200_reply_is_permanent(
    httpserver: HTTPServer, client: httpx.Client
) -> None:
    errors = {
        "errors": [
            {
                "code": "PUSH_TOO_MANY_EXPERIENCE_IDS",
                "message": "All push notification messages in the same request must be for "
                "the same project.",
            }
        ]
    }
    httpserver.expect_request(PATH, method="POST").respond_with_json(errors)

    with pytest.raises(PermanentProviderError, match="PUSH_TOO_MANY_EXPERIENCE_IDS"):
        make_provider(base_url(httpserver), client).send(make_delivery())


def test_unauthorized_request_is_permanent(httpserver: HTTPServer, client: httpx.Client) -> None:
    errors = {
        "errors": [
            {
                "code": "UNAUTHORIZED",
                "message": "The bearer token is invalid.",
            }
        ]
    }
    httpserver.expect_request(PATH, method="POST").respond_with_json(errors, status=401)

    with pytest.raises(PermanentProviderError) as caught:
        make_provider(base_url(httpserver), client).send(make_delivery())

    assert caught.value.status_code == 401
    assert "UNAUTHORIZED: The bearer token is invalid." in caught.value.reason
    assert ACCESS_TOKEN not in str(caught.value)


def test_429_is_retryable_with_retry_after(httpserver: HTTPServer, client: httpx.Client) -> None:
    errors = {
        "errors": [
            {
                "code": "TOO_MANY_REQUESTS",
                "message": "You are exceeding the request limit of 600 notifications per second.",
            }
        ]
    }
    httpserver.expect_request(PATH, method="POST").respond_with_json(
        errors, status=429, headers={"Retry-After": "2"}
    )

    with pytest.raises(RetryableProviderError) as caught:
        make_provider(base_url(httpserver), client).send(make_delivery())

    assert caught.value.retry_after == 2.0
    assert "TOO_MANY_REQUESTS" in caught.value.reason


def test_5xx_is_retryable(httpserver: HTTPServer, client: httpx.Client) -> None:
    errors = {
        "errors": [{"code": "INTERNAL_SERVER_ERROR", "message": "An unknown error occurred."}]
    }
    httpserver.expect_request(PATH, method="POST").respond_with_json(errors, status=500)

    with pytest.raises(RetryableProviderError) as caught:
        make_provider(base_url(httpserver), client).send(make_delivery())

    assert caught.value.status_code == 500
    assert "An unknown error occurred." in caught.value.reason


def test_refused_connection_is_retryable(client: httpx.Client) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    with pytest.raises(RetryableProviderError) as caught:
        make_provider(f"http://127.0.0.1:{port}", client).send(make_delivery())

    assert "Expo could not be reached" in caught.value.reason
    assert ACCESS_TOKEN not in str(caught.value)


def test_missing_expo_token_is_permanent(httpserver: HTTPServer, client: httpx.Client) -> None:
    provider = make_provider(base_url(httpserver), client)

    assert provider.can_deliver({"firebaseToken": "fcm-token"}) is False
    assert provider.can_deliver({"expo": {"tokens": [TOKEN_A]}}) is True
    with pytest.raises(PermanentProviderError, match=r"no expo\.token"):
        provider.send(make_delivery(recipient={"firebaseToken": "fcm-token"}))
    assert httpserver.log == []


def test_access_token_is_masked() -> None:
    config = ExpoConfig(access_token=ACCESS_TOKEN)

    assert config.base_url == "https://exp.host"
    assert ACCESS_TOKEN not in config.model_dump_json()
    assert ACCESS_TOKEN not in repr(config)
