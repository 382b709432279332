"""What every SMS provider shares: the number and the text, checked the same way before any
vendor is called."""

from __future__ import annotations

from abc import abstractmethod
from typing import ClassVar

from tidings.provider.base import ConfigT, Delivery, PermanentProviderError, Provider, SendResult


def sms_number(delivery: Delivery, vendor: str) -> str:
    """The SMS recipient's `phone_number`; a missing one is a permanent error."""
    number = str(delivery.recipient.get("phone_number") or "").strip()
    if not number:
        raise PermanentProviderError(f"{vendor}: the recipient has no phone_number")
    return number


def sms_text(delivery: Delivery, vendor: str) -> str:
    """The SMS's rendered `text`; a missing or empty one is a permanent error."""
    text = delivery.content.get("text")
    if not text:
        raise PermanentProviderError(f"{vendor}: the message has no text to send")
    return str(text)


class SmsProvider(Provider[ConfigT]):
    """Base of the SMS providers (`SmsProvider[TwilioConfig]`): a send without a phone number
    or a text is refused before the vendor is called; `send_sms` sends the text to the
    number."""

    channel = "sms"
    vendor: ClassVar[str]

    def send(self, delivery: Delivery) -> SendResult:
        to = self.recipient_number(delivery)
        return self.send_sms(delivery, to, sms_text(delivery, self.vendor))

    def recipient_number(self, delivery: Delivery) -> str:
        """The number to send to, written as the vendor takes it: by default the recipient's
        `phone_number` as given."""
        return sms_number(delivery, self.vendor)

    @abstractmethod
    def send_sms(self, delivery: Delivery, to: str, text: str) -> SendResult:
        """Send `text` to `to`, or raise RetryableProviderError / PermanentProviderError."""
