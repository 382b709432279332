"""Every SQL query on events."""

from __future__ import annotations

import contextlib
import functools
import operator
import weakref
from collections.abc import Callable, Collection, Sequence
from datetime import datetime
from typing import Any, NamedTuple, Required, TypedDict, Unpack, cast

from sqlalchemy import (
    ColumnElement,
    Connection,
    Dialect,
    Select,
    Table,
    UniqueConstraint,
    bindparam,
    func,
    inspect,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm.util import identity_key

from tidings.kit.sql import Repository, claim_rows, execute_counting, insert_ignoring_conflicts
from tidings.models import Event, EventStatus
from tidings.workspace.repository import active_key_ids_on, key_is_active
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


class NewEvent(NamedTuple):
    """An event for `EventRepository.insert_new`: its values, by column name, and the API key
    that must still be active when it is stored (None: a signed source's event, whose
    signature was verified instead). The columns it leaves out take their defaults."""

    workspace_id: str
    environment_id: str
    source: str
    message_id: str
    type: str
    name: str
    user_id: str | None
    anonymous_id: str | None
    payload: dict[str, Any]
    timestamp: datetime | None
    key_id: str | None


# An event's identity: the columns of the event table's unique constraint (environment,
# source, messageId). A second event with the same identity is a duplicate.
Identity = tuple[str, str, str]


class InsertedEvents(NamedTuple):
    """What `EventRepository.insert_new` stored: the new events' ids by identity, and the ids
    of the rows' API keys found revoked or gone (their events were not stored)."""

    ids: dict[Identity, int]
    inactive_keys: set[str]


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
    select(Event.id, Event.user_id).where(
        Event.environment_id == bindparam("environment_id"),
        Event.source == bindparam("source"),
        Event.user_id.in_(bindparam("user_ids", expanding=True)),
        Event.id < bindparam("before_id"),
        Event.status == EventStatus.RECEIVED,
    )
    # The unprocessed events before `before_id`, in ix_event_pending, which holds each one's
    # user: processing takes the oldest events first, so these are few. No ORDER BY: with
    # one, SQLite may walk ix_event_listing through the whole history; the rows are sorted
    # in Python.
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


class EventFilters(TypedDict, total=False):
    """The events of a page (`EventRepository.page`)."""

    before_id: Required[int | None]
    limit: Required[int]
    event_type: str | None
    name: str | None
    user_id: str | None
    after_id: int | None
    received_from: datetime | None
    received_to: datetime | None


class EventRepository(Repository):
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
        found_rows = self.session.execute(
            _EARLIER_PENDING_OF_USERS,
            {
                "environment_id": environment_id,
                "source": source,
                "user_ids": list(before),
                "before_id": max(before.values()),
            },
        ).all()
        rows = sorted((row[0], row[1]) for row in found_rows)
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

    def backlog(self) -> tuple[int, datetime | None]:
        """How many events are still `received`, and when the oldest arrived: read from
        `ix_event_status` alone (the metrics scrape)."""
        row = self.session.execute(
            select(func.count(), func.min(Event.received_at)).where(
                Event.status == EventStatus.RECEIVED
            )
        ).one()
        return int(row[0]), row[1]

    def any_waiting(self, received_from: datetime, received_to: datetime) -> bool:
        """Whether an event received in [received_from, received_to] is still `received`
        (read from `ix_event_status` alone)."""
        found = self.session.execute(
            select(Event.id)
            .where(
                Event.status == EventStatus.RECEIVED,
                Event.received_at >= received_from,
                Event.received_at <= received_to,
            )
            .limit(1)
        ).first()
        return found is not None

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
        return self.find_row(
            Event, environment_id=scope.environment_id, source=source, message_id=message_id
        )

    def page(self, scope: Scope, source: str, **filters: Unpack[EventFilters]) -> Sequence[Event]:
        """Newest first, before `before_id` when given. With `after_id`, the `limit` events
        just newer than it instead, oldest first (the page before, in a list read newest
        first). `received_from` and `received_to` bound the time received, both included."""
        return [event for event, _ in self.page_with(literal_column("0"), scope, source, **filters)]

    def page_with(
        self,
        column: ColumnElement[Any],
        scope: Scope,
        source: str,
        *,
        before_id: int | None,
        limit: int,
        event_type: str | None = None,
        name: str | None = None,
        user_id: str | None = None,
        after_id: int | None = None,
        received_from: datetime | None = None,
        received_to: datetime | None = None,
    ) -> list[tuple[Event, Any]]:
        """`page`, each event with the value of `column` for it (a scalar subquery on
        `Event.id`, say), read in the same query."""
        query = select(Event, column).where(
            Event.environment_id == scope.environment_id, Event.source == source
        )
        if event_type:
            query = query.where(Event.type == event_type)
        if name:
            query = query.where(Event.name == name)
        if before_id is not None:
            query = query.where(Event.id < before_id)
        if after_id is not None:
            query = query.where(Event.id > after_id)
        if received_from is not None:
            query = query.where(Event.received_at >= received_from)
        if received_to is not None:
            query = query.where(Event.received_at <= received_to)
        oldest_first = after_id is not None
        if user_id:
            query = query.where(Event.user_id == user_id)
            # Through both partial indexes, as `_newest_of_user` reads them.
            found = [
                (row[0], row[1])
                for status in _BY_STATUS
                for row in self.session.execute(
                    query.where(status)
                    .order_by(Event.id.asc() if oldest_first else Event.id.desc())
                    .limit(limit)
                )
            ]
            found.sort(key=lambda pair: pair[0].id, reverse=not oldest_first)
            return found[:limit]
        order = Event.id.asc() if oldest_first else Event.id.desc()
        return [
            (row[0], row[1]) for row in self.session.execute(query.order_by(order).limit(limit))
        ]

    def _received_in(
        self, environment_id: str, source: str, start: datetime, end: datetime
    ) -> list[ColumnElement[bool]]:
        return [
            Event.environment_id == environment_id,
            Event.source == source,
            Event.received_at >= start,
            Event.received_at < end,
        ]

    def received_page(
        self,
        environment_id: str,
        source: str,
        start: datetime,
        end: datetime,
        after_id: int,
        limit: int,
    ) -> Sequence[Event]:
        """The environment's events of a source received in [start, end), in the order they
        were stored (their ids), from after `after_id`."""
        return self.session.scalars(
            select(Event)
            .where(*self._received_in(environment_id, source, start, end), Event.id > after_id)
            .order_by(Event.id)
            .limit(limit)
        ).all()

    def count_received(
        self, environment_id: str, source: str, start: datetime, end: datetime, cap: int
    ) -> int:
        """How many events `received_page` pages through, counted up to `cap`."""
        capped = (
            select(Event.id)
            .where(*self._received_in(environment_id, source, start, end))
            .limit(cap)
            .subquery()
        )
        return self.session.scalar(select(func.count()).select_from(capped)) or 0

    def by_ids(self, event_ids: Sequence[int]) -> Sequence[Event]:
        """The events, in id order (read, not locked)."""
        if not event_ids:
            return []
        return self.session.scalars(
            select(Event).where(Event.id.in_(event_ids)).order_by(Event.id)
        ).all()

    def by_message_ids(
        self, environment_id: str, source: str, message_ids: Collection[str]
    ) -> Sequence[Event]:
        if not message_ids:
            return []
        return self.session.scalars(
            select(Event).where(
                Event.environment_id == environment_id,
                Event.source == source,
                Event.message_id.in_(sorted(message_ids)),
            )
        ).all()

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

    def user_page(
        self,
        scope: Scope,
        user_id: str,
        *,
        before_id: int | None,
        after_id: int | None,
        limit: int,
    ) -> Sequence[Event]:
        """A user's events from every source: newest first before `before_id` (the newest
        when None), or with `after_id` the `limit` events just newer than it, oldest first."""
        queries = []
        for source in SOURCES:
            query = select(Event).where(
                Event.environment_id == scope.environment_id,
                Event.source == source,
                Event.user_id == user_id,
            )
            if before_id is not None:
                query = query.where(Event.id < before_id)
            if after_id is not None:
                query = query.where(Event.id > after_id)
            queries.append(query)
        return self._newest_of_user(queries, limit, oldest_first=after_id is not None)

    def _newest_of_user(
        self, queries: list[Select[Event]], limit: int, *, oldest_first: bool = False
    ) -> list[Event]:
        """The newest `limit` events of queries by user (each with its source), newest first;
        with `oldest_first`, the oldest `limit`, oldest first.

        Processed events are indexed by user (`ix_event_user`), unprocessed ones in arrival
        order with their user (`ix_event_pending`, models/event.py), so each query is read
        once per status, through its index, and the results are merged.
        """
        found = [
            event
            for query in queries
            for status in _BY_STATUS
            for event in self.session.scalars(
                query.where(status)
                .order_by(Event.id.asc() if oldest_first else Event.id.desc())
                .limit(limit)
            )
        ]
        found.sort(key=lambda event: event.id, reverse=not oldest_first)
        return found[:limit]

    def occurrences(
        self,
        environment_id: str,
        user_ids: Collection[str],
        names: Collection[str],
        *,
        properties: bool,
    ) -> list[tuple[str, str, datetime, dict[str, Any]]]:
        """The processed events of these users with these names, from every source:
        (user id, name, when it happened, its properties, or {} without `properties`).
        When it happened is the event's own timestamp, else when it was received."""
        columns: list[Any] = [Event.user_id, Event.name, Event.timestamp, Event.received_at]
        if properties:
            columns.append(Event.payload)
        found = []
        for source in SOURCES:
            rows = self.session.execute(
                select(*columns).where(
                    Event.environment_id == environment_id,
                    Event.source == source,
                    Event.user_id.in_(sorted(user_ids)),
                    Event.status != EventStatus.RECEIVED,
                    Event.name.in_(sorted(names)),
                )
            )
            for row in rows:
                payload = row[4] if properties else None
                data = payload.get("properties") if isinstance(payload, dict) else None
                found.append(
                    (row[0], row[1], row[2] or row[3], data if isinstance(data, dict) else {})
                )
        return found

    def user_ids_after(
        self, environment_id: str, names: Collection[str], after: str, limit: int
    ) -> list[str]:
        """The next `limit` distinct user ids after `after` (in id order) with a processed
        event of one of these names, from every source."""
        found: set[str] = set()
        for source in SOURCES:
            found.update(
                self.session.scalars(
                    select(Event.user_id)
                    .where(
                        Event.environment_id == environment_id,
                        Event.source == source,
                        Event.user_id > after,
                        Event.status != EventStatus.RECEIVED,
                        Event.name.in_(sorted(names)),
                    )
                    .group_by(Event.user_id)
                    .order_by(Event.user_id)
                    .limit(limit)
                )
            )
        return sorted(found)[:limit]

    def last_seen(self, environment_id: str, user_ids: Collection[str]) -> dict[str, datetime]:
        """When each of the users' latest processed event was received (users with none are
        left out)."""
        found: dict[str, datetime] = {}
        for source in SOURCES:
            rows = self.session.execute(
                select(Event.user_id, func.max(Event.received_at))
                .where(
                    Event.environment_id == environment_id,
                    Event.source == source,
                    Event.user_id.in_(sorted(user_ids)),
                    Event.status != EventStatus.RECEIVED,
                )
                .group_by(Event.user_id)
            )
            for user_id, at in rows:
                if (
                    user_id is not None
                    and at is not None
                    and (user_id not in found or at > found[user_id])
                ):
                    found[user_id] = at
        return found

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

    def names_page(
        self,
        scope: Scope,
        source: str,
        *,
        before_id: int | None,
        after_id: int | None,
        limit: int,
    ) -> Sequence[tuple[str, int, datetime, datetime, int]]:
        """`names`, a page at a time: each name with its count, first and last time
        received, and its newest event's id, which orders and pages the list (newest first
        before `before_id`; with `after_id`, the names just newer than it, oldest first)."""
        newest = func.max(Event.id)
        query = (
            select(
                Event.name,
                func.count(Event.id),
                func.min(Event.received_at),
                func.max(Event.received_at),
                newest,
            )
            .where(Event.environment_id == scope.environment_id, Event.source == source)
            .group_by(Event.name)
        )
        if before_id is not None:
            query = query.having(newest < before_id)
        if after_id is not None:
            query = query.having(newest > after_id)
        order = newest.asc() if after_id is not None else newest.desc()
        rows = self.session.execute(query.order_by(order).limit(limit)).all()
        return [(row[0], row[1], row[2], row[3], row[4]) for row in rows]

    @staticmethod
    def insert_new(
        connection: Connection, rows: Sequence[NewEvent], *, received_at: datetime
    ) -> InsertedEvents:
        """Store those of the events that are new and whose key is still active, as
        `received` at `received_at`; leave out the others (a duplicate's identity is stored
        already). Each identity appears once in `rows`.

        It takes a connection rather than the repository's session. On SQLite that is the
        ingest writer's own, in autocommit mode, used while this process's write lock is
        held: the insert is one statement for up to 64 rows, committed by itself, on the
        driver's cursor, with each row's key checked in it (`_insert_sqlite`). Elsewhere it
        joins the connection's transaction: the keys are checked, then the rows inserted
        with `INSERT … ON CONFLICT DO NOTHING RETURNING`, which holds across processes.
        """
        if connection.dialect.name == "sqlite":
            return _insert_sqlite(connection, rows, received_at)
        return _insert_returning(connection, rows, received_at)

    def redact_users(self, environment: str, ids: list[str]) -> int:
        """Erasing users: each event of these ids keeps only its type and messageId."""
        redacted = 0
        for event_id, event_type, message_id in self.session.execute(
            select(Event.id, Event.type, Event.message_id).where(
                Event.environment_id == environment,
                or_(Event.user_id.in_(ids), Event.anonymous_id.in_(ids)),
            )
        ).all():
            redacted += execute_counting(
                self.session,
                update(Event)
                .where(Event.id == event_id)
                .values(
                    payload={"type": event_type, "messageId": message_id, "redacted": True},
                    profile_diff=[],
                    user_id=None,
                    anonymous_id=None,
                ),
            )
        return redacted


# -- new events (the ingest writer's insert) ---------------------------------------------------

_TABLE = cast(Table, Event.__table__)
# The columns a NewEvent gives, in its order (its last field is the key to check).
_GIVEN: tuple[str, ...] = NewEvent._fields[:-1]
_WIDTH = len(NewEvent._fields)
_IDENTITY: tuple[str, ...] = next(
    tuple(column.name for column in constraint.columns)
    for constraint in _TABLE.constraints
    if isinstance(constraint, UniqueConstraint)
)
_identity_of = operator.itemgetter(*(_GIVEN.index(name) for name in _IDENTITY))
(_KEY,) = (column.name for column in _TABLE.primary_key.columns)
_BY_ID_RANGE = (
    f"SELECT {', '.join(_IDENTITY)}, {_KEY} FROM {_TABLE.name} WHERE {_KEY} BETWEEN ? AND ?"
)
# Rows per INSERT statement on SQLite: a batch of up to 64 rows is one statement of its exact
# size; larger ones are cut into these, plus one statement for the rest. Each size is
# compiled once and cached by the driver.
_SQLITE_CHUNKS = (256, 64)

Converter = Callable[[Any], Any]
# For the NewEvent fields whose type has a bind processor, (position, processor); for each
# _FILLED column, its processor or None.
Converters = tuple[list[tuple[int, Converter]], list[Converter | None]]


def _column_defaults() -> dict[str, Any]:
    """The default of each column a NewEvent does not give (None: NULL), `received_at`
    aside: it has none, and the insert is given it."""
    defaults: dict[str, Any] = {}
    for column in _TABLE.columns:
        if column.primary_key or column.server_default is not None:
            continue
        if column.name in _GIVEN or column.name == "received_at":
            continue
        if column.default is None and not column.nullable:
            raise RuntimeError(
                f"A new event has no value for event.{column.name}: add it to NewEvent, or "
                "give the column a default."
            )
        defaults[column.name] = column.default
    return defaults


_DEFAULTS = _column_defaults()
# The columns the insert fills in besides a NewEvent's, with one value for every row.
_FILLED: tuple[str, ...] = (*_DEFAULTS, "received_at")


def _filled(received_at: datetime) -> list[Any]:
    """The values of the _FILLED columns: each default (a callable one computed once per
    insert), then `received_at`."""
    values: list[Any] = []
    for default in _DEFAULTS.values():
        generator = cast(Any, default)
        if generator is None:
            values.append(None)
        elif generator.is_callable:
            values.append(generator.arg(None))
        else:
            values.append(generator.arg)
    values.append(received_at)
    return values


def _chunks(rows: int) -> list[int]:
    sizes = []
    for size in _SQLITE_CHUNKS:
        while rows >= size:
            sizes.append(size)
            rows -= size
    if rows:
        sizes.append(rows)
    return sizes


@functools.cache
def _sqlite_insert(rows: int) -> str:
    """The insert of `rows` NewEvents on SQLite, each a row of VALUES (its fields, the key
    last), with the _FILLED columns bound once: a row is stored only if its key is active
    (or it has none), and not if its identity is stored already."""
    check: ColumnElement[Any] = literal_column(f"column{_WIDTH}")
    condition = or_(check.is_(None), key_is_active(check)).compile(dialect=sqlite.dialect())
    condition_sql = " ".join(str(condition).split())
    row = f"({', '.join('?' for _ in range(_WIDTH))})"
    return (
        f"INSERT INTO {_TABLE.name} ({', '.join((*_GIVEN, *_FILLED))}) "
        f"SELECT {', '.join(f'column{n + 1}' for n in range(len(_GIVEN)))}, "
        f"{', '.join('?' for _ in _FILLED)} "
        f"FROM (VALUES {', '.join(row for _ in range(rows))}) "
        f"WHERE {condition_sql} "
        f"ON CONFLICT ({', '.join(_IDENTITY)}) DO NOTHING"
    )


_CONVERTERS: weakref.WeakKeyDictionary[Dialect, Converters] = weakref.WeakKeyDictionary()


def _converters(dialect: Dialect) -> Converters:
    """What turns values into what the driver stores, as the ORM does: each column type's
    own bind processor (UTCDateTime's format, the engine's JSON serializer)."""
    found = _CONVERTERS.get(dialect)
    if found is None:

        def processor(name: str) -> Converter | None:
            column_type = _TABLE.c[name].type
            return column_type.dialect_impl(dialect).bind_processor(dialect)

        given = [
            (index, converter)
            for index, name in enumerate(_GIVEN)
            if (converter := processor(name)) is not None
        ]
        found = _CONVERTERS[dialect] = (given, [processor(name) for name in _FILLED])
    return found


def _sqlite_values(
    dialect: Dialect, rows: Sequence[NewEvent], received_at: datetime
) -> tuple[list[Any], list[Any]]:
    """The values of the _FILLED columns, and those of the rows, one after another, as the
    driver stores them."""
    given, filled = _converters(dialect)
    values: list[Any] = []
    for row in rows:
        values.extend(row)
    for index, convert in given:
        values[index::_WIDTH] = [convert(value) for value in values[index::_WIDTH]]
    return [
        value if convert is None else convert(value)
        for value, convert in zip(_filled(received_at), filled, strict=True)
    ], values


def _insert_sqlite(
    connection: Connection, rows: Sequence[NewEvent], received_at: datetime
) -> InsertedEvents:
    """The SQLite insert, on the driver's cursor of a connection in autocommit mode while
    this process's write lock is held.

    Every time the writer's thread takes the GIL back after a call into SQLite, it may wait
    for the event loop's thread, so a batch makes as few calls as it can: up to 64 rows are
    one `INSERT ... ON CONFLICT DO NOTHING` committed on its own, with no BEGIN and no
    COMMIT; larger batches take a few statements in one transaction. Only when rows were
    left out does a query tell which, and another which of the keys are no longer active.
    """
    filled, values = _sqlite_values(connection.dialect, rows, received_at)
    cursor = connection.connection.cursor()
    try:
        inserted, last_id = _execute_chunks(cursor, filled, values, len(rows))
        ids = _new_ids(cursor, rows, inserted, last_id)
    finally:
        cursor.close()
    keys = {row.key_id for row in rows if row.key_id is not None}
    if len(ids) == len(rows) or not keys:
        return InsertedEvents(ids, set())
    return InsertedEvents(ids, keys - active_key_ids_on(connection, keys))


def _execute_chunks(
    cursor: Any, filled: list[Any], values: list[Any], rows: int
) -> tuple[int, int]:
    """Run the inserts of `rows` rows; how many were inserted, and the id of the last."""
    # Multi-row INSERTs rather than executemany: executemany takes the GIL back after every
    # row, which made a busy server's batches many times slower.
    sizes = _chunks(rows)
    inserted = last_id = 0
    if len(sizes) > 1:
        cursor.execute("BEGIN IMMEDIATE")
    try:
        start = 0
        for size in sizes:
            cursor.execute(
                _sqlite_insert(size), filled + values[start * _WIDTH : (start + size) * _WIDTH]
            )
            if cursor.rowcount > 0:
                inserted += cursor.rowcount
                last_id = cursor.lastrowid
            start += size
        if len(sizes) > 1:
            cursor.execute("COMMIT")
    except BaseException:
        if len(sizes) > 1:
            with contextlib.suppress(Exception):  # SQLite may have rolled back already
                cursor.execute("ROLLBACK")
        raise
    return inserted, last_id


def _new_ids(
    cursor: Any, rows: Sequence[NewEvent], inserted: int, last_id: int
) -> dict[Identity, int]:
    """The inserted rows' ids by identity. They are consecutive (SQLite gives a new row the
    largest id plus one, and the write lock keeps other writers out), so they follow from
    the last one and the number inserted; only when some rows were left out does a query
    over that id range say which."""
    if inserted == 0:
        return {}
    first_id = last_id - inserted + 1
    if inserted == len(rows):
        return {_identity_of(row): first_id + index for index, row in enumerate(rows)}
    cursor.execute(_BY_ID_RANGE, (first_id, last_id))
    return {(row[0], row[1], row[2]): row[3] for row in cursor.fetchall()}


def _insert_returning(
    connection: Connection, rows: Sequence[NewEvent], received_at: datetime
) -> InsertedEvents:
    """Postgres: the keys checked, then `INSERT … ON CONFLICT DO NOTHING RETURNING` in the
    connection's transaction."""
    keys = {row.key_id for row in rows if row.key_id is not None}
    active = active_key_ids_on(connection, keys) if keys else set()
    kept = [row for row in rows if row.key_id is None or row.key_id in active]
    if not kept:
        return InsertedEvents({}, keys - active)
    filled = dict(zip(_FILLED, _filled(received_at), strict=True))
    statement = (
        insert_ignoring_conflicts(connection, _TABLE)
        .values([{**filled, **dict(zip(_GIVEN, row[:-1], strict=True))} for row in kept])
        .returning(*(_TABLE.c[name] for name in _IDENTITY), _TABLE.c[_KEY])
    )
    ids = {(row[0], row[1], row[2]): row[3] for row in connection.execute(statement)}
    return InsertedEvents(ids, keys - active)
