"""The one precedence rule of delivery feedback (`models.message.moves_up`)."""

from __future__ import annotations

import pytest

from tidings.models import DeliveryStatus, MessageStatus
from tidings.models.message import FEEDBACK_LADDER, moves_up


def test_the_ladder_in_order() -> None:
    assert FEEDBACK_LADDER == ("DELIVERED", "OPENED", "CLICKED", "BOUNCED", "COMPLAINED")


@pytest.mark.parametrize(
    ("current", "reported", "moves"),
    [
        (MessageStatus.SENT, MessageStatus.DELIVERED, True),
        (MessageStatus.ROUTED, MessageStatus.DELIVERED, True),
        (MessageStatus.UNDELIVERABLE, MessageStatus.DELIVERED, True),
        (MessageStatus.SENT, MessageStatus.OPENED, True),
        (MessageStatus.DELIVERED, MessageStatus.OPENED, True),
        (MessageStatus.OPENED, MessageStatus.CLICKED, True),
        (MessageStatus.CLICKED, MessageStatus.OPENED, False),
        (MessageStatus.DELIVERED, MessageStatus.DELIVERED, False),
        (MessageStatus.DELIVERED, MessageStatus.BOUNCED, True),
        (MessageStatus.CLICKED, MessageStatus.BOUNCED, True),
        (MessageStatus.BOUNCED, MessageStatus.DELIVERED, False),
        (MessageStatus.BOUNCED, MessageStatus.OPENED, False),
        (MessageStatus.BOUNCED, MessageStatus.COMPLAINED, True),
        (MessageStatus.COMPLAINED, MessageStatus.BOUNCED, False),
        (MessageStatus.COMPLAINED, MessageStatus.CLICKED, False),
        (MessageStatus.CANCELED, MessageStatus.DELIVERED, False),
        (DeliveryStatus.SENDING, MessageStatus.DELIVERED, True),
        (DeliveryStatus.FAILED, MessageStatus.OPENED, True),
        (DeliveryStatus.BOUNCED, MessageStatus.DELIVERED, False),
        (DeliveryStatus.OPENED, MessageStatus.CLICKED, True),
    ],
)
def test_a_report_moves_only_up_the_ladder(current: str, reported: str, moves: bool) -> None:
    assert moves_up(current, reported) is moves
