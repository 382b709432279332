"""The product page's sample events, exactly as Segment's Event Tester sends them."""

from __future__ import annotations

import copy
from typing import Any

_IDENTIFY: dict[str, Any] = {
    "messageId": "segment-test-message-iskh4123",
    "timestamp": "2024-05-21T18:00:18.913Z",
    "type": "identify",
    "email": "test@example.org",
    "traits": {"trait1": 2, "email": "test@example.org"},
    "userId": "rod-test",
}

_TRACK: dict[str, Any] = {
    "messageId": "segment-test-message-a8rmf",
    "timestamp": "2021-12-07T08:41:59.410Z",
    "type": "track",
    "email": "test@example.org",
    "projectId": "4GgKeBoVJkT9EZL4vAmduv",
    "properties": {"property1": 1, "property2": "test", "property3": True},
    "userId": "test-user-cqw3gr",
    "event": "Segment Test Event Name",
}

SEGMENT_HEADERS = {"User-Agent": "SegmentCourier", "Content-Type": "application/json"}


def identify(**overrides: Any) -> dict[str, Any]:
    event = copy.deepcopy(_IDENTIFY)
    event.update(overrides)
    return event


def track(**overrides: Any) -> dict[str, Any]:
    event = copy.deepcopy(_TRACK)
    event.update(overrides)
    return event
