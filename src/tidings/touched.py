"""Users whose audiences may have changed in this unit of work, noted by what changes them
(an event's processing, a profile saved through the API, a list subscription) and refreshed
once, together, just before the commit (`membership.refresh_touched`, a hook of
`Database.write`): a group of events costs one evaluation of each of its users, with one
query per kind of fact for all of them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Session

from tidings.models import Event

_TOUCHED = "tidings.audience_touched"


@dataclass(frozen=True, slots=True)
class Needs:
    """The facts a set of conditions reads, so that a change that touches none of them costs
    no evaluation, and a loader reads only these."""

    traits: bool = False
    events: frozenset[str] = frozenset()
    event_properties: bool = False
    lists: bool = False
    tenants: bool = False
    first_seen: bool = False
    last_seen: bool = False
    # As a change: any event may have changed (a merge, a re-check, a scan).
    any_event: bool = False

    def __or__(self, other: Needs) -> Needs:
        return Needs(
            self.traits or other.traits,
            self.events | other.events,
            self.event_properties or other.event_properties,
            self.lists or other.lists,
            self.tenants or other.tenants,
            self.first_seen or other.first_seen,
            self.last_seen or other.last_seen,
            self.any_event or other.any_event,
        )


# Every fact may have changed: a merge of two users, a re-check, a scan.
EVERYTHING = Needs(
    traits=True,
    lists=True,
    tenants=True,
    first_seen=True,
    last_seen=True,
    event_properties=True,
    any_event=True,
)


@dataclass
class Touch:
    """What changed for one user in this unit of work: the facts, when the user was last
    seen if an event says so, and the events that changed it (the last one's record says
    what the refresh did)."""

    changed: Needs
    seen: datetime | None = None
    events: list[Event] = field(default_factory=list)


def touch(
    session: Session,
    environment_id: str,
    user_ids: Iterable[str],
    changed: Needs,
    *,
    event: Event | None = None,
) -> None:
    """Note that what `changed` says changed for these users (by `event`, when one did)."""
    touched: dict[tuple[str, str], Touch] = session.info.setdefault(_TOUCHED, {})
    for user_id in user_ids:
        key = (environment_id, user_id)
        found = touched.get(key)
        if found is None:
            found = touched[key] = Touch(changed)
        else:
            found.changed = found.changed | changed
        if event is not None:
            found.events.append(event)
            found.seen = max(found.seen or event.received_at, event.received_at)


def take(session: Session) -> dict[tuple[str, str], Touch]:
    """The users noted so far; forgotten once taken."""
    taken: dict[tuple[str, str], Touch] = session.info.pop(_TOUCHED, {})
    return taken
