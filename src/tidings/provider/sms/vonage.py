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

Delivery receipts (https://developer.vonage.com/en/messaging/sms/guides/delivery-receipts)
come to the `callback` URL (or the account's webhook) as query parameters (GET), a form, or
JSON (POST-JSON), with `messageId`, `status`, `err-code`, `client-ref`, `msisdn`, `scts`,
`message-timestamp`:
- `delivered` → delivered; `failed`, `rejected` and `expired` → undeliverable, with the
  `err-code` (https://developer.vonage.com/en/messaging/sms/guides/delivery-receipts#dlr-error-codes);
  `accepted`, `buffered`, `unknown` → intermediate;
- a receipt names its message by `client-ref` (the Tidings message id) and `messageId` (each
  part of a long SMS has its own; the first is the one recorded).
Signed receipts (https://developer.vonage.com/en/getting-started/concepts/signing-messages):
with `signature_secret` set, `sig` must verify: the parameters but `sig`, sorted by name,
each as `&name=value` (`&` and `=` in values replaced by `_`), hashed with the account's
signature method: `md5hash` (MD5 of that text followed by the secret, Vonage's default) or
an HMAC (`md5`, `sha1`, `sha256`, `sha512`) keyed with the secret. Without it, receipts are
accepted unsigned (Vonage signs them only once support turns signing on).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Any, Literal

import httpx
from pydantic import Field, SecretStr

from tidings.errors import BadRequest
from tidings.provider.base import (
    BaseUrl,
    Delivery,
    PermanentProviderError,
    ProviderConfig,
    ReportOutcome,
    SendResult,
    StatusCallback,
    StatusReport,
    optional_field,
)
from tidings.provider.callback import compare, form_fields, invalid_signature, json_body, text
from tidings.provider.http import (
    accepted,
    base_url_field,
    json_field,
    post,
    refused,
    reply_field,
)
from tidings.provider.registry import register
from tidings.provider.sms.base import SmsProvider, sms_number

STATUS_OUTCOMES = {
    "delivered": ReportOutcome.DELIVERED,
    "failed": ReportOutcome.UNDELIVERABLE,
    "rejected": ReportOutcome.UNDELIVERABLE,
    "expired": ReportOutcome.UNDELIVERABLE,
}
SHAPE = "Vonage sends a delivery receipt as query parameters, a form, or a JSON object"
SignatureMethod = Literal["md5hash", "md5", "sha1", "sha256", "sha512"]

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
    callback_url: str | None = optional_field(
        "Delivery receipt URL",
        "Vonage posts delivery receipts for these messages to this URL (at most 100 "
        "characters), overriding the webhook set in the Dashboard.",
        max_length=100,
    )
    base_url: BaseUrl = base_url_field("https://rest.nexmo.com", "Base URL of the Vonage SMS API.")
    signature_secret: SecretStr | None = optional_field(
        "Signature secret",
        "The account's signature secret (API settings in the Vonage Dashboard): when "
        "set, delivery receipts must carry a valid `sig`.",
    )
    signature_method: SignatureMethod = Field(
        default="md5hash",
        title="Signature method",
        description="The signature method chosen in the Dashboard: md5hash, md5, sha1, "
        "sha256 or sha512 (the last four are HMACs).",
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
class VonageProvider(SmsProvider[VonageConfig]):
    name = "vonage"
    display_name = "Vonage SMS"
    docs_url = "https://developer.vonage.com/en/messaging/sms/overview"
    vendor = "Vonage"

    def recipient_number(self, delivery: Delivery) -> str:
        """The recipient's `phone_number` as E.164 digits without the +."""
        to = international_digits(sms_number(delivery, self.vendor))
        if to is None:
            raise PermanentProviderError(
                "Vonage: the recipient's phone_number is not an international number "
                "(E.164, 7 to 15 digits with the country code)"
            )
        return to

    def send_sms(self, delivery: Delivery, to: str, text: str) -> SendResult:
        config = self.config
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
        response = post(
            self.http, "Vonage", url, _reason, data=form, headers={"Accept": "application/json"}
        )
        return accepted(response, _accepted_parts(response)[0].get("message-id"))

    @classmethod
    def parse_status_callback(cls, callback: StatusCallback) -> list[StatusReport]:
        """The one receipt a request carries."""
        values = _receipt(callback)
        message_id = values.get("messageId") or values.get("message-id")
        if not message_id:
            raise BadRequest(
                f"messageId is missing. {SHAPE}, with messageId and status.",
                code="invalid_request",
                field="messageId",
            )
        status = values.get("status", "")
        code = values.get("err-code", "")
        detail = f"Vonage {status or 'status'}"
        if code and code != "0":
            detail += f": err-code {code}"
        return [
            StatusReport(
                STATUS_OUTCOMES.get(status, ReportOutcome.INTERMEDIATE),
                provider_message_id=message_id,
                tidings_message_id=values.get("client-ref") or None,
                status=status or "unknown",
                detail=detail,
                raw=values,
            )
        ]

    @classmethod
    def verify_status_callback(
        cls, config: ProviderConfig | None, callback: StatusCallback
    ) -> None:
        """With a signature secret configured, `sig` must verify (401 otherwise)."""
        if not isinstance(config, VonageConfig) or config.signature_secret is None:
            return
        values = _receipt(callback)
        given = values.pop("sig", "")
        secret = config.signature_secret.get_secret_value()
        if not given or not compare(
            signature(secret, config.signature_method, values), given.lower()
        ):
            raise invalid_signature(
                "The receipt's sig is missing or does not verify with the Vonage provider's "
                "signature_secret and signature_method. Copy them from the Vonage "
                "Dashboard's API settings.",
                "sig",
            )


def signature(secret: str, method: SignatureMethod, params: dict[str, str]) -> str:
    """A Vonage SMS API signature (lower-case hex) of `params`, which must not hold `sig`."""
    signed = "".join(
        f"&{name}={params[name].replace('&', '_').replace('=', '_')}" for name in sorted(params)
    ).encode()
    if method == "md5hash":
        return hashlib.md5(signed + secret.encode(), usedforsecurity=False).hexdigest()
    return hmac.new(secret.encode(), signed, method).hexdigest()


def _receipt(callback: StatusCallback) -> dict[str, str]:
    """The receipt's fields, from a JSON body, a form body, or the query (GET)."""
    stripped = callback.body.strip()
    if stripped.startswith(b"{"):
        body = json_body(callback, SHAPE)
        if not isinstance(body, dict):
            raise BadRequest(f"{SHAPE}.", code="invalid_request", field="body")
        return {name: text(value) for name, value in body.items()}
    if stripped:
        return dict(form_fields(stripped, SHAPE))
    return dict(callback.query)


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
