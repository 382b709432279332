"""Group commit for ingest.

Requests hand their events to one writer task per process. While one batch is being
written, new requests queue up, and the next transaction takes them all: one commit (and
one fsync) serves many requests. A request is answered only after its batch has committed.

Each batch, in one transaction:
1. resolves the presented API keys (one query), so revocation takes effect at once;
2. inserts the events with `ON CONFLICT DO NOTHING` on (environment, source, messageId);
   rows that did not insert are duplicates and change nothing;
3. commits, then hands the new event ids to the job engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import orjson
from sqlalchemy import Connection
from sqlalchemy.orm import Session

from tidings.db import Database
from tidings.ingest.pressure import IngestPressure
from tidings.ingest.validation import ValidEvent
from tidings.kit.sql import insert_ignoring_conflicts
from tidings.kit.time import utcnow
from tidings.models import Event, EventStatus
from tidings.workspace.keys import KeyCipher
from tidings.workspace.repository import WorkspaceRepository
from tidings.workspace.service import Scope, resolve_keys

logger = logging.getLogger(__name__)

MAX_BATCH = 2000
# SQLite checkpoints the WAL into the database inside the commit that takes the WAL past
# this many pages (default 1000). A batch of a few hundred events dirties that many index
# pages, so with the default nearly every ingest commit also ran a checkpoint (copy and
# fsync). The writer's connections let the WAL grow to about 40 MB first; docs/benchmarks.md.
WAL_AUTOCHECKPOINT_PAGES = 10_000
# The writer's own SQLite connection caches up to this many KiB of pages (SQLite's default:
# 2,000 KiB). Each event inserts into several indexes at scattered positions; with the
# default cache most of those pages were read again from the file for every batch. 32 MB
# cut a raw 800-row insert from 46-49 to 38-40 us per row (docs/benchmarks.md, Batch).
WRITER_CACHE_KIB = 32 * 1024


class Outcome(StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    UNAUTHORIZED = "unauthorized"


# Not frozen: a frozen dataclass sets each field through object.__setattr__, five times
# slower, and one of these is built per ingested event. Treat it as immutable.
@dataclass(slots=True)
class IngestItem:
    """An event and who sent it: an API key to resolve in the batch's transaction, or the
    scope of a signed source whose signature was already verified."""

    key: str | None
    event: ValidEvent
    scope: Scope | None = None

    def scope_in(self, scopes: dict[str, Scope]) -> Scope | None:
        if self.scope is not None:
            return self.scope
        return scopes.get(self.key) if self.key is not None else None


# Not frozen: a frozen dataclass sets each field through object.__setattr__, five times
# slower, and one of these is built per ingested event. Treat it as immutable.
@dataclass(slots=True)
class IngestResult:
    outcome: Outcome
    message_id: str
    event_id: int | None = None
    scope: Scope | None = None


class IngestWriter:
    def __init__(
        self,
        database: Database,
        cipher: KeyCipher,
        on_committed: Callable[[list[int]], None],
        pressure: IngestPressure | None = None,
    ) -> None:
        self.database = database
        # Told when each batch starts and ends, so that the in-process consumer can give way.
        self.pressure = pressure
        self.cipher = cipher
        self.on_committed = on_committed
        self._pending: list[tuple[list[IngestItem], asyncio.Future[list[IngestResult]]]] = []
        self._wakeup = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-writer")
        self._task: asyncio.Task[None] | None = None
        # Keys already checked against their ciphertext; each batch still confirms in SQL
        # that they exist and are not revoked, so revocation takes effect at once.
        self._verified: dict[str, Scope] = {}
        # SQLite: a connection of the writer's own, with a larger page cache.
        self._connection: Connection | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="ingest-writer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for _, future in self._pending:
            if not future.done():
                future.set_exception(RuntimeError("Tidings is shutting down"))
        self._executor.shutdown(wait=True)
        self._close_connection()

    def _close_connection(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):
                self._connection.close()
            self._connection = None

    def _unit_of_work(self) -> contextlib.AbstractContextManager[Session]:
        if not self.database.is_sqlite:
            return self.database.write()
        if self._connection is None:
            connection = self.database.write_engine.connect()
            connection.exec_driver_sql(f"PRAGMA cache_size=-{WRITER_CACHE_KIB}")
            connection.exec_driver_sql(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")
            connection.commit()
            self._connection = connection
        return self.database.write_on(self._connection)

    async def submit(self, items: list[IngestItem]) -> list[IngestResult]:
        """Write the items durably; returns one result per item, in order."""
        future: asyncio.Future[list[IngestResult]] = asyncio.get_running_loop().create_future()
        self._pending.append((items, future))
        self._wakeup.set()
        return await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            batch = self._take_batch()
            if not batch:
                continue
            if self._pending:
                self._wakeup.set()
            items = [item for request_items, _ in batch for item in request_items]
            if self.pressure is not None:
                self.pressure.started(len(batch))
            try:
                results = await loop.run_in_executor(self._executor, self.write, items)
            except Exception as exc:
                logger.exception("ingest batch of %d events failed", len(items))
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            finally:
                if self.pressure is not None:
                    self.pressure.finished()
            start = 0
            for request_items, future in batch:
                end = start + len(request_items)
                if not future.done():
                    future.set_result(results[start:end])
                start = end

    def _take_batch(self) -> list[tuple[list[IngestItem], asyncio.Future[list[IngestResult]]]]:
        batch: list[tuple[list[IngestItem], asyncio.Future[list[IngestResult]]]] = []
        count = 0
        while self._pending and (not batch or count + len(self._pending[0][0]) <= MAX_BATCH):
            entry = self._pending.pop(0)
            batch.append(entry)
            count += len(entry[0])
        return batch

    def _resolve(self, session: Session, keys: set[str]) -> dict[str, Scope]:
        known = {key: self._verified[key] for key in keys if key in self._verified}
        scopes: dict[str, Scope] = {}
        if known:
            active = WorkspaceRepository(session).active_key_ids(s.key_id for s in known.values())
            for key, scope in known.items():
                if scope.key_id in active:
                    scopes[key] = scope
                else:
                    self._verified.pop(key, None)
        unknown = keys - known.keys()
        if unknown:
            resolved = resolve_keys(session, self.cipher, unknown)
            scopes.update(resolved)
            if len(self._verified) < 1000:
                self._verified.update(resolved)
        return scopes

    def write(self, items: Sequence[IngestItem]) -> list[IngestResult]:
        """One transaction for the whole batch. Runs on the writer thread."""
        try:
            return self._write(items)
        except Exception:
            self._close_connection()  # the next batch starts on a fresh connection
            raise

    def _write(self, items: Sequence[IngestItem]) -> list[IngestResult]:
        now = utcnow()
        with self._unit_of_work() as session:
            scopes = self._resolve(session, {item.key for item in items if item.key is not None})
            owners: list[Scope | None] = []
            rows: list[Row] = []
            seen: set[Identity] = set()
            for item in items:
                scope = item.scope_in(scopes)
                owners.append(scope)
                if scope is None:
                    continue
                event = item.event
                identity = (scope.environment_id, event.source, event.message_id)
                if identity in seen:
                    continue
                seen.add(identity)
                # In the order of _COLUMNS.
                rows.append(
                    (
                        scope.workspace_id,
                        scope.environment_id,
                        event.source,
                        event.message_id,
                        event.type,
                        event.name,
                        event.user_id,
                        event.anonymous_id,
                        event.payload,
                        event.timestamp,
                        now,
                        EventStatus.RECEIVED,
                        0,
                    )
                )
            if not rows:
                inserted: dict[Identity, int] = {}
            elif self.database.is_sqlite:
                inserted = _insert_sqlite(session, rows, now)
            else:
                inserted = _insert_returning(session, rows)
        new_ids = sorted(inserted.values())
        if new_ids:
            try:
                self.on_committed(new_ids)
            except Exception:
                # The events are committed; the sweeper re-drives them.
                logger.exception("could not enqueue processing for %d events", len(new_ids))
        results = []
        for item, scope in zip(items, owners, strict=True):
            message_id = item.event.message_id
            if scope is None:
                results.append(IngestResult(Outcome.UNAUTHORIZED, message_id))
                continue
            event_id = inserted.pop((scope.environment_id, item.event.source, message_id), None)
            if event_id is not None:
                results.append(IngestResult(Outcome.ACCEPTED, message_id, event_id, scope))
            else:
                results.append(IngestResult(Outcome.DUPLICATE, message_id, None, scope))
        return results


Identity = tuple[str, str, str]
Row = tuple[Any, ...]

_COLUMNS = (
    "workspace_id",
    "environment_id",
    "source",
    "message_id",
    "type",
    "name",
    "user_id",
    "anonymous_id",
    "payload",
    "timestamp",
    "received_at",
    "status",
    "attempts",
)
_SQLITE_ROW = f"({', '.join('?' for _ in _COLUMNS)}, '[]', '[]', '[]')"
# Rows per INSERT statement, largest first: a batch is cut into these so that a few
# statements (each compiled once and cached by the driver) insert any number of rows.
_SQLITE_CHUNKS = (256, 64, 16, 4, 1)


@functools.cache
def _sqlite_insert(rows: int) -> str:
    return (
        f"INSERT INTO event ({', '.join(_COLUMNS)}, diagnostics, profile_diff, effects) "
        f"VALUES {', '.join(_SQLITE_ROW for _ in range(rows))}"
    )


def _sqlite_datetime(value: datetime | None) -> str | None:
    """The text SQLAlchemy's SQLite DATETIME stores, for naive UTC."""
    if value is None:
        return None
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return value.replace(tzinfo=None).isoformat(" ", "microseconds")


def _insert_sqlite(session: Session, rows: list[Row], received_at: datetime) -> dict[Identity, int]:
    """The SQLite hot path: one driver-level executemany.

    The unit of work holds SQLite's write lock (BEGIN IMMEDIATE), so checking for duplicates
    first cannot race another writer, and the new rows take consecutive ids after the
    current maximum.
    """
    connection = session.connection()
    existing: set[Identity] = set()
    groups: dict[tuple[str, str], list[str]] = {}
    for row in rows:
        groups.setdefault((row[1], row[2]), []).append(row[3])
    for (environment_id, source), message_ids in groups.items():
        # Filtered the way the unique index (environment_id, source, message_id) is built.
        for start in range(0, len(message_ids), 500):
            chunk = message_ids[start : start + 500]
            found = connection.exec_driver_sql(
                "SELECT message_id FROM event WHERE environment_id = ? AND source = ? "
                f"AND message_id IN ({', '.join('?' for _ in chunk)})",
                (environment_id, source, *chunk),
            )
            existing.update((environment_id, source, row[0]) for row in found)
    fresh = [row for row in rows if (row[1], row[2], row[3]) not in existing] if existing else rows
    if not fresh:
        return {}
    received = _sqlite_datetime(received_at)
    dumps = orjson.dumps
    values = [
        value
        for row in fresh
        for value in (
            *row[:8],
            dumps(row[8]).decode(),
            _sqlite_datetime(row[9]),
            received,
            row[11],
            row[12],
        )
    ]
    # Multi-row INSERTs rather than executemany: executemany takes the GIL back after every
    # row, and each time waits for the event loop's thread to let go of it (up to the
    # interpreter's switch interval), which made a busy server's batches many times slower.
    # One statement binds its rows at once and inserts them all without the GIL.
    width = len(_COLUMNS)
    start = 0
    for size in _SQLITE_CHUNKS:
        while len(fresh) - start >= size:
            connection.exec_driver_sql(
                _sqlite_insert(size), tuple(values[start * width : (start + size) * width])
            )
            start += size
    last_id = connection.exec_driver_sql("SELECT max(id) FROM event").scalar_one()
    first_id = last_id - len(fresh) + 1
    return {(row[1], row[2], row[3]): first_id + index for index, row in enumerate(fresh)}


def _insert_returning(session: Session, rows: list[Row]) -> dict[Identity, int]:
    """Postgres: INSERT … ON CONFLICT DO NOTHING RETURNING, which holds across processes."""
    table = Event.__table__
    statement = (
        insert_ignoring_conflicts(session, table)
        .values(
            [
                {
                    **dict(zip(_COLUMNS, row, strict=True)),
                    "diagnostics": [],
                    "profile_diff": [],
                    "effects": [],
                }
                for row in rows
            ]
        )
        .returning(table.c.id, table.c.environment_id, table.c.source, table.c.message_id)
    )
    return {
        (row.environment_id, row.source, row.message_id): row.id
        for row in session.connection().execute(statement)
    }
