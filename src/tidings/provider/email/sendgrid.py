"""SendGrid: email through the Twilio SendGrid v3 Mail Send API.

Follows https://www.twilio.com/docs/sendgrid/api-reference/mail-send/mail-send:
`POST {base_url}/v3/mail/send` with `Authorization: Bearer <API key>` and a JSON body of
`personalizations[{to}]`, `from`, `reply_to`, `subject`, `content[]` (text/plain before
text/html, as SendGrid requires), `headers` and `custom_args`. SendGrid answers `202 Accepted`
with an empty body; the message id is the `X-Message-Id` response header. Errors carry
`{"errors": [{"message", "field", "help"}]}`.

`custom_args.tidings_message_id` carries the Tidings message id: SendGrid's event webhook
echoes custom args on every event, so delivery callbacks can find the message.

SendGrid documents no idempotency mechanism for Mail Send, so `idempotency_key` is not sent.

Config: `api_key` (secret), `from_email`, `from_name`, `reply_to`, `base_url` (use
`https://api.eu.sendgrid.com` for EU regional subusers).
"""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import Field, SecretStr

from tidings.provider.base import (
    BaseUrl,
    Delivery,
    Provider,
    SendResult,
)
from tidings.provider.email.sender import SenderConfig, email_parts
from tidings.provider.http import json_field, request
from tidings.provider.registry import register

TIMEOUT_SECONDS = 10.0


class SendGridConfig(SenderConfig):
    api_key: SecretStr = Field(
        title="API key",
        description="A SendGrid API key with the Mail Send permission.",
    )
    base_url: BaseUrl = Field(
        default="https://api.sendgrid.com",
        title="API base URL",
        description="https://api.sendgrid.com, or https://api.eu.sendgrid.com for EU subusers.",
    )
    event_webhook_public_key: str | None = Field(
        default=None,
        title="Event Webhook verification key",
        description=(
            "The Signed Event Webhook public key from SendGrid's Event Webhook settings. When "
            "set, POST /callbacks/sendgrid accepts only events signed with it."
        ),
    )


def error_reason(response: httpx.Response) -> str | None:
    """SendGrid's `errors[].message` (with the offending field), joined."""
    errors = json_field(response, "errors")
    if not isinstance(errors, list):
        return None
    parts = []
    for error in errors:
        if not isinstance(error, dict) or not error.get("message"):
            continue
        field = error.get("field")
        parts.append(f"{error['message']} ({field})" if field else str(error["message"]))
    return "; ".join(parts) or None


@register
class SendGridProvider(Provider):
    name = "sendgrid"
    channel = "email"
    display_name = "SendGrid"
    docs_url = "https://www.twilio.com/docs/sendgrid/api-reference/mail-send/mail-send"
    config_model = SendGridConfig

    def send(self, delivery: Delivery) -> SendResult:
        config = self.config
        assert isinstance(config, SendGridConfig)
        parts = email_parts(delivery)
        address, html, text = parts.to, parts.html, parts.text

        sender: dict[str, str] = {"email": config.from_email}
        if config.from_name:
            sender["name"] = config.from_name
        content = []
        if text:
            content.append({"type": "text/plain", "value": text})
        if html:
            content.append({"type": "text/html", "value": html})
        body: dict[str, Any] = {
            "personalizations": [{"to": [{"email": address}]}],
            "from": sender,
            "subject": parts.subject,
            "content": content,
            "custom_args": {"tidings_message_id": delivery.message_id},
        }
        if config.reply_to:
            body["reply_to"] = {"email": config.reply_to}
        if delivery.headers:
            body["headers"] = dict(delivery.headers)

        response = request(
            "SendGrid",
            lambda: self.http.post(
                f"{config.base_url.rstrip('/')}/v3/mail/send",
                json=body,
                headers={"Authorization": f"Bearer {config.api_key.get_secret_value()}"},
                timeout=TIMEOUT_SECONDS,
            ),
            error_reason,
        )
        message_id = response.headers.get("x-message-id") or None
        return SendResult(
            provider_message_id=message_id,
            response_excerpt=f"HTTP {response.status_code}; X-Message-Id: {message_id}",
        )
