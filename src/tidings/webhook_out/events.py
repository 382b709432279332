"""The event types an endpoint can subscribe to, and the body each delivery carries.

A body is Standard Webhooks' shape, `{"type", "timestamp", "data"}`, serialized once when
the event happens and stored as sent: every attempt, retry and replay sends the same bytes
under the same `webhook-id`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from tidings.kit.ids import new_id
from tidings.kit.time import isoformat

MESSAGE_SENT = "message.sent"
MESSAGE_DELIVERED = "message.delivered"
MESSAGE_OPENED = "message.opened"
MESSAGE_CLICKED = "message.clicked"
MESSAGE_BOUNCED = "message.bounced"
MESSAGE_COMPLAINED = "message.complained"
RUN_FAILED = "run.failed"
EVENT_UNMAPPED = "event.unmapped"

EVENT_TYPES: dict[str, str] = {
    MESSAGE_SENT: "a provider accepted a message (its SENT transition)",
    MESSAGE_DELIVERED: "the provider reported the message delivered",
    MESSAGE_OPENED: "the recipient opened the message (each open the provider reports)",
    MESSAGE_CLICKED: "the recipient clicked a link (each click the provider reports)",
    MESSAGE_BOUNCED: "the provider reported a bounce",
    MESSAGE_COMPLAINED: "the recipient marked the message as spam",
    RUN_FAILED: "an automation run failed (ERROR)",
    EVENT_UNMAPPED: "an event was processed and no enabled automation has its trigger",
}

# A message status a provider's report moves a message to, and the event type it is.
REPORTED: dict[str, str] = {
    "DELIVERED": MESSAGE_DELIVERED,
    "OPENED": MESSAGE_OPENED,
    "CLICKED": MESSAGE_CLICKED,
    "BOUNCED": MESSAGE_BOUNCED,
    "COMPLAINED": MESSAGE_COMPLAINED,
}


@dataclass(frozen=True, slots=True)
class Emission:
    """An event that happened in an environment, for the endpoints subscribed to its type."""

    environment_id: str
    event_type: str
    data: dict[str, Any]

    def body(self, at: datetime) -> tuple[str, str]:
        """A new event id (the `webhook-id`) and the body, as sent."""
        body = {"type": self.event_type, "timestamp": isoformat(at), "data": self.data}
        return new_id("msg"), orjson.dumps(body).decode()


def message_data(
    message_id: str,
    status: str,
    recipient: str | None,
    channel: str,
    provider: str | None,
    provider_message_id: str | None,
    **more: Any,
) -> dict[str, Any]:
    """The `data` of every `message.*` event."""
    return {
        "message_id": message_id,
        "status": status,
        "recipient": recipient,
        "channel": channel,
        "provider": provider,
        "provider_message_id": provider_message_id,
        **{name: value for name, value in more.items() if value is not None},
    }
