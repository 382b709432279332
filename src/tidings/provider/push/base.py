"""What every push provider shares: the recipient's device tokens and the notification."""

from __future__ import annotations

from abc import abstractmethod
from typing import Any, ClassVar

from tidings.provider.base import ConfigT, Delivery, PermanentProviderError, Provider, SendResult


def push_tokens(values: list[Any]) -> list[str]:
    """The non-empty string push tokens among `values`, each once, in order."""
    return list(dict.fromkeys(str(token) for token in values if isinstance(token, str) and token))


def push_notification(delivery: Delivery) -> dict[str, str]:
    """The push's rendered `title` and `body`, those that are set, as text."""
    return {
        key: str(delivery.content[key])
        for key in ("title", "body")
        if delivery.content.get(key) is not None
    }


class PushProvider(Provider[ConfigT]):
    """Base of the push providers (`PushProvider[FcmConfig]`): `address` reads the
    recipient's device tokens; a send to a recipient without any is refused before the
    vendor is called; `send_push` sends to the tokens."""

    channel = "push"
    no_tokens: ClassVar[str]
    """The permanent error of a send to a recipient without tokens, naming where they were
    looked for."""

    @abstractmethod
    def address(self, recipient: dict[str, Any]) -> list[str]:
        """The recipient's device tokens for this vendor, each once."""

    def send(self, delivery: Delivery) -> SendResult:
        tokens = self.address(delivery.recipient)
        if not tokens:
            raise PermanentProviderError(self.no_tokens)
        return self.send_push(delivery, tokens)

    @abstractmethod
    def send_push(self, delivery: Delivery, tokens: list[str]) -> SendResult:
        """Send the notification to `tokens`, or raise RetryableProviderError /
        PermanentProviderError."""
