"""Mailgun: email through Mailgun's Messages API.

Follows https://documentation.mailgun.com/docs/mailgun/api-reference/openapi-final/tag/Messages/
("Send an email"): `POST {base_url}/v3/{domain}/messages` with HTTP Basic auth (`api` and the
API key) and a `multipart/form-data` body of `from`, `to`, `subject`, `html`, `text`, one
`h:<Header>` field per extra MIME header (`h:Reply-To` sets Reply-To) and `v:<name>` fields for
custom variables. Mailgun answers `200 {"id": "<...>", "message": "Queued. Thank you."}`.
Errors carry `{"message": "..."}`, as the API overview says
(https://documentation.mailgun.com/docs/mailgun/api-reference/api-overview); a bad key may
get a plain-text `401 Forbidden` instead.

`v:tidings_message_id` carries the Tidings message id: Mailgun returns custom variables as
`user-variables` in its webhooks, so delivery callbacks can find the message.

Mailgun documents no idempotency mechanism for sending, so `idempotency_key` is not sent.

Config: `api_key` (secret), `domain`, `region` (`us` or `eu`: the domain's region picks the
API host), `base_url` (overrides the region's host), `from_email`, `from_name`, `reply_to`.
"""

from __future__ import annotations

from typing import Literal

import httpx
from pydantic import Field, SecretStr

from tidings.provider.base import (
    BaseUrl,
    Delivery,
    Provider,
    SendResult,
)
from tidings.provider.email.sender import SenderConfig, email_parts
from tidings.provider.http import TIMEOUT_SECONDS, accepted, json_field, reply_field, request
from tidings.provider.registry import register

REGION_BASE_URLS = {"us": "https://api.mailgun.net", "eu": "https://api.eu.mailgun.net"}


class MailgunConfig(SenderConfig):
    api_key: SecretStr = Field(
        title="API key",
        description="A Mailgun account API key or a sending key for the domain.",
    )
    domain: str = Field(
        title="Sending domain",
        description="The Mailgun domain to send through, e.g. mg.example.com.",
        pattern=r"^[A-Za-z0-9.-]+$",
    )
    region: Literal["us", "eu"] = Field(
        default="us",
        title="Region",
        description="Region the domain was created in: us (api.mailgun.net) or eu "
        "(api.eu.mailgun.net).",
    )
    base_url: BaseUrl | None = Field(
        default=None,
        title="API base URL",
        description="Overrides the region's API host when set.",
    )

    @property
    def api_base_url(self) -> str:
        return (self.base_url or REGION_BASE_URLS[self.region]).rstrip("/")


def error_reason(response: httpx.Response) -> str | None:
    """Mailgun's `message`."""
    message = json_field(response, "message")
    return str(message) if message else None


@register
class MailgunProvider(Provider[MailgunConfig]):
    name = "mailgun"
    channel = "email"
    display_name = "Mailgun"
    docs_url = (
        "https://documentation.mailgun.com/docs/mailgun/api-reference/openapi-final/tag/Messages/"
    )

    def send(self, delivery: Delivery) -> SendResult:
        config = self.config
        parts = email_parts(delivery)
        address, html, text = parts.to, parts.html, parts.text

        fields: dict[str, str] = {
            "from": config.sender,
            "to": address,
            "subject": parts.subject,
        }
        if html:
            fields["html"] = html
        if text:
            fields["text"] = text
        if config.reply_to:
            fields["h:Reply-To"] = config.reply_to
        for header, value in delivery.headers.items():
            fields[f"h:{header}"] = value
        fields["v:tidings_message_id"] = delivery.message_id
        # `(None, value)` makes httpx send a plain multipart form field, as Mailgun documents.
        form = [(key, (None, value)) for key, value in fields.items()]

        response = request(
            "Mailgun",
            lambda: self.http.post(
                f"{config.api_base_url}/v3/{config.domain}/messages",
                files=form,
                auth=("api", config.api_key.get_secret_value()),
                timeout=TIMEOUT_SECONDS,
            ),
            error_reason,
        )
        return accepted(response, reply_field(response, "id"))
