"""The inbox channel's provider: Tidings itself.

Configure it (`PUT /providers/inbox` with `{"config": {}}`) to turn the inbox channel on. A
message routed to it is stored for the user (`tidings.inbox`), read through the inbox API with
a per-user token, and streamed to open clients over server-sent events. The delivery pipeline
stores the message in the same database, so `send` is never called with HTTP.
"""

from __future__ import annotations

from tidings.provider.base import (
    Delivery,
    PermanentProviderError,
    Provider,
    ProviderConfig,
    SendResult,
)
from tidings.provider.registry import register


class InboxConfig(ProviderConfig):
    pass


@register
class InboxProvider(Provider[InboxConfig]):
    name = "inbox"
    channel = "inbox"
    display_name = "Tidings Inbox"

    def send(self, delivery: Delivery) -> SendResult:
        raise PermanentProviderError(
            "inbox messages are stored by the delivery pipeline, not sent through a vendor"
        )
