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

Status callbacks come from Mailgun's webhooks
(https://documentation.mailgun.com/docs/mailgun/user-manual/webhooks/webhook-payloads), a
JSON object of `signature` and `event-data`:
- `delivered` → delivered; `opened` → opened (with `client-info.user-agent`); `clicked` →
  clicked (with `url`); `complained` → complained;
- `failed` with `severity: permanent`: `reason: bounce` → a hard bounce; a suppression
  (`suppress-bounce`, `suppress-complaint`, `suppress-unsubscribe`: Mailgun did not try) →
  undeliverable; any other reason (`old`: Mailgun gave up retrying, `generic`, `esp-block`)
  → a soft bounce; `delivery-status.message` (or `description`) is the detail;
  `severity: temporary` → intermediate (Mailgun tries again);
- `accepted`, `unsubscribed` and anything else are ignored;
- an event names its message by `user-variables.tidings_message_id` and by
  `message.headers.message-id` (the `id` Mailgun answered when sending, without its `<>`).
The signature (https://documentation.mailgun.com/docs/mailgun/user-manual/webhooks/securing-webhooks)
is the hex HMAC-SHA256 of `timestamp` followed by `token`, keyed with the domain's HTTP
webhook signing key (`webhook_signing_key`).

Config: `api_key` (secret), `domain`, `region` (`us` or `eu`: the domain's region picks the
API host), `base_url` (overrides the region's host), `from_email`, `from_name`, `reply_to`,
`webhook_signing_key` (secret).
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any, Literal

from pydantic import Field, SecretStr

from tidings.errors import BadRequest
from tidings.provider.base import (
    BaseUrl,
    Bounce,
    Delivery,
    ProviderConfig,
    ReportOutcome,
    SendResult,
    StatusCallback,
    StatusReport,
    nonempty_str,
    optional_field,
)
from tidings.provider.callback import (
    compare,
    configured_secret,
    invalid_signature,
    json_object,
    labelled,
    text,
)
from tidings.provider.email.sender import EmailParts, EmailProvider, SenderConfig
from tidings.provider.http import (
    accepted_reply,
    api_key_field,
    base_url_field,
    message_reason,
    post,
    present,
)
from tidings.provider.registry import register

SHAPE = 'Mailgun posts {"signature": {...}, "event-data": {...}}'
# Failures for which Mailgun did not try the address: not bounces from the recipient's side.
NOT_TRIED = frozenset({"suppress-bounce", "suppress-complaint", "suppress-unsubscribe"})

REGION_BASE_URLS = {"us": "https://api.mailgun.net", "eu": "https://api.eu.mailgun.net"}


class MailgunConfig(SenderConfig):
    api_key: SecretStr = api_key_field("A Mailgun account API key or a sending key for the domain.")
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
    base_url: BaseUrl | None = base_url_field(None, "Overrides the region's API host when set.")
    webhook_signing_key: SecretStr | None = optional_field(
        "HTTP webhook signing key",
        "From Mailgun's Webhooks page; POST /callbacks/mailgun accepts only events signed with it.",
    )

    @property
    def api_base_url(self) -> str:
        return (self.base_url or REGION_BASE_URLS[self.region]).rstrip("/")


error_reason = message_reason("message")


@register
class MailgunProvider(EmailProvider[MailgunConfig]):
    name = "mailgun"
    display_name = "Mailgun"
    docs_url = (
        "https://documentation.mailgun.com/docs/mailgun/api-reference/openapi-final/tag/Messages/"
    )

    def send_email(self, delivery: Delivery, parts: EmailParts) -> SendResult:
        config = self.config
        fields = {
            "from": config.sender,
            "to": parts.to,
            "subject": parts.subject,
            **present({"html": parts.html, "text": parts.text, "h:Reply-To": config.reply_to}),
            **{f"h:{header}": value for header, value in delivery.headers.items()},
            "v:tidings_message_id": delivery.message_id,
        }
        response = post(
            self.http,
            "Mailgun",
            f"{config.api_base_url}/v3/{config.domain}/messages",
            error_reason,
            # `(None, value)` makes httpx send a plain multipart form field, as Mailgun documents.
            files=[(key, (None, value)) for key, value in fields.items()],
            auth=("api", config.api_key.get_secret_value()),
        )
        return accepted_reply(response, "id")

    @classmethod
    def parse_status_callback(cls, callback: StatusCallback) -> list[StatusReport]:
        """The one event a webhook posts."""
        event = json_object(callback, SHAPE).get("event-data")
        if not isinstance(event, dict):
            raise BadRequest(
                f"event-data is missing. {SHAPE}.", code="invalid_request", field="event-data"
            )
        return [_report(event)]

    @classmethod
    def verify_status_callback(
        cls, config: ProviderConfig | None, callback: StatusCallback
    ) -> None:
        """`signature` must verify with the config's webhook signing key (401 otherwise)."""
        key = configured_secret(
            config,
            "webhook_signing_key",
            "Mailgun",
            "Copy the HTTP webhook signing key from Mailgun's Webhooks page into the provider "
            "config.",
        )
        signature = json_object(callback, SHAPE).get("signature")
        fields = signature if isinstance(signature, dict) else {}
        if not verify_signature(
            key,
            text(fields.get("timestamp")),
            text(fields.get("token")),
            text(fields.get("signature")),
        ):
            raise invalid_signature(
                "The event's signature is missing or does not verify with the Mailgun "
                "provider's webhook_signing_key. Copy the current HTTP webhook signing key "
                "from Mailgun's Webhooks page into the provider config.",
                "signature",
            )


def verify_signature(signing_key: str, timestamp: str, token: str, signature: str) -> bool:
    """Whether `signature` is the hex HMAC-SHA256 of timestamp + token under the key."""
    if not timestamp or not token or not signature:
        return False
    expected = hmac.new(
        signing_key.encode(), (timestamp + token).encode(), hashlib.sha256
    ).hexdigest()
    return compare(expected, signature.strip().lower())


def _report(event: dict[str, Any]) -> StatusReport:
    kind = text(event.get("event"))
    variables = event.get("user-variables")
    tidings_id = variables.get("tidings_message_id") if isinstance(variables, dict) else None
    message = event.get("message")
    headers = message.get("headers") if isinstance(message, dict) else None
    message_id = text(headers.get("message-id")) if isinstance(headers, dict) else ""
    found: dict[str, Any] = {
        # Mailgun answers the send with the id in angle brackets, as it was recorded.
        "provider_message_id": f"<{message_id.strip('<>')}>" if message_id else None,
        "tidings_message_id": nonempty_str(tidings_id),
        "status": kind,
        "event_id": text(event.get("id")) or None,
        "raw": event,
    }
    status = event.get("delivery-status")
    delivery_status = status if isinstance(status, dict) else {}
    words = text(delivery_status.get("message")) or text(delivery_status.get("description"))
    if kind == "delivered":
        return StatusReport(
            ReportOutcome.DELIVERED,
            detail=labelled("Mailgun delivered", words),
            **found,
        )
    if kind == "opened":
        info = event.get("client-info")
        agent = text(info.get("user-agent")) if isinstance(info, dict) else ""
        return StatusReport(
            ReportOutcome.OPENED,
            detail=labelled("Mailgun opened", agent),
            facts={"user_agent": agent},
            **found,
        )
    if kind == "clicked":
        url = text(event.get("url"))
        return StatusReport(
            ReportOutcome.CLICKED, detail=f"Mailgun clicked: {url}", facts={"url": url}, **found
        )
    if kind == "complained":
        return StatusReport(
            ReportOutcome.COMPLAINED,
            detail="Mailgun complained: the recipient reported the message as spam",
            facts={"feedback_type": "abuse"},
            **found,
        )
    if kind == "failed":
        return _failure(event, delivery_status, words, found)
    return StatusReport(ReportOutcome.IGNORED)


def _failure(
    event: dict[str, Any], delivery_status: dict[str, Any], words: str, found: dict[str, Any]
) -> StatusReport:
    severity = text(event.get("severity"))
    reason = text(event.get("reason"))
    code = text(delivery_status.get("code"))
    detail = f"Mailgun failed ({severity or 'permanent'}, {reason or 'no reason'}"
    detail += f", {code}): " if code else "): "
    detail += words or "no message given"
    if severity == "temporary":
        return StatusReport(ReportOutcome.INTERMEDIATE, detail=detail, **found)
    if reason in NOT_TRIED:
        return StatusReport(ReportOutcome.UNDELIVERABLE, detail=detail, **found)
    return StatusReport(
        ReportOutcome.BOUNCED,
        detail=detail,
        bounce=Bounce.HARD if reason in ("bounce", "") else Bounce.SOFT,
        facts={"diagnostic": words},
        **found,
    )
