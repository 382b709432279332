"""Checks an incoming event and extracts what the inbox indexes.

Every failure is a BadRequest whose message names the field and the fix.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tidings.errors import BadRequest
from tidings.kit import json_input
from tidings.kit.time import parse_timestamp

SEGMENT_TYPES = ("identify", "track", "group", "page", "screen", "alias", "delete")
MAX_MESSAGE_ID_LENGTH = 100
MAX_EVENT_BYTES = 32 * 1024


# Not frozen: a frozen dataclass sets each field through object.__setattr__, which is much
# slower, and one of these is built per ingested event. Treat it as immutable.
@dataclass(slots=True)
class ValidEvent:
    """An accepted event: the payload as sent (plus a generated messageId if it had none)."""

    source: str
    type: str
    name: str
    message_id: str
    user_id: str | None
    anonymous_id: str | None
    timestamp: datetime | None
    payload: dict[str, Any]


def parse_json(body: bytes) -> Any:
    """The body, parsed within the JSON input limits (kit.json_input)."""
    try:
        return json_input.loads(body)
    except json_input.JSONDecodeError as exc:
        raise BadRequest(
            f"The request body is not valid JSON ({exc}). Send one Segment event as a JSON object.",
            code="invalid_json",
        ) from exc


def _identifier(event: dict[str, Any], field: str) -> str | None:
    """Segment ids are strings, but SDKs may send numbers; null and "" mean absent."""
    value = event.get(field)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise BadRequest(
            f"`{field}` must be a string; got {type(value).__name__}.",
            code=f"invalid_{_snake(field)}",
            field=field,
        )
    return str(value)


def _snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name)


def _object_field(event: dict[str, Any], field: str) -> None:
    value = event.get(field)
    if value is not None and not isinstance(value, dict):
        raise BadRequest(
            f'`{field}` must be a JSON object, e.g. {{"plan": "pro"}}; got {type(value).__name__}.',
            code=f"invalid_{field}",
            field=field,
        )


def _message_id(event: dict[str, Any]) -> str:
    message_id = _identifier(event, "messageId")
    if message_id is None:
        message_id = f"tidings-{uuid.uuid4()}"
        event["messageId"] = message_id
    if len(message_id) > MAX_MESSAGE_ID_LENGTH:
        raise BadRequest(
            f"`messageId` is {len(message_id)} characters long; Segment allows at most "
            f"{MAX_MESSAGE_ID_LENGTH}. Send a shorter unique id.",
            code="message_id_too_long",
            field="messageId",
        )
    return message_id


def validate_segment_event(
    body: Any, source: str = "segment", *, timestamp: datetime | None = None
) -> ValidEvent:
    """The event, checked; `timestamp` is the body's `timestamp` if the caller parsed it."""
    if not isinstance(body, dict):
        raise BadRequest(
            "The body must be one Segment event: a JSON object with a `type` such as "
            '"identify" or "track".',
            code="invalid_event",
        )
    event_type = _segment_type(body)
    user_id = _identifier(body, "userId")
    anonymous_id = _identifier(body, "anonymousId")
    if user_id is None and anonymous_id is None:
        raise BadRequest(
            "The event has neither `userId` nor `anonymousId`. Segment requires one of them: "
            "set `userId` to your user's id.",
            code="missing_user_id",
            field="userId",
        )
    message_id = _message_id(body)
    return ValidEvent(
        source=source,
        type=event_type,
        name=_checked_by_type(body, event_type, user_id),
        message_id=message_id,
        user_id=user_id,
        anonymous_id=anonymous_id,
        timestamp=timestamp or parse_timestamp(body.get("timestamp")),
        payload=body,
    )


def _segment_type(body: dict[str, Any]) -> str:
    event_type = body.get("type")
    if event_type is None or event_type == "":
        raise BadRequest(
            "`type` is missing. Set it to one of: " + ", ".join(SEGMENT_TYPES) + ".",
            code="missing_type",
            field="type",
        )
    if not isinstance(event_type, str) or event_type not in SEGMENT_TYPES:
        raise BadRequest(
            f"`type` {event_type!r} is not a Segment event type. Use one of: "
            + ", ".join(SEGMENT_TYPES)
            + ".",
            code="unknown_type",
            field="type",
        )
    return event_type


def _checked_by_type(body: dict[str, Any], event_type: str, user_id: str | None) -> str:
    """What the event's type requires, checked; the name it is listed under."""
    name = event_type
    if event_type == "track":
        event_name = _event_name(
            body, 'A track needs `event`, the name of the action, e.g. "Order Shipped".'
        )
        name = f"track/{event_name}"
        _object_field(body, "properties")
    elif event_type in ("identify", "group"):
        _object_field(body, "traits")
    elif event_type in ("page", "screen"):
        _object_field(body, "properties")
    if event_type == "delete" and user_id is None:
        raise BadRequest(
            "A delete (a user-deletion request) needs the `userId` whose data is to be removed.",
            code="missing_user_id",
            field="userId",
        )
    if event_type == "group" and _identifier(body, "groupId") is None:
        raise BadRequest(
            "A group needs `groupId`, the id of the account or team the user belongs to.",
            code="missing_group_id",
            field="groupId",
        )
    return name


def _event_name(body: dict[str, Any], problem: str) -> str:
    """A track's name (`event`): a string that is not blank, else a 400 saying `problem`."""
    name = body.get("event")
    if not isinstance(name, str) or not name.strip():
        raise BadRequest(problem, code="missing_event", field="event")
    return name


def validate_courier_event(body: Any) -> ValidEvent:
    """Courier's inbound track: `{event, messageId, type: "track", properties, userId?}`."""
    if not isinstance(body, dict):
        raise BadRequest(
            'The body must be a JSON object: {"event", "messageId", "type": "track", '
            '"properties", "userId"}.',
            code="invalid_event",
        )
    if body.get("type") != "track":
        raise BadRequest(
            '`type` must be "track" for Courier inbound events.',
            code="unknown_type" if body.get("type") else "missing_type",
            field="type",
        )
    event_name = _event_name(
        body, '`event` is required: the name of the event, e.g. "Order Shipped".'
    )
    if _identifier(body, "messageId") is None:
        raise BadRequest(
            "`messageId` is required: a unique id used to de-duplicate this event.",
            code="missing_message_id",
            field="messageId",
        )
    message_id = _message_id(body)
    if not isinstance(body.get("properties"), dict):
        raise BadRequest(
            "`properties` is required and must be a JSON object (it may be empty: {}).",
            code="invalid_properties",
            field="properties",
        )
    return ValidEvent(
        source="courier",
        type="track",
        name=event_name,
        message_id=message_id,
        user_id=_identifier(body, "userId"),
        anonymous_id=None,
        timestamp=parse_timestamp(body.get("timestamp")),
        payload=body,
    )
