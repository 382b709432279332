"""SMS through the Vonage (formerly Nexmo) SMS API.

Sends `content.text` to the recipient's `phone_number` with `POST {base_url}/sms/json`,
form-encoded `api_key`, `api_secret`, `from`, `to`, `text` and `type` (`unicode` when the text
does not fit the GSM 03.38 alphabet, as the API reference asks), `client-ref` (the Tidings
message id, echoed in delivery receipts) and `callback` when configured. `to` is sent as
digits only, E.164 without the leading `+`.

Vonage answers HTTP 200 even when it refuses a message: the body is
`{"message-count": "1", "messages": [{"status": "0", "message-id": …}]}`, and any status other
than "0" is an error with `error-text`. Statuses 1 (Throttled), 5 (Internal Error) and 10 (Too
Many Existing Binds, "back-off and retry") are retryable; the others are permanent. A long text
is split into several parts, each with its own entry; the first `message-id` is the provider
message id.

Follows the SMS API reference (Vonage's `sms.yml` OpenAPI spec, "Send an SMS"), the error list at
https://developer.vonage.com/en/api-errors/sms and the official Python SDK (`vonage_sms`).

Config: `api_key`, `api_secret` (secret), `sender` (`from`: a number or alphanumeric sender id),
optional `callback_url` for delivery receipts, and `base_url`.

The SMS API documents no idempotency key, so a retry after a timeout may send a second SMS.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
from pydantic import Field, SecretStr

from tidings.provider.base import (
    BaseUrl,
    Delivery,
    PermanentProviderError,
    Provider,
    ProviderConfig,
    SendResult,
    sms_number,
    sms_text,
)
from tidings.provider.http import (
    TIMEOUT_SECONDS,
    accepted,
    json_field,
    refused,
    reply_field,
    request,
)
from tidings.provider.registry import register

# Statuses the error table tells you to retry after a pause.
RETRYABLE_STATUSES = {"1", "5", "10"}

# GSM 03.38 default alphabet and its extension table (the escape character itself excluded).
GSM_CHARACTERS = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
    "\f^{}\\[~]|€"
)


class VonageConfig(ProviderConfig):
    api_key: str = Field(
        title="API key",
        description="The Vonage API key, from the Vonage API Dashboard.",
        min_length=1,
    )
    api_secret: SecretStr = Field(
        title="API secret",
        description="The Vonage API secret, from the Vonage API Dashboard.",
    )
    sender: str = Field(
        title="From",
        description=(
            "The name or number the SMS is sent from: a Vonage virtual number (E.164 "
            "without +) or an alphanumeric sender ID where the destination country allows it."
        ),
        min_length=1,
    )
    callback_url: str | None = Field(
        default=None,
        title="Delivery receipt URL",
        description=(
            "Vonage posts delivery receipts for these messages to this URL (at most 100 "
            "characters), overriding the webhook set in the Dashboard."
        ),
        max_length=100,
    )
    base_url: BaseUrl = Field(
        default="https://rest.nexmo.com",
        title="API base URL",
        description="Base URL of the Vonage SMS API.",
    )


def international_digits(phone_number: str) -> str | None:
    """The number as the SMS API wants it (E.164 digits without +), or None if it is not one."""
    digits = re.sub(r"[\s\-().]", "", phone_number)
    if digits.startswith("+"):
        digits = digits[1:]
    elif digits.startswith("00"):
        digits = digits[2:]
    return digits if re.fullmatch(r"\d{7,15}", digits) else None


def _reason(response: httpx.Response) -> str | None:
    text = json_field(response, "messages", 0, "error-text")
    if text:
        return str(text)
    # Vonage's generic API errors are RFC 7807 problem documents.
    title = json_field(response, "title")
    detail = json_field(response, "detail")
    return ": ".join(str(part) for part in (title, detail) if part) or None


@register
class VonageProvider(Provider[VonageConfig]):
    name = "vonage"
    channel = "sms"
    display_name = "Vonage SMS"
    docs_url = "https://developer.vonage.com/en/messaging/sms/overview"

    def send(self, delivery: Delivery) -> SendResult:
        config = self.config
        to = _recipient_number(delivery)
        text = sms_text(delivery, "Vonage")

        form: dict[str, Any] = {
            "api_key": config.api_key,
            "api_secret": config.api_secret.get_secret_value(),
            "from": config.sender,
            "to": to,
            "text": text,
            "type": "text" if set(text) <= GSM_CHARACTERS else "unicode",
            "client-ref": delivery.message_id[:100],
        }
        if config.callback_url:
            form["callback"] = config.callback_url

        url = f"{config.base_url.rstrip('/')}/sms/json"
        response = request(
            "Vonage",
            lambda: self.http.post(
                url, data=form, headers={"Accept": "application/json"}, timeout=TIMEOUT_SECONDS
            ),
            _reason,
        )
        return accepted(response, _accepted_parts(response)[0].get("message-id"))


def _recipient_number(delivery: Delivery) -> str:
    to = international_digits(sms_number(delivery, "Vonage"))
    if to is None:
        raise PermanentProviderError(
            "Vonage: the recipient's phone_number is not an international number "
            "(E.164, 7 to 15 digits with the country code)"
        )
    return to


def _accepted_parts(response: httpx.Response) -> list[Any]:
    """The reply's `messages`, one per SMS part, when Vonage accepted every part."""
    messages = reply_field(response, "messages")
    if not isinstance(messages, list) or not messages:
        raise refused("Vonage answered without a messages list", response, retryable=False)
    for part in messages:
        status = str(part.get("status", "")) if isinstance(part, dict) else ""
        if status == "0":
            continue
        error_text = part.get("error-text") if isinstance(part, dict) else None
        reason = f"Vonage refused the message: {error_text or 'no error text'} (status {status})"
        raise refused(reason, response, retryable=status in RETRYABLE_STATUSES)
    return messages
