"""What Studio composes from the domain services: it adds no rules of its own.

Automations are changed only through `tidings.automation.service.save`, notifications through
`tidings.notification.service`, sends through `tidings.message.service.accept_send`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from tidings.automation import service as automation_service
from tidings.automation.repository import AutomationRepository, RunRepository
from tidings.eventstore.repository import EventRepository
from tidings.kit.outbound import OutboundGuard
from tidings.message.repository import MessageRepository
from tidings.models import Automation, AutomationVersion, Event
from tidings.workspace.service import Scope

SEGMENT = "segment"


@dataclass(frozen=True, slots=True)
class EventName:
    name: str
    count: int
    first_seen: Any
    last_seen: Any
    automations: list[str]
    # The id of the name's newest event: Event names pages by it (`event_names_page`).
    newest_id: int = 0


def event_names_page(
    session: Session,
    scope: Scope,
    *,
    before_id: int | None,
    after_id: int | None,
    limit: int,
) -> list[EventName]:
    """A page of the Segment event names with the automations they trigger, ordered by each
    name's newest event (`EventRepository.names_page`)."""
    rows = EventRepository(session).names_page(
        scope, SEGMENT, before_id=before_id, after_id=after_id, limit=limit
    )
    linked = AutomationRepository(session).automations_by_trigger(
        scope.environment_id, SEGMENT, enabled_only=False
    )
    return [
        EventName(name, count, first, last, linked.get(name, []), newest)
        for name, count, first, last, newest in rows
    ]


def automations(session: Session, scope: Scope) -> list[tuple[Automation, AutomationVersion]]:
    """Every automation of the environment with its current version, read 100 at a time."""
    repository = AutomationRepository(session)
    rows: list[tuple[Automation, AutomationVersion]] = []
    after: int | None = None
    while True:
        page = repository.page(scope, after, 100)
        rows.extend(with_versions(session, page))
        if len(page) < 100:
            return rows
        after = page[-1].id


def with_versions(
    session: Session, automations: Sequence[Automation]
) -> list[tuple[Automation, AutomationVersion]]:
    """Each automation with its current version."""
    repository = AutomationRepository(session)
    return [
        (automation, version)
        for automation in automations
        if (version := repository.version(automation, automation.current_version)) is not None
    ]


def editable(definition: dict[str, Any]) -> dict[str, Any]:
    """A stored definition as a body `save` accepts."""
    return {
        key: definition[key] for key in automation_service.DEFINITION_FIELDS if key in definition
    }


def link_trigger(
    session: Session,
    scope: Scope,
    automation_id: str,
    event_name: str,
    outbound: OutboundGuard,
) -> tuple[Automation, AutomationVersion, str]:
    """Add `{segment, event_name}` to an automation's triggers, as a new saved version."""
    _, version = automation_service.get(session, scope, automation_id)
    body = editable(version.definition)
    trigger = {"source": SEGMENT, "event": event_name}
    if trigger not in body["triggers"]:
        body["triggers"] = [*body["triggers"], trigger]
    return automation_service.save(session, scope, automation_id, body, outbound=outbound)


def suggested_id(event_name: str) -> str:
    base = event_name.removeprefix("track/")
    slug = re.sub(r"[^a-z0-9]+", "-", base.lower()).strip("-")
    return slug[:150] or "automation"


def prefilled_definition(event_name: str) -> dict[str, Any]:
    """A new automation for an event name: its trigger, and a send to the event's user."""
    title = event_name.removeprefix("track/")
    return {
        "name": f"On {event_name}",
        "enabled": False,
        "triggers": [{"source": SEGMENT, "event": event_name}],
        "steps": [
            {
                "action": "send",
                "recipient": {"$ref": "event.userId"},
                "content": {"title": title, "body": "Edit this message."},
            }
        ],
    }


def free_automation_id(session: Session, scope: Scope, wanted: str) -> str:
    repository = AutomationRepository(session)
    candidate, number = wanted, 2
    while repository.get(scope, candidate) is not None:
        candidate = f"{wanted}-{number}"
        number += 1
    return candidate


def recent_events(session: Session, scope: Scope, limit: int) -> Sequence[Event]:
    """The latest Segment events, newest first."""
    return EventRepository(session).page(scope, SEGMENT, before_id=None, limit=limit)


def event_of(session: Session, scope: Scope, message_id: str) -> Event | None:
    return EventRepository(session).by_message_id(scope, SEGMENT, message_id)


@dataclass(frozen=True, slots=True)
class EventFilter:
    """The Segment events list's filters; None matches any."""

    event_type: str | None = None
    name: str | None = None
    user_id: str | None = None
    received_from: datetime | None = None
    received_to: datetime | None = None


@dataclass(frozen=True, slots=True)
class ListedEvent:
    """A row of the Segment events list: the event, and how many of the messages its runs
    sent will not reach their recipient (the event page's "N messages not sent")."""

    event: Event
    not_sent: int

    @property
    def id(self) -> int:
        return self.event.id


def events_page(
    session: Session,
    scope: Scope,
    where: EventFilter,
    *,
    before_id: int | None,
    after_id: int | None,
    limit: int,
) -> list[ListedEvent]:
    """Segment events that match `where`: newest first before `before_id`, or with
    `after_id` the ones just newer than it, oldest first; each with its count of messages
    not sent, read in the same query."""
    rows = EventRepository(session).page_with(
        MessageRepository.not_sent_among(
            RunRepository.sent_request_ids(Event.id), Event.environment_id
        ),
        scope,
        SEGMENT,
        before_id=before_id,
        after_id=after_id,
        limit=limit,
        event_type=where.event_type,
        name=where.name,
        user_id=where.user_id,
        received_from=where.received_from,
        received_to=where.received_to,
    )
    return [ListedEvent(event, int(not_sent or 0)) for event, not_sent in rows]


def preview_event(session: Session, scope: Scope, wanted: str) -> Event | None:
    """The event a template preview uses: the Segment event with this messageId, or else
    this user's newest."""
    repository = EventRepository(session)
    found = repository.by_message_id(scope, SEGMENT, wanted)
    if found is not None:
        return found
    newest = repository.page(scope, SEGMENT, before_id=None, limit=1, user_id=wanted)
    return newest[0] if newest else None
