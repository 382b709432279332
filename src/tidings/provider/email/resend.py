"""Resend: email through Resend's Emails API.

Follows https://resend.com/docs/api-reference/emails/send-email: `POST {base_url}/emails` with
`Authorization: Bearer <API key>` and a JSON body of `from`, `to`, `subject`, `html`, `text`,
`reply_to` and `headers` (an object). Resend answers `200 {"id": "..."}`; errors carry
`{"statusCode", "name", "message"}` (https://resend.com/docs/api-reference/errors).

Resend de-duplicates on the `Idempotency-Key` request header for 24 hours
(https://resend.com/docs/dashboard/emails/idempotency-keys), so `idempotency_key` goes there:
a retry after a lost reply does not send the email twice. A `409
concurrent_idempotent_requests` (the first request with that key is still in progress) is
retryable; a `409 invalid_idempotent_request` (same key, different payload) is not.

Config: `api_key` (secret), `from_email`, `from_name`, `reply_to`, `base_url`.
"""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import Field, SecretStr

from tidings.provider.base import (
    BaseUrl,
    Delivery,
    Provider,
    ProviderError,
    SendResult,
)
from tidings.provider.email.sender import SenderConfig, email_parts
from tidings.provider.http import (
    TIMEOUT_SECONDS,
    accepted,
    json_field,
    reply_field,
    request,
)
from tidings.provider.registry import register

CONCURRENT_IDEMPOTENT_REQUESTS = "concurrent_idempotent_requests"


class ResendConfig(SenderConfig):
    api_key: SecretStr = Field(
        title="API key",
        description="A Resend API key with sending access.",
    )
    base_url: BaseUrl = Field(
        default="https://api.resend.com",
        title="API base URL",
        description="Resend's API endpoint.",
    )


def error_reason(response: httpx.Response) -> str | None:
    """Resend's error `name` and `message`."""
    message = json_field(response, "message")
    if not message:
        return None
    name = json_field(response, "name")
    return f"{name}: {message}" if name else str(message)


def _still_in_progress(error: ProviderError) -> bool:
    """A 409 concurrent_idempotent_requests: the first request with this key is still running."""
    return error.status_code == 409 and CONCURRENT_IDEMPOTENT_REQUESTS in error.reason


@register
class ResendProvider(Provider[ResendConfig]):
    name = "resend"
    channel = "email"
    display_name = "Resend"
    docs_url = "https://resend.com/docs/api-reference/emails/send-email"

    def send(self, delivery: Delivery) -> SendResult:
        config = self.config
        parts = email_parts(delivery)
        address, html, text = parts.to, parts.html, parts.text

        body: dict[str, Any] = {
            "from": config.sender,
            "to": [address],
            "subject": parts.subject,
        }
        # An absent `text` lets Resend derive the plain-text part from the HTML.
        if html:
            body["html"] = html
        if text:
            body["text"] = text
        if config.reply_to:
            body["reply_to"] = config.reply_to
        if delivery.headers:
            body["headers"] = dict(delivery.headers)

        response = request(
            "Resend",
            lambda: self.http.post(
                f"{config.base_url.rstrip('/')}/emails",
                json=body,
                headers={
                    "Authorization": f"Bearer {config.api_key.get_secret_value()}",
                    "Idempotency-Key": delivery.idempotency_key,
                },
                timeout=TIMEOUT_SECONDS,
            ),
            error_reason,
            retry_if=_still_in_progress,
        )
        return accepted(response, reply_field(response, "id"))
