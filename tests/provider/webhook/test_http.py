"""Signed webhook provider against a loopback receiver, and the receiver-side verifier.

The webhook contract is Tidings' own; it follows Courier's webhook channel and outbound
webhooks (see shared/reference/courier-model.md): the recipient shape `webhook{url, method
POST|PUT, headers, authentication{mode none|basic|bearer, token, username, password}}` from
trycourier/courier-python src/courier/types/shared_params/webhook_profile.py,
webhook_method.py, webhook_authentication.py and webhook_auth_mode.py; an HMAC-SHA256 over
"<timestamp>.<body>" carried with its timestamp (Courier's `courier-signature: t=...,
signature=...`, Stripe-style `t=...,v1=...` here); and retries on network errors, 408, 429
and 5xx with other 4xx permanent.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from tests.conftest import wait_for
from tests.processes import WAIT_SECONDS, scaled
from tidings.provider.base import (
    Delivery,
    PermanentProviderError,
    ProviderError,
    RetryableProviderError,
)
from tidings.provider.registry import load_all
from tidings.provider.webhook.http import (
    WebhookConfig,
    WebhookProvider,
    signature_header,
    verify_signature,
)

SECRET = "whsec_test_0123456789abcdef"
BEARER = "receiver-bearer-token-secret"
PATH = "/hooks/orders"
BODY: dict[str, Any] = {"event": "order.shipped", "order": {"id": 1234, "note": "Grüße ✓"}}


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client() as client:
        yield client


def make(http: httpx.Client, **config: Any) -> WebhookProvider:
    config.setdefault("signing_secret", SECRET)
    return WebhookProvider(WebhookConfig(**config), http)


def delivery(recipient: dict[str, Any], body: Any = BODY) -> Delivery:
    return Delivery(
        message_id="msg_01JDK8Q0Y7",
        idempotency_key="msg_01JDK8Q0Y7:webhook",
        channel="webhook",
        recipient=recipient,
        content={"body": body},
    )


def assert_secret_free(error: ProviderError, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in str(error)
        assert secret not in error.reason
        assert secret not in error.response_excerpt


def recorder(httpserver: HTTPServer, status: int = 200, body: str = "") -> list[Request]:
    seen: list[Request] = []

    def handle(request: Request) -> Response:
        request.get_data()  # read the body before the request object goes away
        seen.append(request)
        return Response(body, status=status)

    httpserver.expect_request(PATH).respond_with_handler(handle)
    return seen


def test_registered_as_webhook_provider() -> None:
    assert load_all()["webhook"] is WebhookProvider
    assert WebhookProvider.channel == "webhook"


def test_posts_signed_json_with_message_id_and_idempotency_key(
    httpserver: HTTPServer, http: httpx.Client
) -> None:
    seen = recorder(httpserver, 202, "queued")
    before = int(time.time())

    result = make(http).send(delivery({"webhook": httpserver.url_for(PATH)}))

    (request,) = seen
    raw = request.get_data()
    assert request.method == "POST"
    assert request.headers["Content-Type"] == "application/json"
    assert json.loads(raw) == BODY
    assert raw == json.dumps(BODY, ensure_ascii=False, separators=(",", ":")).encode()
    assert request.headers["X-Tidings-Message-Id"] == "msg_01JDK8Q0Y7"
    assert request.headers["Idempotency-Key"] == "msg_01JDK8Q0Y7:webhook"
    # Check the signature the way a receiver in another language would.
    fields = dict(part.split("=", 1) for part in request.headers["X-Tidings-Signature"].split(","))
    assert set(fields) == {"t", "v1"}
    assert before <= int(fields["t"]) <= int(time.time())
    expected = hmac.new(SECRET.encode(), fields["t"].encode() + b"." + raw, hashlib.sha256)
    assert fields["v1"] == expected.hexdigest()
    assert verify_signature(SECRET, request.headers["X-Tidings-Signature"], raw)
    assert SECRET not in request.headers["X-Tidings-Signature"]
    assert result.provider_message_id is None
    assert result.response_excerpt == "HTTP 202: queued"


@pytest.mark.parametrize("body", [[1, 2, 3], "plain string", 42, None, True, {}])
def test_any_json_value_is_sent_as_is(
    httpserver: HTTPServer, http: httpx.Client, body: Any
) -> None:
    seen = recorder(httpserver)

    make(http).send(delivery({"webhook": {"url": httpserver.url_for(PATH)}}, body=body))

    (request,) = seen
    assert json.loads(request.get_data()) == body
    assert verify_signature(SECRET, request.headers["X-Tidings-Signature"], request.get_data())


def test_put_with_custom_headers_and_bearer_auth(
    httpserver: HTTPServer, http: httpx.Client
) -> None:
    seen = recorder(httpserver, 204)
    recipient = {
        "webhook": {
            "url": httpserver.url_for(PATH),
            "method": "put",
            "headers": {
                "X-Tenant": "acme",
                "Idempotency-Key": "forged",
                "x-tidings-signature": "forged",
                "Content-Type": "text/plain",
            },
            "authentication": {"mode": "bearer", "token": BEARER},
        }
    }

    make(http).send(delivery(recipient))

    (request,) = seen
    assert request.method == "PUT"
    assert request.headers["X-Tenant"] == "acme"
    assert request.headers["Authorization"] == f"Bearer {BEARER}"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Idempotency-Key"] == "msg_01JDK8Q0Y7:webhook"
    assert request.headers.getlist("X-Tidings-Signature") != ["forged"]
    assert verify_signature(SECRET, request.headers["X-Tidings-Signature"], request.get_data())


def test_basic_auth(httpserver: HTTPServer, http: httpx.Client) -> None:
    seen = recorder(httpserver)
    recipient = {
        "webhook": {
            "url": httpserver.url_for(PATH),
            "authentication": {"mode": "basic", "username": "tidings", "password": "s3cret"},
        }
    }

    make(http).send(delivery(recipient))

    (request,) = seen
    assert request.authorization is not None
    assert request.authorization.type == "basic"
    assert request.authorization.username == "tidings"
    assert request.authorization.password == "s3cret"


def test_default_url_serves_recipients_without_webhook(
    httpserver: HTTPServer, http: httpx.Client
) -> None:
    seen = recorder(httpserver)
    provider = make(http, url=httpserver.url_for(PATH))

    assert provider.can_deliver({"user_id": "u1"})
    provider.send(delivery({"user_id": "u1"}))

    assert len(seen) == 1


@pytest.mark.parametrize("status", [400, 401, 404, 410, 422])
def test_client_errors_are_permanent(
    httpserver: HTTPServer, http: httpx.Client, status: int
) -> None:
    recorder(httpserver, status, "unknown order endpoint")
    recipient = {
        "webhook": {
            "url": httpserver.url_for(PATH),
            "authentication": {"mode": "bearer", "token": BEARER},
        }
    }

    with pytest.raises(PermanentProviderError) as caught:
        make(http).send(delivery(recipient))

    assert "unknown order endpoint" in caught.value.reason
    assert caught.value.status_code == status
    assert_secret_free(caught.value, SECRET, BEARER)


def test_redirects_are_not_followed(httpserver: HTTPServer, http: httpx.Client) -> None:
    httpserver.expect_request(PATH).respond_with_data(
        "", status=302, headers={"Location": httpserver.url_for("/elsewhere")}
    )

    with pytest.raises(PermanentProviderError) as caught:
        make(http).send(delivery({"webhook": httpserver.url_for(PATH)}))

    assert caught.value.status_code == 302
    assert len(httpserver.log) == 1


@pytest.mark.parametrize("status", [408, 500, 502, 503])
def test_server_errors_and_408_are_retryable(
    httpserver: HTTPServer, http: httpx.Client, status: int
) -> None:
    recorder(httpserver, status, "try later")

    with pytest.raises(RetryableProviderError) as caught:
        make(http).send(delivery({"webhook": httpserver.url_for(PATH)}))

    assert caught.value.status_code == status
    assert "try later" in caught.value.reason
    assert_secret_free(caught.value, SECRET)


def test_429_carries_retry_after(httpserver: HTTPServer, http: httpx.Client) -> None:
    httpserver.expect_request(PATH).respond_with_data(
        "slow down", status=429, headers={"Retry-After": "120"}
    )

    with pytest.raises(RetryableProviderError) as caught:
        make(http).send(delivery({"webhook": httpserver.url_for(PATH)}))

    assert caught.value.retry_after == 120.0
    assert caught.value.status_code == 429


def test_timeout_is_retryable(httpserver: HTTPServer, http: httpx.Client) -> None:
    release = threading.Event()

    def stall(request: Request) -> Response:
        release.wait(scaled(WAIT_SECONDS))  # until the provider has timed out
        return Response("late")

    httpserver.expect_request(PATH).respond_with_handler(stall)
    provider = make(http, timeout_seconds=0.05)
    try:
        with pytest.raises(RetryableProviderError) as caught:
            provider.send(delivery({"webhook": httpserver.url_for(PATH)}))
    finally:
        release.set()
    # The stalled request is logged when its handler returns: wait for that here, or it
    # lands in the next test's log.
    wait_for(lambda: len(httpserver.log) == 1, what="the stalled request to finish")

    assert "timed out" in caught.value.reason
    assert_secret_free(caught.value, SECRET)


def test_refused_connection_is_retryable(http: httpx.Client) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    with pytest.raises(RetryableProviderError) as caught:
        make(http).send(delivery({"webhook": f"http://127.0.0.1:{port}{PATH}"}))

    assert "could not be reached" in caught.value.reason


# --- addresses and config ---------------------------------------------------------------------


def test_can_deliver_follows_the_address_rules(http: httpx.Client) -> None:
    provider = make(http)

    assert provider.can_deliver({"webhook": "https://example.com/hook"})
    assert provider.can_deliver({"webhook": {"url": "https://example.com/hook"}})
    assert provider.can_deliver({"webhook": {"url": "https://example.com/hook", "method": "PUT"}})
    assert not provider.can_deliver({"webhook": {"url": "https://x.test", "method": "DELETE"}})
    assert not provider.can_deliver({"webhook": "ftp://example.com/hook"})
    assert not provider.can_deliver({"webhook": {"method": "POST"}})
    # Courier: an authentication without a mode means "none".
    assert provider.can_deliver({"webhook": {"url": "https://x.test", "authentication": {}}})
    assert not provider.can_deliver(
        {"webhook": {"url": "https://x.test", "authentication": {"mode": "digest"}}}
    )
    assert not provider.can_deliver(
        {"webhook": {"url": "https://x.test", "authentication": {"mode": "bearer"}}}
    )
    assert not provider.can_deliver(
        {"webhook": {"url": "https://x.test", "headers": {"Bad Header": "x"}}}
    )
    assert not provider.can_deliver(
        {"webhook": {"url": "https://x.test", "headers": {"X-Ok": "a\r\nX-Injected: 1"}}}
    )
    assert not provider.can_deliver(
        {"webhook": {"url": "https://x.test", "headers": {"X-Name": "Zoë"}}}
    )
    assert not provider.can_deliver({"email": "ada@example.com"})


def test_missing_address_and_missing_body_are_permanent(http: httpx.Client) -> None:
    with pytest.raises(PermanentProviderError, match="no usable webhook address"):
        make(http).send(delivery({"email": "ada@example.com"}))
    no_body = Delivery(
        message_id="m",
        idempotency_key="k",
        channel="webhook",
        recipient={"webhook": "https://example.com/hook"},
        content={},
    )
    with pytest.raises(PermanentProviderError, match="no body"):
        make(http).send(no_body)


def test_config_secret_is_masked_and_required() -> None:
    config = WebhookConfig(url="https://example.com/hook", signing_secret=SECRET)

    for shown in (config.model_dump_json(), repr(config), str(config)):
        assert SECRET not in shown
    assert "**********" in config.model_dump_json()
    with pytest.raises(ValueError, match="signing_secret"):
        WebhookConfig(url="https://example.com/hook")  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="at least 16"):
        WebhookConfig(signing_secret="short")


# --- verify_signature -------------------------------------------------------------------------


RAW = b'{"event":"order.shipped"}'


def test_verify_accepts_a_fresh_signature() -> None:
    header = signature_header(SECRET, RAW)

    assert verify_signature(SECRET, header, RAW)
    assert verify_signature(SECRET.encode(), header, RAW.decode())


def test_verify_rejects_tampering_and_wrong_secret() -> None:
    header = signature_header(SECRET, RAW)

    assert not verify_signature(SECRET, header, RAW + b" ")
    assert not verify_signature(SECRET, header, b'{"event":"order.refunded"}')
    assert not verify_signature("another-secret-0123456789", header, RAW)


def test_verify_enforces_the_tolerance() -> None:
    header = signature_header(SECRET, RAW, timestamp=1_700_000_000)

    assert verify_signature(SECRET, header, RAW, now=1_700_000_299)
    assert not verify_signature(SECRET, header, RAW, now=1_700_000_301)
    assert not verify_signature(SECRET, header, RAW, now=1_699_999_000)  # from the future
    assert verify_signature(SECRET, header, RAW, tolerance_seconds=3600, now=1_700_003_000)


def test_verify_rejects_a_timestamp_swapped_into_a_valid_signature() -> None:
    header = signature_header(SECRET, RAW, timestamp=1_700_000_000)
    signature = header.split("v1=")[1]

    forged = f"t=1700000100,v1={signature}"

    assert not verify_signature(SECRET, forged, RAW, now=1_700_000_100)


def test_verify_accepts_any_of_several_signatures_for_secret_rotation() -> None:
    new_secret = "whsec_rotated_fedcba9876543210"
    old = signature_header(SECRET, RAW, timestamp=1_700_000_000)
    new = signature_header(new_secret, RAW, timestamp=1_700_000_000)
    header = f"{old},v1={new.split('v1=')[1]}"

    assert verify_signature(SECRET, header, RAW, now=1_700_000_000)
    assert verify_signature(new_secret, header, RAW, now=1_700_000_000)
    assert not verify_signature("unrelated-secret-000000", header, RAW, now=1_700_000_000)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "v1=abc",
        "t=1700000000",
        "t=soon,v1=abc",
        "t=1700000000,v1=",
        "garbage",
        "t=1700000000,v0=" + "0" * 64,
    ],
)
def test_verify_rejects_malformed_headers(header: str | None) -> None:
    assert not verify_signature(SECRET, header, RAW, now=1_700_000_000)
