"""The SQL the callbacks need beyond `MessageRepository`."""

from __future__ import annotations

from sqlalchemy import select

from tidings.kit.sql import Repository
from tidings.models import Message, MessageDelivery


class CallbackRepository(Repository):
    def delivery_of_message(
        self, message_id: str, channel: str, provider: str
    ) -> MessageDelivery | None:
        """The delivery of `message_id` on `channel` currently handled by `provider`."""
        return self.session.scalars(
            select(MessageDelivery)
            .join(Message, Message.id == MessageDelivery.message_pk)
            .where(
                Message.message_id == message_id,
                MessageDelivery.channel == channel,
                MessageDelivery.provider == provider,
            )
            .order_by(MessageDelivery.id)
        ).first()
