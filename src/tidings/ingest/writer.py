"""Group commit for ingest.

Requests hand their events to one writer thread per process. While one batch is being
written, new requests queue up, and the next transaction takes them all: one commit (and
one fsync) serves many requests. A request is answered only after its batch has committed.

Each batch, in one transaction:
1. checks that each presented API key still exists and is not revoked, so revocation takes
   effect at once (a key's ciphertext is checked only the first time it is seen);
2. inserts the events, skipping any whose (environment, source, messageId) is stored
   already: those are duplicates and change nothing;
3. commits. The requests are then answered, and the new event ids handed to the job engine.

The SQL is `EventRepository.insert_new`'s. On SQLite the writer gives it a connection of its
own, in autocommit mode, where a batch of up to 64 events is a single statement that does
all three: every call into SQLite lets go of the GIL, and getting it back from the busy
event loop thread was most of a batch's time (measured with bench/ingest). On Postgres it runs in a
unit of work, with `INSERT ... ON CONFLICT DO NOTHING RETURNING`, which holds across
processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TypeVar

import psycopg
import sqlalchemy.exc
from sqlalchemy import Connection

from tidings.db import Database, Outbox
from tidings.errors import BadRequest
from tidings.eventstore.repository import EventRepository, Identity, InsertedEvents, NewEvent
from tidings.ingest.pressure import IngestPressure
from tidings.ingest.validation import ValidEvent
from tidings.kit.time import utcnow
from tidings.observability import metrics
from tidings.workspace.keys import KeyCipher
from tidings.workspace.service import Scope, resolve_keys

logger = logging.getLogger(__name__)

T = TypeVar("T")
# New events, by the id of their environment: the enqueuer queues a job per environment.
NewEvents = dict[str, list[int]]

MAX_BATCH = 2000
# SQLite checkpoints the WAL into the database inside the commit that takes the WAL past
# this many pages (default 1000). A batch of a few hundred events dirties that many index
# pages, so with the default nearly every ingest commit also ran a checkpoint (copy and
# fsync). The writer's connections let the WAL grow to about 40 MB first.
WAL_AUTOCHECKPOINT_PAGES = 10_000
# The writer's own SQLite connection caches up to this many KiB of pages (SQLite's default:
# 2,000 KiB). Each event inserts into several indexes at scattered positions; with the
# default cache most of those pages were read again from the file for every batch. A larger
# cache made each inserted row cheaper (measured with bench/batch); on the live server 16 MB
# ingested as fast as 32 MB with a smaller peak RSS, which the memory budget needs more.
WRITER_CACHE_KIB = 16 * 1024


# While the writer is saturated, the enqueuer waits this long before each job, so that one
# job carries the ids of many batches.
ENQUEUE_PAUSE_SECONDS = 0.05


class Outcome(StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    UNAUTHORIZED = "unauthorized"


# Not frozen: a frozen dataclass sets each field through object.__setattr__, which is much
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


# Not frozen: a frozen dataclass sets each field through object.__setattr__, which is much
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
        pressure: IngestPressure | None = None,
    ) -> None:
        self.database = database
        # Told when each batch starts and ends, so that the in-process consumer can give way.
        self.pressure = pressure
        self.cipher = cipher
        # Requests waiting for the writer thread; None asks it to stop.
        self._queue: queue.SimpleQueue[Pending | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        # New event ids on their way to the job engine; None asks the thread to stop.
        self._new_ids: queue.SimpleQueue[NewEvents | None] = queue.SimpleQueue()
        self._enqueuer: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # Keys already checked against their ciphertext; each batch still confirms in SQL
        # that they exist and are not revoked, so revocation takes effect at once.
        self._verified: dict[str, Scope] = {}
        # SQLite: a connection of the writer's own, in autocommit, with a larger page cache.
        self._connection: Connection | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._run, name="ingest-writer", daemon=True)
        self._thread.start()
        self._enqueuer = threading.Thread(
            target=self._enqueue_committed, name="ingest-enqueuer", daemon=True
        )
        self._enqueuer.start()

    async def stop(self) -> None:
        """Finish the batch being written, then fail whatever is still waiting."""
        if self._thread is not None:
            self._queue.put(None)
            await asyncio.to_thread(self._thread.join)
            self._thread = None
        if self._enqueuer is not None:
            self._new_ids.put(None)
            await asyncio.to_thread(self._enqueuer.join)
            self._enqueuer = None
        while True:
            try:
                entry = self._queue.get_nowait()
            except queue.Empty:
                break
            if entry is not None and not entry[1].done():
                entry[1].set_exception(RuntimeError("Tidings is shutting down"))
        self._close_connection()

    def _close_connection(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):
                self._connection.close()
            self._connection = None

    def _own_connection(self) -> Connection:
        """The writer's SQLite connection. No transaction is begun on it through SQLAlchemy:
        the driver is in autocommit mode (db.py), and `EventRepository.insert_new` runs its
        statements on the driver's cursor, a lone INSERT committing by itself."""
        if self._connection is None:
            connection = self.database.write_engine.connect()
            cursor = connection.connection.cursor()
            cursor.execute(f"PRAGMA cache_size=-{WRITER_CACHE_KIB}")
            cursor.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")
            cursor.close()
            self._connection = connection
        return self._connection

    async def submit(self, items: list[IngestItem]) -> list[IngestResult]:
        """Write the items durably; returns one result per item, in order."""
        if self._loop is None or self._thread is None:
            raise RuntimeError("The ingest writer is not running (Tidings is shutting down)")
        future: asyncio.Future[list[IngestResult]] = self._loop.create_future()
        self._queue.put((items, future))
        return await future

    def has_verified(self, key: str) -> bool:
        """Whether the key was matched against its ciphertext already (and not revoked when
        last looked up)."""
        return key in self._verified

    async def key_scope(self, key: str) -> Scope | None:
        """The key's scope if it matches its ciphertext and was not revoked when last looked
        up; None for an unknown or revoked key. Checked before a request's body, so that an
        unauthenticated request is a 401 whatever it sends; a key seen before costs nothing
        (each batch still confirms in SQL that it is not revoked)."""
        scope = self._verified.get(key)
        if scope is not None:
            return scope
        return (await asyncio.to_thread(self._candidates, {key})).get(key)

    def _run(self) -> None:
        """The writer thread: takes whatever requests are waiting, writes them in one
        transaction, hands the results to the event loop and the new ids to the enqueuer.

        The thread takes its next batch itself, as soon as the last one is written, rather
        than waiting for the event loop to hand it over: a loop busy with requests would
        otherwise leave the writer idle between batches."""
        carry: Pending | None = None
        while True:
            entry = carry if carry is not None else self._queue.get()
            if entry is None:
                return
            batch, carry, stopping = _take_queued(self._queue, entry, lambda e: len(e[0]))
            self._write_batch(batch)
            if stopping:
                return

    def _write_batch(self, batch: list[Pending]) -> None:
        if self.pressure is not None:
            self.pressure.started(len(batch))
        try:
            self._write_isolating(batch)
        finally:
            if self.pressure is not None:
                self.pressure.finished()

    def _write_isolating(self, batch: list[Pending]) -> None:
        """Write the batch in one transaction. If that fails for a reason other than the
        storage itself (a value one request brought), write each request alone, so only
        the request at fault is refused."""
        items = [item for request_items, _ in batch for item in request_items]
        try:
            results, new_ids = self._write(items)
        except Exception as exc:
            self._close_connection()  # the next write starts on a fresh connection
            if len(batch) > 1 and not storage_failure(exc):
                logger.warning(
                    "ingest batch of %d requests failed (%s); writing them one by one",
                    len(batch),
                    exc,
                )
                for pending in batch:
                    self._write_isolating([pending])
                return
            logger.exception("ingest batch of %d events failed", len(items))
            self._deliver(batch, None, exc if storage_failure(exc) else _unstorable(exc))
            return
        self._deliver(batch, results, None)
        if new_ids:
            self._new_ids.put(new_ids)

    def _deliver(
        self, batch: list[Pending], results: list[IngestResult] | None, error: Exception | None
    ) -> None:
        assert self._loop is not None
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting
            self._loop.call_soon_threadsafe(_settle, batch, results, error)

    def _enqueue_committed(self) -> None:
        """The enqueuer thread: hands new event ids to the job engine, all that have piled
        up in one job. Enqueueing is a write to the job storage; on the writer thread it
        took as long as a batch of inserts (measured with bench/ingest), and the requests need not
        wait for it: the sweeper re-drives any event whose job was lost."""
        carry: NewEvents | None = None
        while True:
            ids = carry if carry is not None else self._new_ids.get()
            if ids is None:
                return
            if self.pressure is not None and self.pressure.saturated():
                # A burst: hand the ids over in fewer, larger jobs. Each enqueue takes the
                # interpreter a few times from the requests, and the in-process consumer
                # waits for the burst to end anyway.
                time.sleep(ENQUEUE_PAUSE_SECONDS)
            taken, carry, stopping = _take_queued(self._new_ids, ids, _count)
            merged: NewEvents = {}
            for chunk in taken:
                for environment_id, event_ids in chunk.items():
                    merged.setdefault(environment_id, []).extend(event_ids)
            self._committed(merged)
            if stopping:
                return

    def _committed(self, new_ids: NewEvents) -> None:
        if not new_ids:
            return
        try:
            self.database.dispatch(Outbox(events=list(new_ids.items())))
        except Exception:
            # The events are committed; the sweeper re-drives them.
            logger.exception("could not enqueue processing for %d events", _count(new_ids))

    def _candidates(self, keys: set[str]) -> dict[str, Scope]:
        """The scopes of the presented keys that match their ciphertext: from the cache, or
        looked up (only the first time a key is seen). The batch's transaction then
        confirms that each is still there and not revoked."""
        candidates = {key: self._verified[key] for key in keys if key in self._verified}
        unknown = keys - candidates.keys()
        if unknown:
            with self.database.read() as session:
                resolved = resolve_keys(session, self.cipher, unknown)
            candidates.update(resolved)
            if len(self._verified) < 1000:
                self._verified.update(resolved)
        return candidates

    def _revoked(self, candidates: dict[str, Scope], inactive: set[str]) -> set[str]:
        """The presented keys found revoked or gone, forgotten as verified."""
        revoked = {key for key, scope in candidates.items() if scope.key_id in inactive}
        for key in revoked:
            self._verified.pop(key, None)
        return revoked

    def write(self, items: Sequence[IngestItem]) -> list[IngestResult]:
        """One transaction for the whole batch, then its processing enqueued: the writer
        thread's work, callable directly (tests, tools)."""
        try:
            results, new_ids = self._write(items)
        except Exception:
            self._close_connection()
            raise
        self._committed(new_ids)
        return results

    def _write(self, items: Sequence[IngestItem]) -> tuple[list[IngestResult], NewEvents]:
        now = utcnow()
        candidates = self._candidates({item.key for item in items if item.key is not None})
        owners, rows = _rows(items, candidates)
        inserted = self._insert(rows, now) if rows else InsertedEvents({}, set())
        revoked = self._revoked(candidates, inserted.inactive_keys)
        ids = inserted.ids
        new_ids: NewEvents = {}
        for (environment_id, _, _), new_id in sorted(ids.items(), key=lambda i: i[1]):
            new_ids.setdefault(environment_id, []).append(new_id)
        results = []
        duplicates = 0
        for item, scope in zip(items, owners, strict=True):
            message_id = item.event.message_id
            if scope is None:
                results.append(IngestResult(Outcome.UNAUTHORIZED, message_id))
                continue
            event_id = ids.pop((scope.environment_id, item.event.source, message_id), None)
            if event_id is not None:
                results.append(IngestResult(Outcome.ACCEPTED, message_id, event_id, scope))
            elif item.scope is None and item.key in revoked:
                results.append(IngestResult(Outcome.UNAUTHORIZED, message_id))
            else:
                duplicates += 1
                results.append(IngestResult(Outcome.DUPLICATE, message_id, None, scope))
        metrics.events_received(_count(new_ids), duplicates)
        return results, new_ids

    def _insert(self, rows: list[NewEvent], now: datetime) -> InsertedEvents:
        """One transaction for the rows (each inserted only while its key is active)."""
        if self.database.is_sqlite:
            # The hot path: on the writer's own connection, while this process holds the
            # write lock; only when rows were left out is anything queried.
            with self.database.exclusive():
                return EventRepository.insert_new(self._own_connection(), rows, received_at=now)
        with self.database.write() as (session, _):
            return EventRepository.insert_new(session.connection(), rows, received_at=now)


def storage_failure(error: Exception) -> bool:
    """Whether a failed write is the storage's fault (unreachable, locked, timed out), as
    opposed to a value in the batch that could not be stored."""
    return isinstance(
        error,
        sqlalchemy.exc.OperationalError
        | sqlalchemy.exc.InterfaceError
        | sqlite3.OperationalError
        | sqlite3.InterfaceError
        | psycopg.OperationalError
        | psycopg.InterfaceError
        | OSError,
    )


def _unstorable(error: Exception) -> BadRequest:
    return BadRequest(
        "The event could not be stored: a value in it cannot be written to the database "
        f"({type(error).__name__}). Check it against the input limits in docs/security.md "
        "and send it corrected; sending it unchanged will fail again.",
        code="unstorable_event",
    )


def _rows(
    items: Sequence[IngestItem], scopes: dict[str, Scope]
) -> tuple[list[Scope | None], list[NewEvent]]:
    """Each item's owner (None: no valid key), and the rows to insert, one per distinct
    (environment, source, messageId), each naming the API key to check (None: a signed
    source's event, whose signature was checked already)."""
    owners: list[Scope | None] = []
    rows: list[NewEvent] = []
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
        rows.append(
            NewEvent(
                workspace_id=scope.workspace_id,
                environment_id=scope.environment_id,
                source=event.source,
                message_id=event.message_id,
                type=event.type,
                name=event.name,
                user_id=event.user_id,
                anonymous_id=event.anonymous_id,
                payload=event.payload,
                timestamp=event.timestamp,
                key_id=scope.key_id if item.scope is None else None,
            )
        )
    return owners, rows


def _count(new_ids: NewEvents) -> int:
    return sum(len(event_ids) for event_ids in new_ids.values())


def _take_queued(
    source: queue.SimpleQueue[T | None], first: T, size: Callable[[T], int]
) -> tuple[list[T], T | None, bool]:
    """`first` and what else is queued in `source` now, up to MAX_BATCH by `size` (`first`
    whatever its size): the entries taken, the next one if it did not fit (to be taken
    first next time), and whether the stop marker (None) was met."""
    taken = [first]
    count = size(first)
    while count < MAX_BATCH:
        try:
            entry = source.get_nowait()
        except queue.Empty:
            break
        if entry is None:
            return taken, None, True
        if count + size(entry) > MAX_BATCH:
            return taken, entry, False
        taken.append(entry)
        count += size(entry)
    return taken, None, False


def _settle(
    batch: list[Pending], results: list[IngestResult] | None, error: Exception | None
) -> None:
    """On the event loop: resolve each request's future with its slice of the results."""
    start = 0
    for request_items, future in batch:
        end = start + len(request_items)
        if not future.done():
            if error is not None:
                future.set_exception(error)
            else:
                assert results is not None
                future.set_result(results[start:end])
        start = end


Pending = tuple[list[IngestItem], "asyncio.Future[list[IngestResult]]"]
