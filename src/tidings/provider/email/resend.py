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

Status callbacks come from Resend's webhooks
(https://resend.com/docs/dashboard/webhooks/event-types), a JSON object of `type`,
`created_at` and `data`:
- `email.delivered` → delivered; `email.opened` → opened; `email.clicked` → clicked (with
  `data.click.link` and `userAgent`); `email.complained` → complained;
- `email.bounced` → bounced: `data.bounce.type` `Permanent` is hard, `Transient` and
  `Undetermined` soft, with `data.bounce.message` as the detail; `email.failed` →
  undeliverable; `email.delivery_delayed` → intermediate; `email.sent` and others are
  ignored;
- an event names its message by `data.email_id` (the `id` Resend answered when sending).
Resend signs webhooks through Svix (https://resend.com/docs/dashboard/webhooks/verify-webhooks-requests):
`svix-signature` holds `v1,<base64 HMAC-SHA256>` entries, each over
`<svix-id>.<svix-timestamp>.<body>` keyed with the base64 part of the `whsec_…` signing
secret (`webhook_secret`); the timestamp must be within five minutes of now.

Config: `api_key` (secret), `from_email`, `from_name`, `reply_to`, `base_url`,
`webhook_secret` (secret).
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from typing import Any

from pydantic import SecretStr

from tidings.errors import BadRequest
from tidings.kit.crypto import webhook_signature
from tidings.provider.base import (
    BaseUrl,
    Bounce,
    Delivery,
    ProviderConfig,
    ProviderError,
    ReportOutcome,
    SendResult,
    StatusCallback,
    StatusReport,
    optional_field,
)
from tidings.provider.callback import (
    compare,
    configured_secret,
    invalid_signature,
    json_object,
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

CONCURRENT_IDEMPOTENT_REQUESTS = "concurrent_idempotent_requests"
SHAPE = "Resend posts one JSON event per webhook, with its type and data"
# How far svix-timestamp may be from now, as Svix's own libraries allow.
TOLERANCE_SECONDS = 5 * 60
SIMPLE_OUTCOMES = {
    "email.delivered": ReportOutcome.DELIVERED,
    "email.opened": ReportOutcome.OPENED,
    "email.complained": ReportOutcome.COMPLAINED,
    "email.failed": ReportOutcome.UNDELIVERABLE,
    "email.delivery_delayed": ReportOutcome.INTERMEDIATE,
}


class ResendConfig(SenderConfig):
    api_key: SecretStr = api_key_field("A Resend API key with sending access.")
    base_url: BaseUrl = base_url_field("https://api.resend.com", "Resend's API endpoint.")
    webhook_secret: SecretStr | None = optional_field(
        "Webhook signing secret",
        "The whsec_… signing secret of the webhook in Resend; POST /callbacks/resend "
        "accepts only events signed with it.",
    )


error_reason = message_reason("message", "name", "{qualifier}: {message}")


def _still_in_progress(error: ProviderError) -> bool:
    """A 409 concurrent_idempotent_requests: the first request with this key is still running."""
    return error.status_code == 409 and CONCURRENT_IDEMPOTENT_REQUESTS in error.reason


@register
class ResendProvider(EmailProvider[ResendConfig]):
    name = "resend"
    display_name = "Resend"
    docs_url = "https://resend.com/docs/api-reference/emails/send-email"

    def send_email(self, delivery: Delivery, parts: EmailParts) -> SendResult:
        config = self.config
        body = {
            "from": config.sender,
            "to": [parts.to],
            "subject": parts.subject,
            # An absent `text` lets Resend derive the plain-text part from the HTML.
            **present(
                {
                    "html": parts.html,
                    "text": parts.text,
                    "reply_to": config.reply_to,
                    "headers": dict(delivery.headers),
                }
            ),
        }
        response = post(
            self.http,
            "Resend",
            f"{config.base_url.rstrip('/')}/emails",
            error_reason,
            retry_if=_still_in_progress,
            json=body,
            headers={
                "Authorization": f"Bearer {config.api_key.get_secret_value()}",
                "Idempotency-Key": delivery.idempotency_key,
            },
        )
        return accepted_reply(response, "id")

    @classmethod
    def parse_status_callback(cls, callback: StatusCallback) -> list[StatusReport]:
        """The one event a webhook posts."""
        return [_report(json_object(callback, SHAPE), callback.header("svix-id"))]

    @classmethod
    def verify_status_callback(
        cls, config: ProviderConfig | None, callback: StatusCallback
    ) -> None:
        """The Svix headers must verify with the config's webhook secret (401 otherwise)."""
        secret = configured_secret(
            config,
            "webhook_secret",
            "Resend",
            "Copy the webhook's signing secret (whsec_…) from Resend into the provider config.",
        )
        now = callback.now or datetime.now(UTC)
        if not verify_signature(
            secret,
            callback.header("svix-id") or "",
            callback.header("svix-timestamp") or "",
            callback.body,
            callback.header("svix-signature") or "",
            now.timestamp(),
        ):
            raise invalid_signature(
                "The svix-signature header is missing, too old, or does not verify with the "
                "Resend provider's webhook_secret. Copy the webhook's current signing secret "
                "from Resend into the provider config.",
                "svix-signature",
            )


def _secret_key(secret: str) -> bytes | None:
    try:
        return base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except binascii.Error:
        return None


def sign(secret: str, message_id: str, timestamp: str, body: bytes) -> str:
    """The Svix signature (base64 HMAC-SHA256 of `<id>.<timestamp>.<body>`) under a
    `whsec_…` secret."""
    return webhook_signature(_secret_key(secret) or b"", message_id, timestamp, body)


def verify_signature(
    secret: str, message_id: str, timestamp: str, body: bytes, header: str, now: float
) -> bool:
    """Whether any `v1,` entry of `svix-signature` signs the message, sent within
    `TOLERANCE_SECONDS` of `now`."""
    if not message_id or not timestamp or _secret_key(secret) is None:
        return False
    try:
        sent = int(timestamp)
    except ValueError:
        return False
    if abs(now - sent) > TOLERANCE_SECONDS:
        return False
    expected = sign(secret, message_id, timestamp, body)
    for entry in header.split():
        version, _, signature = entry.partition(",")
        if version == "v1" and compare(expected, signature):
            return True
    return False


def _report(event: dict[str, Any], svix_id: str | None) -> StatusReport:
    kind = text(event.get("type"))
    data = event.get("data")
    if not isinstance(data, dict):
        raise BadRequest(f"data is missing. {SHAPE}.", code="invalid_request", field="data")
    found: dict[str, Any] = {
        "provider_message_id": text(data.get("email_id")) or None,
        "status": kind,
        "event_id": svix_id or None,
        "raw": event,
    }
    if kind == "email.bounced":
        bounce = data.get("bounce") if isinstance(data.get("bounce"), dict) else {}
        assert isinstance(bounce, dict)
        bounce_type = text(bounce.get("type"))
        words = text(bounce.get("message"))
        sub_type = text(bounce.get("subType"))
        return StatusReport(
            ReportOutcome.BOUNCED,
            detail=f"Resend bounced ({bounce_type or 'no type'}"
            + (f", {sub_type}" if sub_type else "")
            + f"): {words or 'no message given'}",
            bounce=Bounce.HARD if bounce_type == "Permanent" else Bounce.SOFT,
            facts={"diagnostic": words},
            **found,
        )
    if kind == "email.clicked":
        click = data.get("click") if isinstance(data.get("click"), dict) else {}
        assert isinstance(click, dict)
        link = text(click.get("link"))
        return StatusReport(
            ReportOutcome.CLICKED,
            detail=f"Resend clicked: {link}",
            facts={"url": link, "user_agent": text(click.get("userAgent"))},
            **found,
        )
    outcome = SIMPLE_OUTCOMES.get(kind)
    if outcome is None:
        return StatusReport(ReportOutcome.IGNORED)
    detail = f"Resend {kind.removeprefix('email.').replace('_', ' ')}"
    failed = data.get("failed")
    if isinstance(failed, dict) and failed.get("reason"):
        detail += f": {failed['reason']}"
    facts = {"feedback_type": "abuse"} if outcome is ReportOutcome.COMPLAINED else {}
    return StatusReport(outcome, detail=detail, facts=facts, **found)
