"""Postmark: email through Postmark's Email API.

Follows https://postmarkapp.com/developer/api/email-api ("Send a single email"):
`POST {base_url}/email` with the `X-Postmark-Server-Token` header and a JSON body of `From`,
`To`, `Subject`, `HtmlBody`, `TextBody`, `ReplyTo`, `Headers` (a list of `{Name, Value}`),
`Metadata` and `MessageStream`. Postmark answers
`200 {"To", "SubmittedAt", "MessageID", "ErrorCode": 0, "Message": "OK"}`; a refusal is
`422 {"ErrorCode", "Message"}` (https://postmarkapp.com/developer/api/overview), and a bad
token `401`. A 200 whose `ErrorCode` is not 0 is treated as a refusal too.

`Metadata.tidings_message_id` carries the Tidings message id: Postmark echoes metadata in its
webhooks, so delivery callbacks can find the message.

Postmark documents no idempotency mechanism for sending, so `idempotency_key` is not sent.

Config: `server_token` (secret), `from_email`, `from_name`, `reply_to`, `message_stream`,
`base_url`.
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
from tidings.provider.http import (
    TIMEOUT_SECONDS,
    accepted,
    json_field,
    refused,
    reply_field,
    request,
)
from tidings.provider.registry import register


class PostmarkConfig(SenderConfig):
    server_token: SecretStr = Field(
        title="Server API token",
        description="The token on the API Tokens tab of the Postmark server that sends.",
    )
    message_stream: str = Field(
        default="outbound",
        title="Message stream",
        description="ID of the Postmark message stream to send through.",
        min_length=1,
    )
    base_url: BaseUrl = Field(
        default="https://api.postmarkapp.com",
        title="API base URL",
        description="Postmark's API endpoint.",
    )


def error_reason(response: httpx.Response) -> str | None:
    """Postmark's `Message`, with its `ErrorCode`."""
    message = json_field(response, "Message")
    if not message:
        return None
    code = json_field(response, "ErrorCode")
    return f"{message} (ErrorCode {code})" if code is not None else str(message)


@register
class PostmarkProvider(Provider[PostmarkConfig]):
    name = "postmark"
    channel = "email"
    display_name = "Postmark"
    docs_url = "https://postmarkapp.com/developer/api/email-api"

    def send(self, delivery: Delivery) -> SendResult:
        config = self.config
        parts = email_parts(delivery)
        address, html, text = parts.to, parts.html, parts.text

        body: dict[str, Any] = {
            "From": config.sender,
            "To": address,
            "Subject": parts.subject,
            "MessageStream": config.message_stream,
            "Metadata": {"tidings_message_id": delivery.message_id},
        }
        if html:
            body["HtmlBody"] = html
        if text:
            body["TextBody"] = text
        if config.reply_to:
            body["ReplyTo"] = config.reply_to
        if delivery.headers:
            body["Headers"] = [
                {"Name": name, "Value": value} for name, value in delivery.headers.items()
            ]

        response = request(
            "Postmark",
            lambda: self.http.post(
                f"{config.base_url.rstrip('/')}/email",
                json=body,
                headers={
                    "Accept": "application/json",
                    "X-Postmark-Server-Token": config.server_token.get_secret_value(),
                },
                timeout=TIMEOUT_SECONDS,
            ),
            error_reason,
        )
        if reply_field(response, "ErrorCode") not in (None, 0):
            raise refused(
                f"Postmark answered {response.status_code}: {error_reason(response)}",
                response,
                retryable=False,
            )
        return accepted(response, reply_field(response, "MessageID"))
