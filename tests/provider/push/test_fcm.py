"""FCM provider against a loopback fake of Google's OAuth token endpoint and the FCM v1 API.

Shapes checked against:
- https://firebase.google.com/docs/reference/fcm/rest/v1/projects.messages/send
  (`POST https://fcm.googleapis.com/v1/{parent=projects/*}/messages:send`, body
  `{"validate_only", "message"}`, the reply is the sent Message whose `name` is
  `projects/*/messages/{message_id}`; OAuth scope
  `https://www.googleapis.com/auth/firebase.messaging`)
- https://firebase.google.com/docs/cloud-messaging/error-codes and
  https://firebase.google.com/docs/reference/fcm/rest/v1/ErrorCode (error body
  `{"error": {"code", "message", "status", "details": [{"@type":
  "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode"}]}}`; UNREGISTERED = 404,
  INVALID_ARGUMENT = 400, QUOTA_EXCEEDED = 429, UNAVAILABLE = 503, INTERNAL = 500)
- googleapis/google-auth-library-python `google/oauth2/service_account.py`
  (`_make_authorization_grant_assertion`: claims iat, exp = iat + 3600, iss = service account
  email, aud = token endpoint, scope) and `google/oauth2/_client.py` (`jwt_grant`: form
  `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer` and `assertion`; reply
  `{access_token, expires_in, token_type}`; errors `{error, error_description}`).
"""

from __future__ import annotations

import base64
import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from tidings.provider.base import Delivery, PermanentProviderError, RetryableProviderError
from tidings.provider.push.fcm import FcmConfig, FcmProvider
from tidings.provider.registry import PROVIDERS

PROJECT_ID = "tidings-demo"
CLIENT_EMAIL = "firebase-adminsdk-x1y2z@tidings-demo.iam.gserviceaccount.com"
KEY_ID = "7f3c1e0a9b8d"
ACCESS_TOKEN = "ya29.c.fake-access-token-do-not-leak"
SEND_PATH = f"/v1/projects/{PROJECT_ID}/messages:send"
TOKEN_PATH = "/token"
DEVICE_TOKEN = "fcm-registration-token-1"
MESSAGE_NAME = f"projects/{PROJECT_ID}/messages/0:1500415314455276%31bd1c9631bd1c96"


@pytest.fixture(scope="module")
def private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def private_key_pem(private_key: rsa.RSAPrivateKey) -> str:
    return private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client() as http:
        yield http


def service_account(httpserver: HTTPServer, private_key_pem: str) -> str:
    return json.dumps(
        {
            "type": "service_account",
            "project_id": PROJECT_ID,
            "private_key_id": KEY_ID,
            "private_key": private_key_pem,
            "client_email": CLIENT_EMAIL,
            "client_id": "109876543210987654321",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": httpserver.url_for(TOKEN_PATH),
        }
    )


def make_provider(
    httpserver: HTTPServer, private_key_pem: str, http: httpx.Client, base_url: str | None = None
) -> FcmProvider:
    config = FcmConfig(
        service_account=service_account(httpserver, private_key_pem),
        base_url=base_url or httpserver.url_for("/").rstrip("/"),
    )
    return FcmProvider(config, http)


def make_delivery(**overrides: Any) -> Delivery:
    values: dict[str, Any] = {
        "message_id": "msg_01",
        "idempotency_key": "msg_01:firebase-fcm",
        "channel": "push",
        "recipient": {"user_id": "u1", "firebaseToken": DEVICE_TOKEN},
        "content": {
            "title": "Order shipped",
            "body": "Your order #42 is on its way",
            "data": {"order_id": "42", "items": 3, "gift": True, "meta": {"carrier": "DHL"}},
        },
    }
    values.update(overrides)
    return Delivery(**values)


def b64url_decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def token_endpoint(
    httpserver: HTTPServer,
    private_key: rsa.RSAPrivateKey,
    grants: list[dict[str, Any]],
    access_token: str = ACCESS_TOKEN,
) -> None:
    """The fake token endpoint: checks the JWT bearer grant the way Google documents it."""

    def handle(request: Request) -> Response:
        assert request.method == "POST"
        assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
        form = request.form.to_dict()
        assert set(form) == {"grant_type", "assertion"}
        assert form["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
        header_b64, claims_b64, signature_b64 = form["assertion"].split(".")
        private_key.public_key().verify(
            b64url_decode(signature_b64),
            f"{header_b64}.{claims_b64}".encode(),
            padding.PKCS1v15(),
            hashes.SHA256(),
        )
        header = json.loads(b64url_decode(header_b64))
        claims = json.loads(b64url_decode(claims_b64))
        grants.append({"header": header, "claims": claims})
        body = {"access_token": access_token, "expires_in": 3599, "token_type": "Bearer"}
        return Response(json.dumps(body), content_type="application/json")

    httpserver.expect_request(TOKEN_PATH, method="POST").respond_with_handler(handle)


def send_endpoint(
    httpserver: HTTPServer,
    sent: list[dict[str, Any]],
    replies: list[tuple[int, dict[str, Any], dict[str, str]]] | None = None,
) -> None:
    """The fake messages:send endpoint: records each request, answers from `replies` in turn."""
    queue = list(replies or [])

    def handle(request: Request) -> Response:
        sent.append(
            {
                "method": request.method,
                "authorization": request.headers.get("Authorization"),
                "content_type": request.headers.get("Content-Type"),
                "json": json.loads(request.get_data()),
            }
        )
        status, body, headers = queue.pop(0) if queue else (200, {"name": MESSAGE_NAME}, {})
        return Response(
            json.dumps(body), status=status, headers=headers, content_type="application/json"
        )

    httpserver.expect_request(SEND_PATH, method="POST").respond_with_handler(handle)


def fcm_error(
    code: int, status: str, message: str, error_code: str | None = None
) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if error_code:
        error["details"] = [
            {
                "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                "errorCode": error_code,
            }
        ]
    return {"error": error}


def test_registered_for_push() -> None:
    assert PROVIDERS["firebase-fcm"] is FcmProvider
    assert FcmProvider.channel == "push"


@dataclass
class Served:
    """An FCM provider against the loopback token and send endpoints, and what each saw."""

    provider: FcmProvider
    grants: list[dict[str, Any]]
    sent: list[dict[str, Any]]


@pytest.fixture
def served(
    httpserver: HTTPServer,
    client: httpx.Client,
    private_key: rsa.RSAPrivateKey,
    private_key_pem: str,
) -> Served:
    grants: list[dict[str, Any]] = []
    sent: list[dict[str, Any]] = []
    token_endpoint(httpserver, private_key, grants)
    send_endpoint(httpserver, sent)
    return Served(make_provider(httpserver, private_key_pem, client), grants, sent)


def test_send_signs_a_jwt_gets_a_token_and_posts_the_v1_message(
    served: Served, httpserver: HTTPServer
) -> None:
    provider, grants, sent = served.provider, served.grants, served.sent

    before = int(time.time())
    result = provider.send(make_delivery())

    assert result.provider_message_id == MESSAGE_NAME
    assert result.response_excerpt.startswith("HTTP 200:")
    assert len(grants) == 1
    assert grants[0]["header"] == {"alg": "RS256", "typ": "JWT", "kid": KEY_ID}
    claims = grants[0]["claims"]
    assert claims["iss"] == CLIENT_EMAIL
    assert claims["scope"] == "https://www.googleapis.com/auth/firebase.messaging"
    assert claims["aud"] == httpserver.url_for(TOKEN_PATH)
    assert before <= claims["iat"] <= int(time.time())
    assert claims["exp"] == claims["iat"] + 3600
    assert sent == [
        {
            "method": "POST",
            "authorization": f"Bearer {ACCESS_TOKEN}",
            "content_type": "application/json",
            "json": {
                "message": {
                    "token": DEVICE_TOKEN,
                    "notification": {
                        "title": "Order shipped",
                        "body": "Your order #42 is on its way",
                    },
                    "data": {
                        "order_id": "42",
                        "items": "3",
                        "gift": "true",
                        "meta": '{"carrier":"DHL"}',
                    },
                }
            },
        }
    ]
    assert ACCESS_TOKEN not in result.response_excerpt


def test_access_token_is_reused_across_sends(served: Served) -> None:
    # The instance, built once per configuration, keeps the token between sends.
    served.provider.send(make_delivery())
    served.provider.send(make_delivery())

    assert len(served.grants) == 1
    assert [request["authorization"] for request in served.sent] == [f"Bearer {ACCESS_TOKEN}"] * 2


def test_a_closed_instance_keeps_no_token(served: Served) -> None:
    served.provider.send(make_delivery())
    served.provider.close()
    served.provider.send(make_delivery())

    assert len(served.grants) == 2
    assert len(served.sent) == 2


def test_rejected_cached_token_is_replaced_once(
    httpserver: HTTPServer,
    client: httpx.Client,
    private_key: rsa.RSAPrivateKey,
    private_key_pem: str,
) -> None:
    grants: list[dict[str, Any]] = []
    sent: list[dict[str, Any]] = []
    token_endpoint(httpserver, private_key, grants)
    unauthenticated = fcm_error(
        401,
        "UNAUTHENTICATED",
        "Request had invalid authentication credentials. Expected OAuth 2 access token.",
    )
    send_endpoint(httpserver, sent, [(200, {"name": MESSAGE_NAME}, {}), (401, unauthenticated, {})])

    provider = make_provider(httpserver, private_key_pem, client)
    provider.send(make_delivery())
    result = provider.send(make_delivery())

    assert result.provider_message_id == MESSAGE_NAME
    assert len(grants) == 2
    assert len(sent) == 3


def test_unregistered_token_is_permanent(
    httpserver: HTTPServer,
    client: httpx.Client,
    private_key: rsa.RSAPrivateKey,
    private_key_pem: str,
) -> None:
    token_endpoint(httpserver, private_key, [])
    error = fcm_error(404, "NOT_FOUND", "Requested entity was not found.", "UNREGISTERED")
    send_endpoint(httpserver, [], [(404, error, {})])

    with pytest.raises(PermanentProviderError) as caught:
        make_provider(httpserver, private_key_pem, client).send(make_delivery())

    assert caught.value.status_code == 404
    assert "UNREGISTERED: Requested entity was not found." in caught.value.reason
    assert "UNREGISTERED" in caught.value.response_excerpt
    for secret in (ACCESS_TOKEN, private_key_pem.splitlines()[1]):
        assert secret not in str(caught.value)
        assert secret not in caught.value.response_excerpt


def test_invalid_argument_is_permanent(
    httpserver: HTTPServer,
    client: httpx.Client,
    private_key: rsa.RSAPrivateKey,
    private_key_pem: str,
) -> None:
    token_endpoint(httpserver, private_key, [])
    error = fcm_error(
        400,
        "INVALID_ARGUMENT",
        "The registration token is not a valid FCM registration token",
        "INVALID_ARGUMENT",
    )
    send_endpoint(httpserver, [], [(400, error, {})])

    with pytest.raises(PermanentProviderError, match="not a valid FCM registration token"):
        make_provider(httpserver, private_key_pem, client).send(make_delivery())


def test_quota_exceeded_is_retryable_with_retry_after(
    httpserver: HTTPServer,
    client: httpx.Client,
    private_key: rsa.RSAPrivateKey,
    private_key_pem: str,
) -> None:
    token_endpoint(httpserver, private_key, [])
    error = fcm_error(
        429, "RESOURCE_EXHAUSTED", "Quota exceeded for quota metric.", "QUOTA_EXCEEDED"
    )
    send_endpoint(httpserver, [], [(429, error, {"Retry-After": "30"})])

    with pytest.raises(RetryableProviderError) as caught:
        make_provider(httpserver, private_key_pem, client).send(make_delivery())

    assert caught.value.retry_after == 30.0
    assert "QUOTA_EXCEEDED" in caught.value.reason


@pytest.mark.parametrize(
    ("status", "error_code", "message"),
    [(503, "UNAVAILABLE", "The service is currently unavailable."), (500, "INTERNAL", "Internal")],
)
def test_unavailable_and_internal_are_retryable(
    httpserver: HTTPServer,
    client: httpx.Client,
    private_key: rsa.RSAPrivateKey,
    private_key_pem: str,
    status: int,
    error_code: str,
    message: str,
) -> None:
    token_endpoint(httpserver, private_key, [])
    send_endpoint(
        httpserver, [], [(status, fcm_error(status, error_code, message, error_code), {})]
    )

    with pytest.raises(RetryableProviderError) as caught:
        make_provider(httpserver, private_key_pem, client).send(make_delivery())

    assert caught.value.status_code == status
    assert error_code in caught.value.reason


def test_refused_grant_is_permanent_with_googles_words(
    httpserver: HTTPServer, client: httpx.Client, private_key_pem: str
) -> None:
    httpserver.expect_request(TOKEN_PATH, method="POST").respond_with_json(
        {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}, status=400
    )

    with pytest.raises(PermanentProviderError) as caught:
        make_provider(httpserver, private_key_pem, client).send(make_delivery())

    assert "invalid_grant: Invalid JWT Signature." in caught.value.reason
    assert private_key_pem.splitlines()[1] not in str(caught.value)
    assert private_key_pem.splitlines()[1] not in caught.value.response_excerpt


def test_refused_connection_is_retryable(
    httpserver: HTTPServer,
    client: httpx.Client,
    private_key: rsa.RSAPrivateKey,
    private_key_pem: str,
) -> None:
    token_endpoint(httpserver, private_key, [])
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    provider = make_provider(httpserver, private_key_pem, client, f"http://127.0.0.1:{port}")

    with pytest.raises(RetryableProviderError) as caught:
        provider.send(make_delivery())

    assert "FCM could not be reached" in caught.value.reason
    assert ACCESS_TOKEN not in str(caught.value)


def test_several_tokens_succeed_if_any_is_delivered(
    httpserver: HTTPServer,
    client: httpx.Client,
    private_key: rsa.RSAPrivateKey,
    private_key_pem: str,
) -> None:
    sent: list[dict[str, Any]] = []
    token_endpoint(httpserver, private_key, [])
    error = fcm_error(404, "NOT_FOUND", "Requested entity was not found.", "UNREGISTERED")
    send_endpoint(httpserver, sent, [(404, error, {}), (200, {"name": MESSAGE_NAME}, {})])
    delivery = make_delivery(recipient={"firebaseToken": ["stale-token", DEVICE_TOKEN]})

    result = make_provider(httpserver, private_key_pem, client).send(delivery)

    assert result.provider_message_id == MESSAGE_NAME
    assert "UNREGISTERED" in result.response_excerpt
    assert [request["json"]["message"]["token"] for request in sent] == [
        "stale-token",
        DEVICE_TOKEN,
    ]


def test_missing_firebase_token_is_permanent(
    httpserver: HTTPServer, client: httpx.Client, private_key_pem: str
) -> None:
    provider = make_provider(httpserver, private_key_pem, client)

    assert provider.can_deliver({"expo": {"token": "ExponentPushToken[x]"}}) is False
    assert provider.can_deliver({"firebaseToken": DEVICE_TOKEN}) is True
    with pytest.raises(PermanentProviderError, match="no firebaseToken"):
        provider.send(make_delivery(recipient={"expo": {"token": "ExponentPushToken[x]"}}))
    assert httpserver.log == []


def test_unreadable_private_key_is_permanent(httpserver: HTTPServer, client: httpx.Client) -> None:
    provider = make_provider(httpserver, "-----BEGIN PRIVATE KEY-----\nnot a key\n", client)

    with pytest.raises(PermanentProviderError, match="not a readable PEM private key"):
        provider.send(make_delivery())


def test_service_account_is_masked_and_validated(
    httpserver: HTTPServer, private_key_pem: str
) -> None:
    key_line = private_key_pem.splitlines()[1]
    config = FcmConfig(service_account=service_account(httpserver, private_key_pem))

    assert config.base_url == "https://fcm.googleapis.com"
    assert key_line not in config.model_dump_json()
    assert key_line not in repr(config)

    incomplete = json.dumps({"project_id": PROJECT_ID, "private_key": private_key_pem})
    with pytest.raises(ValueError, match="client_email") as caught:
        FcmConfig(service_account=incomplete)
    assert key_line not in str(caught.value)
    with pytest.raises(ValueError, match="not valid JSON"):
        FcmConfig(service_account="{" + key_line)
