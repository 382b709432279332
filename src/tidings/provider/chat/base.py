"""What every chat provider shares: where a message goes, and the text it sends."""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from tidings.provider.base import ConfigT, Delivery, PermanentProviderError, Provider, SendResult

TargetT = TypeVar("TargetT")


def rendered_text(delivery: Delivery, vendor: str) -> str:
    """The chat message's rendered `text`; one that is missing or blank is a permanent error."""
    text = delivery.content.get("text")
    if not isinstance(text, str) or not text.strip():
        raise PermanentProviderError(f"{vendor}: the rendered message has no text")
    return text


@dataclass(frozen=True, slots=True)
class IncomingWebhook:
    """A channel's incoming webhook: its URL is its credential."""

    url: str


class ChatProvider(Provider[ConfigT], Generic[ConfigT, TargetT]):
    """Base of the chat providers: a subclass names its config and target types
    (`ChatProvider[SlackConfig, SlackTarget]`), reads targets, and sends text to one.

    A recipient's own chat address is the object under `address_key` (`slack`, `discord`,
    `ms_teams`). A recipient without one is sent to the configured default. An object this
    provider cannot use never falls back to the default, so a message meant for one person
    never lands in a shared channel.

    A send's own errors begin with the provider's `display_name`, the vendor's name.
    """

    channel = "chat"
    address_key: ClassVar[str]
    no_address: ClassVar[str]
    """The permanent error of a send to a recipient without a target, after the vendor's
    name: what was looked for."""

    def address(self, recipient: dict[str, Any]) -> TargetT | None:
        own = recipient.get(self.address_key)
        if not own:
            return self.default_target()
        if not isinstance(own, dict):
            return None
        return self.own_target(own)

    @abstractmethod
    def default_target(self) -> TargetT | None:
        """The configured target of recipients without a chat address of their own."""

    @abstractmethod
    def own_target(self, address: dict[str, Any]) -> TargetT | None:
        """The target a recipient's own chat address names, or None when it names none this
        provider can use."""

    def send(self, delivery: Delivery) -> SendResult:
        target = self.address(delivery.recipient)
        if target is None:
            raise PermanentProviderError(f"{self.display_name}: {self.no_address}")
        return self.send_text(target, rendered_text(delivery, self.display_name), delivery)

    @abstractmethod
    def send_text(self, target: TargetT, text: str, delivery: Delivery) -> SendResult:
        """Post `text` to `target`, or raise RetryableProviderError / PermanentProviderError."""
