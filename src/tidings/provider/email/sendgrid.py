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

Status callbacks come from the Event Webhook
(https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/event), a JSON array of
events:
- `delivered` → delivered; `open` → opened (with `useragent`); `click` → clicked (with
  `url`); `spamreport` → complained; `bounce` → bounced, hard for `type: bounce`, soft for
  `type: blocked`; `dropped` → undeliverable (SendGrid did not send it); `deferred` →
  intermediate (SendGrid is still trying);
- `processed`, `unsubscribe`, `group_*` and anything else are ignored: Tidings already
  recorded SENT;
- `sg_event_id` tells a repeated event from another open or click;
- an event names its message by `tidings_message_id` (the custom arg) and by the
  `sg_message_id` prefix before the first "." (the `X-Message-Id` recorded when sending).
With `event_webhook_public_key` set, the Signed Event Webhook's ECDSA signature (SHA-256 over
the timestamp header followed by the body) must verify with it; without one, events are
accepted unsigned.

Config: `api_key` (secret), `from_email`, `from_name`, `reply_to`, `base_url` (use
`https://api.eu.sendgrid.com` for EU regional subusers), `event_webhook_public_key`.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import httpx
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import SecretStr

from tidings.errors import BadRequest, Unauthorized
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
from tidings.provider.callback import invalid_signature, json_body, labelled
from tidings.provider.email.sender import EmailParts, EmailProvider, SenderConfig
from tidings.provider.http import api_key_field, base_url_field, json_field, post, present
from tidings.provider.registry import register

SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
EVENT_OUTCOMES = {
    "delivered": ReportOutcome.DELIVERED,
    "open": ReportOutcome.OPENED,
    "click": ReportOutcome.CLICKED,
    "spamreport": ReportOutcome.COMPLAINED,
    "bounce": ReportOutcome.BOUNCED,
    "dropped": ReportOutcome.UNDELIVERABLE,
    "deferred": ReportOutcome.INTERMEDIATE,
}


class SendGridConfig(SenderConfig):
    api_key: SecretStr = api_key_field("A SendGrid API key with the Mail Send permission.")
    base_url: BaseUrl = base_url_field(
        "https://api.sendgrid.com",
        "https://api.sendgrid.com, or https://api.eu.sendgrid.com for EU subusers.",
    )
    event_webhook_public_key: str | None = optional_field(
        "Event Webhook verification key",
        "The Signed Event Webhook public key from SendGrid's Event Webhook settings. When "
        "set, POST /callbacks/sendgrid accepts only events signed with it.",
        json_schema_extra={"multiline": True},
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
class SendGridProvider(EmailProvider[SendGridConfig]):
    name = "sendgrid"
    display_name = "SendGrid"
    docs_url = "https://www.twilio.com/docs/sendgrid/api-reference/mail-send/mail-send"

    def send_email(self, delivery: Delivery, parts: EmailParts) -> SendResult:
        config = self.config
        content = []
        if parts.text:
            content.append({"type": "text/plain", "value": parts.text})
        if parts.html:
            content.append({"type": "text/html", "value": parts.html})
        body = {
            "personalizations": [{"to": [{"email": parts.to}]}],
            "from": {"email": config.from_email, **present({"name": config.from_name})},
            "subject": parts.subject,
            "content": content,
            "custom_args": {"tidings_message_id": delivery.message_id},
            **present(
                {
                    "reply_to": {"email": config.reply_to} if config.reply_to else None,
                    "headers": dict(delivery.headers),
                }
            ),
        }
        response = post(
            self.http,
            "SendGrid",
            f"{config.base_url.rstrip('/')}/v3/mail/send",
            error_reason,
            json=body,
            headers={"Authorization": f"Bearer {config.api_key.get_secret_value()}"},
        )
        message_id = response.headers.get("x-message-id") or None
        return SendResult(
            provider_message_id=message_id,
            response_excerpt=f"HTTP {response.status_code}; X-Message-Id: {message_id}",
        )

    @classmethod
    def parse_status_callback(cls, callback: StatusCallback) -> list[StatusReport]:
        """One report per Event Webhook event."""
        return [_report(event) for event in _events(callback)]

    @classmethod
    def verify_status_callback(
        cls, config: ProviderConfig | None, callback: StatusCallback
    ) -> None:
        """The Signed Event Webhook headers must verify when the config has a verification
        key (401 otherwise)."""
        key = verification_key(config)
        if key is None:
            return
        signature = callback.header(SIGNATURE_HEADER)
        timestamp = callback.header(TIMESTAMP_HEADER)
        if not signature or not timestamp:
            raise Unauthorized(
                f"Missing {SIGNATURE_HEADER} or {TIMESTAMP_HEADER}: the SendGrid provider has a "
                "verification key, so events must come from SendGrid's Signed Event Webhook. "
                "Turn on signing in SendGrid's Event Webhook settings.",
                code="missing_signature",
                field=SIGNATURE_HEADER,
            )
        if not verify_signature(key, callback.body, signature, timestamp):
            raise invalid_signature(
                f"The {SIGNATURE_HEADER} header does not verify with the SendGrid provider's "
                "verification key. Copy the current key from SendGrid's Event Webhook settings "
                "into the provider config.",
                SIGNATURE_HEADER,
            )


# Event Webhook


def _events(callback: StatusCallback) -> list[Any]:
    events = json_body(callback, "SendGrid's Event Webhook posts a JSON array of events")
    if not isinstance(events, list):
        raise BadRequest(
            "The body must be a JSON array of events, as SendGrid's Event Webhook posts it.",
            code="invalid_request",
            field="body",
        )
    return events


def _report(event: Any) -> StatusReport:
    kind = event.get("event") if isinstance(event, dict) else None
    if not isinstance(kind, str) or kind not in EVENT_OUTCOMES:
        return StatusReport(ReportOutcome.IGNORED)
    outcome = EVENT_OUTCOMES[kind]
    facts = {
        ReportOutcome.OPENED: {"user_agent": _text(event, "useragent")},
        ReportOutcome.CLICKED: {"url": _text(event, "url")},
        ReportOutcome.COMPLAINED: {"feedback_type": "abuse"},
        ReportOutcome.BOUNCED: {"diagnostic": _text(event, "reason")},
    }.get(outcome, {})
    bounce = None
    if outcome is ReportOutcome.BOUNCED:
        bounce = Bounce.SOFT if _text(event, "type") == "blocked" else Bounce.HARD
    return StatusReport(
        outcome,
        provider_message_id=_sg_message_id(event),
        tidings_message_id=nonempty_str(event.get("tidings_message_id")),
        status=kind,
        detail=_detail(kind, event),
        raw=event,
        bounce=bounce,
        event_id=_text(event, "sg_event_id") or None,
        facts=facts,
    )


def _sg_message_id(event: dict[str, Any]) -> str | None:
    """The `X-Message-Id` SendGrid answered when sending: `sg_message_id` before its first "."."""
    value = event.get("sg_message_id")
    if not isinstance(value, str) or not value:
        return None
    return value.split(".", 1)[0] or None


def _text(event: dict[str, Any], key: str) -> str:
    value = event.get(key)
    return "" if value is None else str(value)


def _detail(kind: str, event: dict[str, Any]) -> str:
    if kind == "delivered":
        response = _text(event, "response")
        return labelled("SendGrid delivered", response)
    if kind == "open":
        agent = _text(event, "useragent")
        return labelled("SendGrid open", agent)
    if kind == "click":
        return f"SendGrid click: {_text(event, 'url')}"
    if kind == "spamreport":
        return "SendGrid spamreport: the recipient reported the message as spam"
    if kind == "deferred":
        detail = f"SendGrid deferred: {_text(event, 'response') or 'no response given'}"
        attempt = _text(event, "attempt")
        return f"{detail} (attempt {attempt})" if attempt else detail
    label = kind
    if kind == "bounce" and _text(event, "type") and _text(event, "type") != "bounce":
        label = f"bounce ({_text(event, 'type')})"
    reason = _text(event, "reason") or _text(event, "response") or "no reason given"
    status = _text(event, "status")
    return f"SendGrid {label}: {reason}" + (f" ({status})" if status else "")


# Signed Event Webhook


def verification_key(config: ProviderConfig | None) -> str | None:
    """The Signed Event Webhook verification key of a SendGrid config, when it has one."""
    if not isinstance(config, SendGridConfig):
        return None
    value = config.event_webhook_public_key
    return value if value and value.strip() else None


def _ec_public_key(text: str) -> ec.EllipticCurvePublicKey | None:
    """SendGrid's verification key: base64 DER (as SendGrid shows it) or a PEM block."""
    try:
        if "BEGIN PUBLIC KEY" in text:
            key = serialization.load_pem_public_key(text.strip().encode())
        else:
            key = serialization.load_der_public_key(
                base64.b64decode("".join(text.split()), validate=True)
            )
    except (ValueError, UnsupportedAlgorithm):
        return None
    return key if isinstance(key, ec.EllipticCurvePublicKey) else None


def verify_signature(public_key: str, body: bytes, signature: str, timestamp: str) -> bool:
    """Whether `signature` (base64 DER ECDSA) signs `timestamp` + `body` with SHA-256 under
    SendGrid's Signed Event Webhook verification key."""
    key = _ec_public_key(public_key)
    if key is None:
        return False
    try:
        decoded = base64.b64decode(signature.strip(), validate=True)
        key.verify(decoded, timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True
