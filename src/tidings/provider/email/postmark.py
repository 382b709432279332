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

Status callbacks come from Postmark's webhooks
(https://postmarkapp.com/developer/webhooks/webhooks-overview), one JSON record per request,
told apart by `RecordType`:
- `Delivery` → delivered; `Open` → opened (with `UserAgent`); `Click` → clicked (with
  `OriginalLink`); `SpamComplaint` → complained;
- `Bounce` by its `Type`
  (https://postmarkapp.com/developer/api/bounce-api#bounce-types): `HardBounce`,
  `BadEmailAddress` and `ManuallyDeactivated` → a hard bounce; `SoftBounce`, `DnsError`,
  `SpamNotification`, `Blocked`, `VirusNotification`, `DMARCPolicy`, `SMTPApiError` and
  `Unknown` → a soft bounce; `Transient` (Postmark is still trying) → intermediate; a
  `SpamComplaint` type → complained; the rest (auto-responders, subscribe requests, …) are
  not about delivery and are ignored;
- a record names its message by `Metadata.tidings_message_id` and by `MessageID`.
Postmark authenticates webhooks with basic auth in the webhook URL
(https://postmarkapp.com/developer/webhooks/webhooks-overview#protecting-your-webhook): the
credentials must match `webhook_username` and `webhook_password`.

Config: `server_token` (secret), `from_email`, `from_name`, `reply_to`, `message_stream`,
`base_url`, `webhook_username`, `webhook_password` (secret).
"""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import Field, SecretStr

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
from tidings.provider.callback import check_basic_auth, json_object, labelled, text
from tidings.provider.email.sender import EmailParts, EmailProvider, SenderConfig, header_list
from tidings.provider.http import (
    accepted_reply,
    base_url_field,
    json_field,
    post,
    present,
    refused,
    reply_field,
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
    base_url: BaseUrl = base_url_field("https://api.postmarkapp.com", "Postmark's API endpoint.")
    webhook_username: str | None = optional_field(
        "Webhook user name",
        "The basic-auth user name in the webhook URL set in Postmark "
        "(https://USER:PASSWORD@host/callbacks/postmark).",
    )
    webhook_password: SecretStr | None = optional_field(
        "Webhook password", "The basic-auth password in that webhook URL."
    )


HARD_BOUNCES = frozenset({"HardBounce", "BadEmailAddress", "ManuallyDeactivated"})
SOFT_BOUNCES = frozenset(
    {
        "SoftBounce",
        "DnsError",
        "SpamNotification",
        "Blocked",
        "VirusNotification",
        "DMARCPolicy",
        "SMTPApiError",
        "Unknown",
    }
)
SHAPE = "Postmark posts one JSON record per webhook, with its RecordType"


def error_reason(response: httpx.Response) -> str | None:
    """Postmark's `Message`, with its `ErrorCode`."""
    message = json_field(response, "Message")
    if not message:
        return None
    code = json_field(response, "ErrorCode")
    return f"{message} (ErrorCode {code})" if code is not None else str(message)


@register
class PostmarkProvider(EmailProvider[PostmarkConfig]):
    name = "postmark"
    display_name = "Postmark"
    docs_url = "https://postmarkapp.com/developer/api/email-api"

    def send_email(self, delivery: Delivery, parts: EmailParts) -> SendResult:
        config = self.config
        body = {
            "From": config.sender,
            "To": parts.to,
            "Subject": parts.subject,
            "MessageStream": config.message_stream,
            "Metadata": {"tidings_message_id": delivery.message_id},
            **present(
                {
                    "HtmlBody": parts.html,
                    "TextBody": parts.text,
                    "ReplyTo": config.reply_to,
                    "Headers": header_list(delivery.headers),
                }
            ),
        }
        response = post(
            self.http,
            "Postmark",
            f"{config.base_url.rstrip('/')}/email",
            error_reason,
            json=body,
            headers={
                "Accept": "application/json",
                "X-Postmark-Server-Token": config.server_token.get_secret_value(),
            },
        )
        if reply_field(response, "ErrorCode") not in (None, 0):
            raise refused(
                f"Postmark answered {response.status_code}: {error_reason(response)}",
                response,
                retryable=False,
            )
        return accepted_reply(response, "MessageID")

    @classmethod
    def parse_status_callback(cls, callback: StatusCallback) -> list[StatusReport]:
        """The one record a webhook posts."""
        return [_report(json_object(callback, SHAPE))]

    @classmethod
    def verify_status_callback(
        cls, config: ProviderConfig | None, callback: StatusCallback
    ) -> None:
        """The webhook URL's basic-auth credentials must match the config's (401 otherwise)."""
        postmark = config if isinstance(config, PostmarkConfig) else None
        check_basic_auth(
            callback,
            "Postmark",
            postmark.webhook_username if postmark else None,
            postmark.webhook_password if postmark else None,
        )


def _report(record: dict[str, Any]) -> StatusReport:
    kind = text(record.get("RecordType"))
    metadata = record.get("Metadata")
    tidings_id = metadata.get("tidings_message_id") if isinstance(metadata, dict) else None
    found: dict[str, Any] = {
        "provider_message_id": text(record.get("MessageID")) or None,
        "tidings_message_id": nonempty_str(tidings_id),
        "status": kind,
        "raw": {key: value for key, value in record.items() if key != "Content"},
    }
    if kind == "Delivery":
        detail = text(record.get("Details"))
        return StatusReport(
            ReportOutcome.DELIVERED,
            detail=labelled("Postmark delivered", detail),
            **found,
        )
    if kind == "Open":
        agent = text(record.get("UserAgent"))
        return StatusReport(
            ReportOutcome.OPENED,
            detail=labelled("Postmark open", agent),
            event_id=f"open:{text(record.get('ReceivedAt'))}",
            facts={"user_agent": agent},
            **found,
        )
    if kind == "Click":
        link = text(record.get("OriginalLink"))
        return StatusReport(
            ReportOutcome.CLICKED,
            detail=f"Postmark click: {link}",
            event_id=f"click:{text(record.get('ReceivedAt'))}:{link}",
            facts={"url": link, "user_agent": text(record.get("UserAgent"))},
            **found,
        )
    if kind in ("Bounce", "SpamComplaint"):
        return _bounce(record, found)
    return StatusReport(ReportOutcome.IGNORED)


def _bounce(record: dict[str, Any], found: dict[str, Any]) -> StatusReport:
    """A Bounce or SpamComplaint record, by its `Type`."""
    bounce_type = text(record.get("Type"))
    words = text(record.get("Details")) or text(record.get("Description"))
    detail = f"Postmark {bounce_type or record.get('RecordType')}: {words or 'no details'}"
    event_id = text(record.get("ID")) or None
    if bounce_type == "SpamComplaint" or record.get("RecordType") == "SpamComplaint":
        return StatusReport(
            ReportOutcome.COMPLAINED,
            detail=detail,
            event_id=event_id,
            facts={"feedback_type": "abuse"},
            **found,
        )
    if bounce_type == "Transient":
        return StatusReport(ReportOutcome.INTERMEDIATE, detail=detail, **found)
    if bounce_type in HARD_BOUNCES or bounce_type in SOFT_BOUNCES:
        bounce = Bounce.HARD if bounce_type in HARD_BOUNCES else Bounce.SOFT
        return StatusReport(
            ReportOutcome.BOUNCED,
            detail=detail,
            bounce=bounce,
            event_id=event_id,
            facts={"diagnostic": words},
            **found,
        )
    return StatusReport(ReportOutcome.IGNORED)
