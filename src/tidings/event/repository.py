"""Every SQL query on events."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import Select, bindparam, func, inspect, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from tidings.kit.sql import claim_rows
from tidings.models import Event, EventStatus
from tidings.workspace.service import Scope

# Where events come from: Segment (destination, Tracking API, signed sources) and Courier's
# inbound track.
SOURCES = ("segment", "courier")
# An event's user: environment, source and userId.
UserKey = tuple[str, str, str | None]


class ReceivedEvent(NamedTuple):
    id: int
    user: UserKey
    attempts: int


# The hot statements, built once: building one per call cost more than running it.
_GET_FOR_UPDATE = (
    select(Event)
    .where(Event.id == bindparam("event_id"))
    .with_for_update()
    .execution_options(populate_existing=True)
)
# Rows locked in sets are locked in id order, everywhere: two transactions that lock
# overlapping sets in different orders (a plan's scan order, not the caller's) deadlock.
_LOCK_MANY = (
    select(Event)
    .where(Event.id.in_(bindparam("event_ids", expanding=True)))
    .order_by(Event.id)
    .with_for_update()
    .execution_options(populate_existing=True)
)
_PENDING_OF = select(Event.id, Event.environment_id, Event.source, Event.user_id).where(
    Event.id.in_(bindparam("event_ids", expanding=True)), Event.status == EventStatus.RECEIVED
)
_EARLIER_PENDING_OF_USERS = (
    select(Event.id, Event.user_id)
    .where(
        Event.environment_id == bindparam("environment_id"),
        Event.source == bindparam("source"),
        Event.user_id.in_(bindparam("user_ids", expanding=True)),
        Event.id < bindparam("before_id"),
        Event.status == EventStatus.RECEIVED,
    )
    .order_by(Event.id)
)


@functools.cache
def _oldest_received(limit: int) -> Select[int, str, str, str | None, int]:
    return (
        select(Event.id, Event.environment_id, Event.source, Event.user_id, Event.attempts)
        .where(Event.status == EventStatus.RECEIVED)
        .order_by(Event.received_at)
        .limit(limit)
    )


# The two halves of the events by user, each with its partial index (models/event.py).
_BY_STATUS = (Event.status == EventStatus.RECEIVED, Event.status != EventStatus.RECEIVED)


class EventRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def get_locked(self, event_id: int) -> Event | None:
        """`get_for_update`, or the event `lock_many` loaded in this session: for a unit of
        work that loads events only through these two."""
        found: Event | None = self.session.identity_map.get(identity_key(Event, event_id))
        if found is not None and not inspect(found).expired:
            return found
        return self.get_for_update(event_id)

    def get_for_update(self, event_id: int) -> Event | None:
        return self.session.scalars(_GET_FOR_UPDATE, {"event_id": event_id}).first()

    def lock_many(self, event_ids: Sequence[int]) -> Sequence[Event]:
        """Load and lock the events in one statement: while the caller holds the list,
        `get_locked` finds each in the session."""
        return self.session.scalars(_LOCK_MANY, {"event_ids": list(event_ids)}).all()

    def pending_of(self, event_ids: Sequence[int]) -> dict[int, UserKey]:
        """Those of the events still `received`, each with its user."""
        rows = self.session.execute(_PENDING_OF, {"event_ids": list(event_ids)}).all()
        return {
            event_id: (environment, source, user) for event_id, environment, source, user in rows
        }

    def earlier_pending_of_users(
        self, environment_id: str, source: str, before: dict[str, int], limit: int
    ) -> list[int]:
        """The users' unprocessed events that arrived before the id given for each, oldest
        first, at most `limit` per user."""
        if not before:
            return []
        rows = self.session.execute(
            _EARLIER_PENDING_OF_USERS,
            {
                "environment_id": environment_id,
                "source": source,
                "user_ids": list(before),
                "before_id": max(before.values()),
            },
        ).all()
        taken: dict[str, int] = {}
        found = []
        for event_id, user_id in rows:
            if user_id is None:  # never: the IN above excludes it
                continue
            count = taken.get(user_id, 0)
            if event_id < before[user_id] and count < limit:
                taken[user_id] = count + 1
                found.append(event_id)
        return found

    def waiting(self, limit: int) -> Sequence[int]:
        """The oldest events still `received` that have not failed yet."""
        return self.session.scalars(
            select(Event.id)
            .where(Event.status == EventStatus.RECEIVED, Event.attempts == 0)
            .order_by(Event.received_at)
            .limit(limit)
        ).all()

    def oldest_received(self, limit: int) -> list[ReceivedEvent]:
        """The oldest events still `received` (failed ones waiting for their retry too),
        each with its user and attempts, oldest first."""
        rows = self.session.execute(_oldest_received(limit)).all()
        return [ReceivedEvent(row[0], (row[1], row[2], row[3]), row[4]) for row in rows]

    def claim_stale(
        self, received_before: datetime, unclaimed_since: datetime, now: datetime, limit: int
    ) -> list[tuple[int, str]]:
        """Claim events still `received` that arrived before `received_before`, for a sweep
        to re-drive (`kit.sql.claim_rows`: concurrent sweeps take disjoint events); each
        with its environment."""
        return claim_rows(
            self.session,
            Event.id,
            Event.swept_at,
            (Event.status == EventStatus.RECEIVED) & (Event.received_at <= received_before),
            environment=Event.environment_id,
            now=now,
            unclaimed_since=unclaimed_since,
            limit=limit,
        )

    def by_message_id(self, scope: Scope, source: str, message_id: str) -> Event | None:
        return self.session.scalars(
            select(Event).where(
                Event.environment_id == scope.environment_id,
                Event.source == source,
                Event.message_id == message_id,
            )
        ).first()

    def page(
        self,
        scope: Scope,
        source: str,
        *,
        before_id: int | None,
        limit: int,
        event_type: str | None = None,
        name: str | None = None,
        user_id: str | None = None,
    ) -> Sequence[Event]:
        query = select(Event).where(
            Event.environment_id == scope.environment_id, Event.source == source
        )
        if event_type:
            query = query.where(Event.type == event_type)
        if name:
            query = query.where(Event.name == name)
        if before_id is not None:
            query = query.where(Event.id < before_id)
        if user_id:
            return self._newest_of_user([query.where(Event.user_id == user_id)], limit)
        return self.session.scalars(query.order_by(Event.id.desc()).limit(limit)).all()

    def of_user(self, scope: Scope, user_id: str, limit: int) -> Sequence[Event]:
        """A user's newest events, from every source."""
        return self._newest_of_user(
            [
                select(Event).where(
                    Event.environment_id == scope.environment_id,
                    Event.source == source,
                    Event.user_id == user_id,
                )
                for source in SOURCES
            ],
            limit,
        )

    def _newest_of_user(self, queries: list[Select[Event]], limit: int) -> list[Event]:
        """The newest `limit` events of queries by user (each with its source), newest first.

        Events are indexed by user in two partial indexes, unprocessed ones in
        `ix_event_pending_user` and the rest in `ix_event_user` (models/event.py), so each
        query is read once per status, through its index, and the results are merged.
        """
        found = [
            event
            for query in queries
            for status in (
                Event.status == EventStatus.RECEIVED,
                Event.status != EventStatus.RECEIVED,
            )
            for event in self.session.scalars(
                query.where(status).order_by(Event.id.desc()).limit(limit)
            )
        ]
        found.sort(key=lambda event: event.id, reverse=True)
        return found[:limit]

    def names(self, scope: Scope, source: str) -> Sequence[tuple[str, int, datetime, datetime]]:
        rows = self.session.execute(
            select(
                Event.name,
                func.count(Event.id),
                func.min(Event.received_at),
                func.max(Event.received_at),
            )
            .where(Event.environment_id == scope.environment_id, Event.source == source)
            .group_by(Event.name)
            .order_by(func.max(Event.id).desc())
        ).all()
        return [(row[0], row[1], row[2], row[3]) for row in rows]
