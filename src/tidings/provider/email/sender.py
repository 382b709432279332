"""What every email provider shares: the sender fields of its config and the message parts,
checked the same way before any vendor is called."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import formataddr
from typing import TypeVar

from pydantic import Field

from tidings.provider.base import (
    Delivery,
    PermanentProviderError,
    Provider,
    ProviderConfig,
    SendResult,
    optional_field,
)

EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+$"


class SenderConfig(ProviderConfig):
    """Base of the email providers' configs: who the email is from."""

    from_email: str = Field(
        title="From address",
        description="Sender address; the vendor must have it verified (domain or sender).",
        pattern=EMAIL_PATTERN,
    )
    from_name: str | None = optional_field("From name", "Display name shown with the sender.")
    reply_to: str | None = optional_field(
        "Reply-To address", "Where replies go, if not to the sender.", pattern=EMAIL_PATTERN
    )

    @property
    def sender(self) -> str:
        """The From address, with the display name when there is one."""
        return formataddr((self.from_name or "", self.from_email))


@dataclass(frozen=True, slots=True)
class EmailParts:
    to: str
    subject: str
    html: str
    text: str


def email_parts(delivery: Delivery) -> EmailParts:
    """The address and bodies of an email delivery; a permanent error when one is missing."""
    address = delivery.recipient.get("email")
    if not isinstance(address, str) or not address:
        raise PermanentProviderError("the recipient has no email address")
    html = str(delivery.content.get("html") or "")
    text = str(delivery.content.get("text") or "")
    if not html and not text:
        raise PermanentProviderError("the email has neither an HTML nor a text body")
    return EmailParts(address, str(delivery.content.get("subject") or ""), html, text)


def header_list(headers: Mapping[str, str]) -> list[dict[str, str]]:
    """The message's extra headers as a list of `{"Name", "Value"}` objects, the shape
    Postmark and Amazon SES take them in."""
    return [{"Name": name, "Value": value} for name, value in headers.items()]


SenderConfigT = TypeVar("SenderConfigT", bound=SenderConfig)


class EmailProvider(Provider[SenderConfigT]):
    """Base of the providers that send email through a vendor's API
    (`EmailProvider[PostmarkConfig]`): a send without an address or a body is refused before
    the vendor is called; `send_email` sends one whose parts are there."""

    channel = "email"

    def send(self, delivery: Delivery) -> SendResult:
        return self.send_email(delivery, email_parts(delivery))

    @abstractmethod
    def send_email(self, delivery: Delivery, parts: EmailParts) -> SendResult:
        """Send the checked `parts`, or raise RetryableProviderError / PermanentProviderError."""
