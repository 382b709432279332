"""Signed HTTP webhooks: POST the rendered body as JSON to the recipient's URL.

The request is `POST` (or `PUT` when the recipient asks for it) with `Content-Type:
application/json`, the rendered `body` (any JSON value) as the payload, and these headers:

- `X-Tidings-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>`: the HMAC is computed with the
  configured signing secret over `"<t>." + <the exact body bytes sent>`. Receivers check it
  with `verify_signature` below (or the same few lines in any language) and reject requests
  whose `t` is too old, which stops replays.
- `X-Tidings-Message-Id`: the Tidings message id.
- `Idempotency-Key`: stable across every retry of the message, so a receiver can drop
  duplicates.

Any 2xx is success. 408, 429 and 5xx (and timeouts and connection errors) are retried, with
`Retry-After` honoured; any other status is permanent. Redirects are not followed. This is the
contract of Courier's webhook channel and outbound webhooks (an HMAC-SHA256 over `t.body` with
a timestamp, retry on network errors, 408, 429 and 5xx), with Tidings' own header names.

The recipient's `webhook` is a URL string, or as on Courier `{"url", "method"?: "POST"|"PUT",
"headers"?: {...}, "authentication"?: {"mode": "none"|"basic"|"bearer", "username",
"password", "token"}}`. Custom headers cannot replace the content type, signature, message id
or idempotency key. A recipient without a `webhook` is sent to the configured default URL.

Config fields: `url`, `signing_secret`, `timeout_seconds`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from pydantic import Field, SecretStr

from tidings.provider.base import (
    Delivery,
    HttpUrl,
    PermanentProviderError,
    Provider,
    ProviderConfig,
    SendResult,
    optional_field,
)
from tidings.provider.http import accepted, request, timeout_field, web_address
from tidings.provider.registry import register

VENDOR = "Webhook"
SIGNATURE_HEADER = "X-Tidings-Signature"
MESSAGE_ID_HEADER = "X-Tidings-Message-Id"
IDEMPOTENCY_HEADER = "Idempotency-Key"
USER_AGENT = "Tidings-Webhooks"
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_HEADER_VALUE = re.compile(r"[\x20-\x7e\t]*")  # visible ASCII: no line breaks to inject
_RESERVED_HEADERS = frozenset(
    {
        "content-type",
        "content-length",
        "host",
        SIGNATURE_HEADER.lower(),
        MESSAGE_ID_HEADER.lower(),
        IDEMPOTENCY_HEADER.lower(),
    }
)


def _as_bytes(value: str | bytes) -> bytes:
    return value.encode() if isinstance(value, str) else value


def compute_signature(secret: str | bytes, timestamp: int, body: str | bytes) -> str:
    """Hex HMAC-SHA256 of `"<timestamp>." + body` under `secret`."""
    message = f"{timestamp}.".encode() + _as_bytes(body)
    return hmac.new(_as_bytes(secret), message, hashlib.sha256).hexdigest()


def signature_header(secret: str | bytes, body: str | bytes, timestamp: int | None = None) -> str:
    """The `X-Tidings-Signature` value for `body`, signed now unless `timestamp` is given."""
    t = int(time.time()) if timestamp is None else timestamp
    return f"t={t},v1={compute_signature(secret, t, body)}"


def verify_signature(
    secret: str | bytes,
    header: str | None,
    body: str | bytes,
    tolerance_seconds: float = 300,
    *,
    now: float | None = None,
) -> bool:
    """Whether `header` (an `X-Tidings-Signature` value) signs `body` under `secret`.

    `body` must be the raw request body, byte for byte, not re-serialised JSON. The timestamp
    must lie within `tolerance_seconds` of `now` (default: the current time), which rejects
    replays of old requests. Several `v1=` entries are accepted, so a sender can sign with an
    old and a new secret while the secret is rotated. Comparison is constant-time.
    """
    if not header:
        return False
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError:
                return False
        elif key == "v1" and value:
            candidates.append(value)
    if timestamp is None or not candidates:
        return False
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_seconds:
        return False
    expected = compute_signature(secret, timestamp, body)
    # Check every candidate, so the time taken does not reveal which one matched.
    matched = False
    for candidate in candidates:
        if hmac.compare_digest(expected.encode(), candidate.encode()):
            matched = True
    return matched


class WebhookConfig(ProviderConfig):
    url: HttpUrl | None = optional_field(
        "Default URL", "Where to send for recipients without a webhook address of their own."
    )
    signing_secret: SecretStr = Field(
        min_length=16,
        title="Signing secret",
        description=(
            "Key of the HMAC-SHA256 in the X-Tidings-Signature header. Share it with the "
            "receivers so they can check that a request came from Tidings. At least 16 "
            "characters."
        ),
    )
    timeout_seconds: float = timeout_field("the receiver")


@dataclass(frozen=True, slots=True)
class _Endpoint:
    url: str
    method: str = "POST"
    headers: dict[str, str] = field(default_factory=dict)
    auth: tuple[str, str] | None = None


def _endpoint(address: Any) -> _Endpoint | None:
    if isinstance(address, str):
        return _Endpoint(address) if web_address(address) else None
    if not isinstance(address, dict):
        return None
    url = web_address(address.get("url"))
    if url is None:
        return None
    method = str(address.get("method") or "POST").upper()
    if method not in ("POST", "PUT"):
        return None
    headers: dict[str, str] = {}
    raw_headers = address.get("headers")
    if isinstance(raw_headers, dict):
        for name, value in raw_headers.items():
            name, value = str(name), str(value)
            # A header that cannot be sent would fail every retry; refuse the address instead.
            if not _HEADER_NAME.fullmatch(name) or not _HEADER_VALUE.fullmatch(value):
                return None
            if name.lower() not in _RESERVED_HEADERS:
                headers[name] = value
    auth = None
    authentication = address.get("authentication")
    if isinstance(authentication, dict):
        mode = authentication.get("mode") or "none"
        if mode == "bearer":
            token = authentication.get("token")
            if not isinstance(token, str) or not token or not _HEADER_VALUE.fullmatch(token):
                return None
            headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
            headers["Authorization"] = f"Bearer {token}"
        elif mode == "basic":
            username = authentication.get("username")
            password = authentication.get("password")
            if not isinstance(username, str) or not isinstance(password, str):
                return None
            auth = (username, password)
        elif mode != "none":
            return None
    return _Endpoint(url=url, method=method, headers=headers, auth=auth)


@register
class WebhookProvider(Provider[WebhookConfig]):
    name = "webhook"
    channel = "webhook"
    display_name = "Webhook"
    docs_url = ""

    def address(self, recipient: dict[str, Any]) -> _Endpoint | None:
        address = recipient.get("webhook")
        if not address:
            return _Endpoint(self.config.url) if self.config.url else None
        return _endpoint(address)

    def send(self, delivery: Delivery) -> SendResult:
        endpoint = self.address(delivery.recipient)
        if endpoint is None:
            raise PermanentProviderError(
                "Webhook: the recipient has no usable webhook address (an http(s) URL, or "
                "{url, method: POST|PUT, headers, authentication}) and no default URL is "
                "configured"
            )
        if "body" not in delivery.content:
            raise PermanentProviderError("Webhook: the rendered message has no body")
        payload = json.dumps(
            delivery.content["body"], ensure_ascii=False, separators=(",", ":")
        ).encode()
        secret = self.config.signing_secret.get_secret_value()
        headers = httpx.Headers(endpoint.headers)
        headers.setdefault("User-Agent", USER_AGENT)
        headers["Content-Type"] = "application/json"
        headers[SIGNATURE_HEADER] = signature_header(secret, payload)
        headers[MESSAGE_ID_HEADER] = delivery.message_id
        headers[IDEMPOTENCY_HEADER] = delivery.idempotency_key
        response = request(
            VENDOR,
            lambda: self.http.request(
                endpoint.method,
                endpoint.url,
                content=payload,
                headers=headers,
                auth=endpoint.auth,
                timeout=self.config.timeout_seconds,
                follow_redirects=False,
            ),
            # 408 Request Timeout is the receiver timing out: retry it like a timeout.
            retry_if=lambda refusal: refusal.status_code == 408,
        )
        return accepted(response)
