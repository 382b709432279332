"""Standard Webhooks signatures (standardwebhooks.com).

A secret is `whsec_` and the base64 of 32 random bytes; the HMAC key is those bytes. Each
request carries `webhook-id`, `webhook-timestamp` (Unix seconds) and `webhook-signature`:
`v1,` and the base64 HMAC-SHA256 of `"{webhook-id}.{webhook-timestamp}.{body}"`, one per
secret in force, separated by spaces (during a rotation, the new secret's and the old one's).
Any Standard Webhooks library verifies it (the tests use the official Python one).
"""

from __future__ import annotations

import base64
import secrets

from tidings.kit.crypto import webhook_signature

PREFIX = "whsec_"
SECRET_BYTES = 32
USER_AGENT = "Tidings-Webhooks"


def new_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def signature(secret: str, event_id: str, timestamp: int, body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix(PREFIX))
    return "v1," + webhook_signature(key, event_id, str(timestamp), body)


def headers(
    secrets_in_force: list[str], event_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """The request's headers: the three of Standard Webhooks, the content type, and ours."""
    return {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": event_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(
            signature(secret, event_id, timestamp, body) for secret in secrets_in_force
        ),
    }
