"""SMS through Twilio Programmable Messaging.

Sends `content.text` to the recipient's `phone_number` by creating a Message resource:
`POST {base_url}/2010-04-01/Accounts/{AccountSid}/Messages.json`, HTTP Basic auth with the
Account SID and Auth Token, form-encoded `To`, `Body` and `From` and/or `MessagingServiceSid`
(plus `StatusCallback` when configured). Twilio answers 201 with the Message resource, whose
`sid` (`SM…`) is the provider message id; errors carry `{code, message, more_info, status}`.
Follows https://www.twilio.com/docs/messaging/api/message-resource and
https://www.twilio.com/docs/usage/twilios-response.

Config: `account_sid`, `auth_token` (secret), `sender` (Twilio `From`: an E.164 number, short
code or alphanumeric sender id) and/or `messaging_service_sid`, optional
`status_callback_url`, and `base_url`.

Twilio documents no idempotency key for creating messages, so `delivery.idempotency_key` is not
sent; a retry after a timeout may send a second SMS.

Status callbacks (https://www.twilio.com/docs/messaging/guides/track-outbound-message-status)
are form-encoded `MessageSid`, `MessageStatus`, `ErrorCode`, `ErrorMessage`, … posted to the
`StatusCallback` URL, which carries `tidings_message_id` in its query:
- `delivered` and `read` → delivered; `undelivered` and `failed` → undeliverable, with the
  `ErrorCode` (and `ErrorMessage` when given) in the detail;
- any other `MessageStatus` (`queued`, `sending`, `sent`, `accepted`, …) is intermediate.
`X-Twilio-Signature` must match the auth token (the HMAC-SHA1 of the URL and the sorted
parameters, as twilio-python's `RequestValidator` computes it) for the URL as requested or the
configured status callback URL, each with and without its default port.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

from pydantic import Field, SecretStr, model_validator

from tidings.errors import BadRequest, Forbidden
from tidings.provider.base import (
    BaseUrl,
    Delivery,
    ProviderConfig,
    ReportOutcome,
    SendResult,
    StatusCallback,
    StatusReport,
    optional_field,
)
from tidings.provider.callback import form_fields
from tidings.provider.http import accepted_reply, base_url_field, message_reason, post
from tidings.provider.registry import register
from tidings.provider.sms.base import SmsProvider

SIGNATURE_HEADER = "X-Twilio-Signature"
STATUS_OUTCOMES = {
    "delivered": ReportOutcome.DELIVERED,
    "read": ReportOutcome.DELIVERED,
    "undelivered": ReportOutcome.UNDELIVERABLE,
    "failed": ReportOutcome.UNDELIVERABLE,
}


class TwilioConfig(ProviderConfig):
    account_sid: str = Field(
        title="Account SID",
        description="The Twilio Account SID (starts with AC); the Basic-auth user name.",
        min_length=1,
    )
    auth_token: SecretStr = Field(
        title="Auth Token",
        description="The Twilio Auth Token; the Basic-auth password.",
    )
    sender: str | None = optional_field(
        "From",
        "The sender: a Twilio phone number in E.164 format, a short code or an "
        "alphanumeric sender ID. Required unless a Messaging Service SID is set.",
    )
    messaging_service_sid: str | None = optional_field(
        "Messaging Service SID",
        "Send through this Messaging Service (starts with MG), which picks the sender. "
        "Required unless From is set.",
    )
    status_callback_url: str | None = optional_field(
        "Status callback URL", "Twilio posts the message's delivery status changes to this URL."
    )
    base_url: BaseUrl = base_url_field("https://api.twilio.com", "Base URL of the Twilio REST API.")

    @model_validator(mode="after")
    def _needs_a_sender(self) -> TwilioConfig:
        if not self.sender and not self.messaging_service_sid:
            raise ValueError("set From (sender) or a Messaging Service SID")
        return self


_reason = message_reason("message", "code", "{message} (Twilio error {qualifier})")


@register
class TwilioProvider(SmsProvider[TwilioConfig]):
    name = "twilio"
    display_name = "Twilio SMS"
    docs_url = "https://www.twilio.com/docs/messaging/api/message-resource"
    vendor = "Twilio"

    def send_sms(self, delivery: Delivery, to: str, text: str) -> SendResult:
        config = self.config
        form: dict[str, Any] = {"To": to, "Body": text}
        if config.sender:
            form["From"] = config.sender
        if config.messaging_service_sid:
            form["MessagingServiceSid"] = config.messaging_service_sid
        if config.status_callback_url:
            # The message id lets a status callback that beats our own SENT commit (before the
            # Twilio sid is stored) still find its message.
            form["StatusCallback"] = _with_message_id(
                config.status_callback_url, delivery.message_id
            )

        url = (
            f"{config.base_url.rstrip('/')}/2010-04-01/Accounts/"
            f"{quote(config.account_sid, safe='')}/Messages.json"
        )
        auth = (config.account_sid, config.auth_token.get_secret_value())
        response = post(self.http, "Twilio", url, _reason, data=form, auth=auth)
        return accepted_reply(response, "sid")

    @classmethod
    def parse_status_callback(cls, callback: StatusCallback) -> list[StatusReport]:
        """The one status a callback reports."""
        values = dict(_form(callback.body))
        sid = values.get("MessageSid") or values.get("SmsSid")
        if not sid:
            raise BadRequest(
                "MessageSid is missing: Twilio status callbacks post it form-encoded with "
                "MessageStatus.",
                code="invalid_request",
                field="MessageSid",
            )
        status = values.get("MessageStatus") or values.get("SmsStatus") or ""
        return [
            StatusReport(
                STATUS_OUTCOMES.get(status, ReportOutcome.INTERMEDIATE),
                provider_message_id=sid,
                tidings_message_id=callback.query.get("tidings_message_id") or None,
                status=status or "unknown",
                detail=_detail(status, values),
                raw={name: value for name, value in values.items() if name != "Body"},
            )
        ]

    @classmethod
    def verify_status_callback(
        cls, config: ProviderConfig | None, callback: StatusCallback
    ) -> None:
        """`X-Twilio-Signature` must match the environment's auth token (403 otherwise)."""
        if not isinstance(config, TwilioConfig):
            raise Forbidden(
                "No Twilio provider is configured in the message's environment, so this "
                f"callback's {SIGNATURE_HEADER} cannot be checked. Configure Twilio with its "
                "auth token.",
                code="invalid_signature",
                field=SIGNATURE_HEADER,
            )
        urls = [callback.url]
        if config.status_callback_url:
            # The URL the provider gave Twilio when sending.
            message_id = callback.query.get("tidings_message_id")
            urls.append(_with_message_id(config.status_callback_url, message_id))
        signature = callback.header(SIGNATURE_HEADER)
        token = config.auth_token.get_secret_value()
        if not signature or not verify_signature(token, urls, _form(callback.body), signature):
            raise Forbidden(
                f"The {SIGNATURE_HEADER} header is missing or does not match this callback "
                "signed with the Twilio auth token of the message's environment. Behind a "
                "proxy, forward X-Forwarded-Proto and X-Forwarded-Host, or set the provider's "
                "status callback URL to the exact URL Twilio calls.",
                code="invalid_signature",
                field=SIGNATURE_HEADER,
            )


def _with_message_id(url: str, message_id: str | None) -> str:
    if not message_id:
        return url
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}{urlencode({'tidings_message_id': message_id})}"


# Status callbacks


def _form(body: bytes) -> list[tuple[str, str]]:
    return form_fields(body, "Twilio posts application/x-www-form-urlencoded")


def _detail(status: str, values: dict[str, str]) -> str:
    detail = f"Twilio {status or 'status'}"
    code = values.get("ErrorCode")
    message = values.get("ErrorMessage")
    if code:
        detail += f": error {code}"
        if message:
            detail += f" ({message})"
    elif message:
        detail += f": {message}"
    return detail


def compute_signature(auth_token: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    """X-Twilio-Signature: base64 HMAC-SHA1, keyed with the auth token, of the URL followed
    by every POST parameter as name + value, sorted by name (then value)."""
    data = url + "".join(name + value for name, value in sorted(params))
    digest = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def _port_variants(url: str) -> list[str]:
    # Twilio may sign the URL with or without the default port (twilio-python checks both).
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        return [url]
    if not parts.hostname:
        return [url]
    if port is not None:
        without = parts._replace(netloc=parts.netloc.rsplit(":", 1)[0])
        return [url, urlunsplit(without)]
    default = 443 if parts.scheme == "https" else 80
    return [url, urlunsplit(parts._replace(netloc=f"{parts.netloc}:{default}"))]


def verify_signature(
    auth_token: str, urls: Iterable[str], params: Sequence[tuple[str, str]], given: str
) -> bool:
    """Whether `given` matches the callback as Twilio signed it at any of `urls`."""
    encoded = given.strip().encode()
    for url in urls:
        for variant in _port_variants(url):
            expected = compute_signature(auth_token, variant, params).encode()
            if hmac.compare_digest(expected, encoded):
                return True
    return False
