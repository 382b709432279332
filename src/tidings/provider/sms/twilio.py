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
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

import httpx
from pydantic import ConfigDict, Field, SecretStr, model_validator

from tidings.provider.base import (
    BaseUrl,
    Delivery,
    PermanentProviderError,
    Provider,
    ProviderConfig,
    SendResult,
)
from tidings.provider.http import excerpt, json_field, request
from tidings.provider.registry import register

TIMEOUT_SECONDS = 10.0


class TwilioConfig(ProviderConfig):
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    account_sid: str = Field(
        title="Account SID",
        description="The Twilio Account SID (starts with AC); the Basic-auth user name.",
        min_length=1,
    )
    auth_token: SecretStr = Field(
        title="Auth Token",
        description="The Twilio Auth Token; the Basic-auth password.",
    )
    sender: str | None = Field(
        default=None,
        title="From",
        description=(
            "The sender: a Twilio phone number in E.164 format, a short code or an "
            "alphanumeric sender ID. Required unless a Messaging Service SID is set."
        ),
    )
    messaging_service_sid: str | None = Field(
        default=None,
        title="Messaging Service SID",
        description=(
            "Send through this Messaging Service (starts with MG), which picks the sender. "
            "Required unless From is set."
        ),
    )
    status_callback_url: str | None = Field(
        default=None,
        title="Status callback URL",
        description="Twilio posts the message's delivery status changes to this URL.",
    )
    base_url: BaseUrl = Field(
        default="https://api.twilio.com",
        title="API base URL",
        description="Base URL of the Twilio REST API.",
    )

    @model_validator(mode="after")
    def _needs_a_sender(self) -> TwilioConfig:
        if not self.sender and not self.messaging_service_sid:
            raise ValueError("set From (sender) or a Messaging Service SID")
        return self


def _reason(response: httpx.Response) -> str | None:
    message = json_field(response, "message")
    if not message:
        return None
    code = json_field(response, "code")
    return f"{message} (Twilio error {code})" if code else str(message)


@register
class TwilioProvider(Provider):
    name = "twilio"
    channel = "sms"
    display_name = "Twilio SMS"
    docs_url = "https://www.twilio.com/docs/messaging/api/message-resource"
    config_model = TwilioConfig

    def send(self, delivery: Delivery) -> SendResult:
        config = self.config
        assert isinstance(config, TwilioConfig)
        to = str(delivery.recipient.get("phone_number") or "").strip()
        if not to:
            raise PermanentProviderError("Twilio: the recipient has no phone_number")
        text = delivery.content.get("text")
        if not text:
            raise PermanentProviderError("Twilio: the message has no text to send")

        form: dict[str, Any] = {"To": to, "Body": str(text)}
        if config.sender:
            form["From"] = config.sender
        if config.messaging_service_sid:
            form["MessagingServiceSid"] = config.messaging_service_sid
        if config.status_callback_url:
            # The message id lets a status callback that beats our own SENT commit (before the
            # Twilio sid is stored) still find its message.
            separator = "&" if "?" in config.status_callback_url else "?"
            form["StatusCallback"] = (
                f"{config.status_callback_url}{separator}"
                f"{urlencode({'tidings_message_id': delivery.message_id})}"
            )

        url = (
            f"{config.base_url.rstrip('/')}/2010-04-01/Accounts/"
            f"{quote(config.account_sid, safe='')}/Messages.json"
        )
        auth = (config.account_sid, config.auth_token.get_secret_value())
        response = request(
            "Twilio",
            lambda: self.http.post(url, data=form, auth=auth, timeout=TIMEOUT_SECONDS),
            _reason,
        )
        try:
            sid = json_field(response, "sid")
        except ValueError:
            sid = None
        return SendResult(
            provider_message_id=str(sid) if sid else None, response_excerpt=excerpt(response)
        )
