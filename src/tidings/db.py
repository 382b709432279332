"""Engine and units of work.

One unit of work is one transaction, committed once at the edge (a request or a job). On
SQLite, a unit that writes starts with `BEGIN IMMEDIATE`, so it takes the write lock before it
reads and never fails half-way on a lock upgrade; readers use plain deferred transactions and
see a WAL snapshot.

A unit of work also carries an `Outbox`: what must happen once its rows are committed (jobs
to queue, inbox streams to wake). `Database.write()` hands it to the process's `Dispatcher`
after the commit, and drops it when the transaction rolls back.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

import orjson
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from tidings.config import Settings

logger = logging.getLogger(__name__)

_WRITE = "tidings_write"

T = TypeVar("T")


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def _create_private_file(path: Path) -> None:
    """Create the SQLite file readable by its owner only (0600), like `secret_key`. SQLite
    gives its -wal and -shm files the database file's permissions."""
    with suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def create_database_engine(settings: Settings) -> Engine:
    url = settings.resolved_database_url()
    if url.startswith("sqlite"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            json_serializer=_json_dumps,
            json_deserializer=orjson.loads,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=8,
            max_overflow=16,
        )
        if engine.url.database and engine.url.database != ":memory:":
            _create_private_file(Path(engine.url.database))
        synchronous = settings.sqlite_synchronous.upper()

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            # Take transaction control away from the driver so that "begin" below decides.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA synchronous={synchronous}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(connection: Any) -> None:
            if connection.get_execution_options().get(_WRITE):
                connection.exec_driver_sql("BEGIN IMMEDIATE")
            else:
                connection.exec_driver_sql("BEGIN")

        return engine
    return create_engine(
        url,
        json_serializer=_json_dumps,
        json_deserializer=orjson.loads,
        pool_size=10,
        max_overflow=20,
        pool_pre_ping=True,
    )


class Scheduled(Protocol):
    """A message as the outbox needs it (message.service.AcceptedMessage is one)."""

    @property
    def message_id(self) -> str: ...

    @property
    def send_at(self) -> datetime | None: ...


@dataclass
class Outbox:
    """What a unit of work asks to happen after its commit. Each list holds plain values, so
    nothing here touches the job engine before the rows it points at are visible.

    - `events`: new events to process, by environment;
    - `messages`: (message id, when to process it or None for now, environment or None);
    - `runs`: (automation run pk, when to advance it or None for now);
    - `deliveries`: (delivery id, when to attempt it or None for now);
    - `inboxes`: (environment, user) whose open inbox streams to wake;
    - `scans`: audiences whose condition changed, to evaluate every profile against;
    - `webhooks`: (outbound webhook delivery id, when to attempt it or None for now);
    - `bulk_messages`: as `messages`, for a broadcast's: queued below every other job;
    - `broadcasts`: (broadcast pk, its cursor, when to release its next chunk or None);
    - `replays`: automation replays to hand to a replay process.
    """

    events: list[tuple[str, list[int]]] = field(default_factory=list)
    messages: list[tuple[str, datetime | None, str | None]] = field(default_factory=list)
    runs: list[tuple[int, datetime | None]] = field(default_factory=list)
    deliveries: list[tuple[int, datetime | None]] = field(default_factory=list)
    inboxes: list[tuple[str, str]] = field(default_factory=list)
    scans: list[int] = field(default_factory=list)
    webhooks: list[tuple[int, datetime | None]] = field(default_factory=list)
    bulk_messages: list[tuple[str, datetime | None, str | None]] = field(default_factory=list)
    broadcasts: list[tuple[int, int, datetime | None]] = field(default_factory=list)
    replays: list[int] = field(default_factory=list)

    def add_events(self, environment_id: str, event_ids: list[int]) -> None:
        self.events.append((environment_id, event_ids))

    def add_message(
        self, message_id: str, at: datetime | None = None, environment_id: str | None = None
    ) -> None:
        self.messages.append((message_id, at, environment_id))

    def add_messages(self, messages: Iterable[Scheduled], environment_id: str | None) -> None:
        self.messages.extend((m.message_id, m.send_at, environment_id) for m in messages)

    def add_run(self, run_pk: int, at: datetime | None = None) -> None:
        self.runs.append((run_pk, at))

    def add_delivery(self, delivery_id: int, at: datetime | None = None) -> None:
        self.deliveries.append((delivery_id, at))

    def wake_inbox(self, environment_id: str, user_id: str) -> None:
        self.inboxes.append((environment_id, user_id))

    def add_scan(self, audience_pk: int) -> None:
        self.scans.append(audience_pk)

    def add_webhook(self, delivery_id: int, at: datetime | None = None) -> None:
        self.webhooks.append((delivery_id, at))

    def add_bulk_messages(self, messages: Iterable[Scheduled], environment_id: str | None) -> None:
        self.bulk_messages.extend((m.message_id, m.send_at, environment_id) for m in messages)

    def add_broadcast(self, broadcast_pk: int, cursor: int, at: datetime | None = None) -> None:
        self.broadcasts.append((broadcast_pk, cursor, at))

    def add_replay(self, replay_pk: int) -> None:
        self.replays.append(replay_pk)

    def extend(self, other: Outbox) -> None:
        """Take another outbox's work: a savepoint's, once the savepoint has held."""
        self.events.extend(other.events)
        self.messages.extend(other.messages)
        self.runs.extend(other.runs)
        self.deliveries.extend(other.deliveries)
        self.inboxes.extend(other.inboxes)
        self.scans.extend(other.scans)
        self.webhooks.extend(other.webhooks)
        self.bulk_messages.extend(other.bulk_messages)
        self.broadcasts.extend(other.broadcasts)
        self.replays.extend(other.replays)

    def __bool__(self) -> bool:
        return bool(
            self.events
            or self.messages
            or self.runs
            or self.deliveries
            or self.inboxes
            or self.scans
            or self.webhooks
            or self.bulk_messages
            or self.broadcasts
            or self.replays
        )


class Dispatcher(Protocol):
    """Carries out a committed unit of work's outbox (the job engine, in a running process)."""

    def dispatch(self, outbox: Outbox) -> None: ...


@dataclass
class LockUse:
    """What one kind of thread did with the write lock: how often it took it, and the
    seconds it waited for it and held it."""

    acquisitions: int = 0
    waited: float = 0.0
    held: float = 0.0


def thread_kind(name: str) -> str:
    """A thread's name without its number (`tidings-delivery_2` → `tidings-delivery`): one
    label for the threads of a pool."""
    return name.rstrip("0123456789").rstrip("_-") or name


class WriteLock:
    """SQLite's one writer at a time, among this process's threads: a re-entrant lock that
    also counts, by kind of thread, how long each waited for it and held it (the outermost
    hold only). The write lock is what the consumer, the ingest writer and the deliveries
    of `tidings serve` take turns at, so its use says which of them a busy server waits on
    (`tidings_write_lock_*` in the scrape)."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._depth = threading.local()
        self._use: dict[str, LockUse] = {}
        self._use_lock = threading.Lock()

    def __enter__(self) -> None:
        depth: int = getattr(self._depth, "value", 0)
        started = time.perf_counter()
        self._lock.acquire()
        self._depth.value = depth + 1
        if depth == 0:
            self._depth.since = now = time.perf_counter()
            self._depth.waited = now - started

    def __exit__(self, *exc: object) -> None:
        depth: int = self._depth.value - 1
        self._depth.value = depth
        if depth:
            self._lock.release()
            return
        held = time.perf_counter() - self._depth.since
        waited: float = self._depth.waited
        self._lock.release()  # counted after: the next writer need not wait for it
        kind = thread_kind(threading.current_thread().name)
        with self._use_lock:
            use = self._use.get(kind)
            if use is None:
                use = self._use[kind] = LockUse()
            use.acquisitions += 1
            use.waited += waited
            use.held += held

    def use(self) -> dict[str, LockUse]:
        """The counts so far, by kind of thread."""
        with self._use_lock:
            return {
                kind: LockUse(use.acquisitions, use.waited, use.held)
                for kind, use in self._use.items()
            }


class Database:
    """Hands out units of work: `with db.write() as (session, outbox):` commits once at the
    end, then dispatches the outbox."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # Set once the process's job engine exists (runtime.build_runtime). Without one (a
        # CLI command, a test of a service) the outbox is dropped: the rows are the truth,
        # and a consumer's start re-drives whatever they leave pending.
        self.dispatcher: Dispatcher | None = None
        # Run at the end of each `write()`, before its commit, in its transaction: work the
        # unit of work noted on its session (runtime.build_runtime sets them).
        self.before_commit: list[Callable[[Session, Outbox], None]] = []
        self.write_engine = engine.execution_options(**{_WRITE: True})
        self._read = sessionmaker(bind=engine, expire_on_commit=False)
        self._write = sessionmaker(bind=self.write_engine, expire_on_commit=False)
        self.write_lock = WriteLock() if engine.dialect.name == "sqlite" else None
        self._grouped = (
            _GroupCommit(self.write_lock, self._driver_transaction)
            if self.write_lock is not None
            else None
        )

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def write(self) -> Iterator[tuple[Session, Outbox]]:
        """One transaction and its outbox; the outbox is dispatched after the commit."""
        outbox = Outbox()
        # SQLite has one writer at a time. Threads of this process queue on a lock, which
        # wakes the next one at once, instead of sleeping in SQLite's busy handler.
        with self.write_lock or nullcontext(), self._write() as session, session.begin():
            yield session, outbox
            for hook in self.before_commit:
                hook(session, outbox)
        self.dispatch(outbox)

    def dispatch(self, outbox: Outbox) -> None:
        """Carry out the outbox of work already committed (the ingest writer commits on a
        connection of its own, and hands its new events here)."""
        if not outbox or self.dispatcher is None:
            return
        try:
            self.dispatcher.dispatch(outbox)
        except Exception:
            # The rows are committed and are the truth: the sweeper re-drives them. A request
            # whose data is committed must not answer 5xx (its sender would retry it).
            logger.exception("could not dispatch a committed unit of work's outbox")

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """This process's turn to write, without a transaction: for a writer whose unit of
        work is a single statement on its own connection (SQLite: the same lock that
        `write()` takes; elsewhere nothing)."""
        with self.write_lock or nullcontext():
            yield

    def write_driver(self, work: Callable[[Any], T]) -> T:
        """`work(cursor)` in a write transaction on the driver's own connection, with a DB-API
        cursor: for a hot path of a few fixed statements where a Session's bookkeeping would
        cost more than the SQL. Returns once the transaction holding it has committed.

        On SQLite, the works that this process's threads hand over while another
        transaction of theirs is being written share the next one (group commit): one
        commit, and one fsync, for all of them. If that transaction fails, each of its
        works is written again alone, so only the one at fault fails."""
        if self._grouped is not None:
            return self._grouped.run(work)
        with self._driver_transaction() as cursor:
            return work(cursor)

    @contextmanager
    def _driver_transaction(self) -> Iterator[Any]:
        """The same lock and `BEGIN IMMEDIATE` as `write()`; committed at the end, rolled
        back on error."""
        with self.write_lock or nullcontext():
            connection = self.engine.raw_connection()
            try:
                cursor = connection.cursor()
                if self.write_lock is not None:
                    cursor.execute("BEGIN IMMEDIATE")
                yield cursor
                cursor.close()
                connection.commit()
            except BaseException:
                connection.rollback()
                raise
            finally:
                connection.close()

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self._read() as session, session.begin():
            yield session

    def dispose(self) -> None:
        self.engine.dispose()


@dataclass
class _Work(Generic[T]):
    run: Callable[[Any], T]
    done: bool = False
    result: T | None = None
    error: BaseException | None = None


class _GroupCommit:
    """Group commit for `Database.write_driver`, as the ingest writer does it for events:
    the first thread to arrive while no transaction is being written writes one for every
    work waiting, its own included; the threads that arrive meanwhile wait for it, and the
    first of them whose work is left writes the next. The writing thread takes the write
    lock before it gathers the works, so those handed over while it waited for its turn
    share its transaction too."""

    def __init__(self, lock: WriteLock, transaction: Callable[[], Any]) -> None:
        self._lock = lock
        self._transaction = transaction
        self._changed = threading.Condition()
        self._waiting: list[_Work[Any]] = []
        self._writing = False

    def run(self, work: Callable[[Any], T]) -> T:
        mine: _Work[T] = _Work(work)
        with self._changed:
            self._waiting.append(mine)
            while self._writing and not mine.done:
                self._changed.wait()
            lead = not mine.done
            if lead:
                self._writing = True
        if lead:
            try:
                with self._lock:
                    with self._changed:
                        batch, self._waiting = self._waiting, []
                    self._write(batch)
            finally:
                with self._changed:
                    self._writing = False
                    self._changed.notify_all()
        if mine.error is not None:
            raise mine.error
        return mine.result  # type: ignore[return-value]

    def _write(self, batch: list[_Work[Any]]) -> None:
        try:
            with self._transaction() as cursor:
                results = [work.run(cursor) for work in batch]
        except BaseException as exc:
            if len(batch) == 1:
                batch[0].error, batch[0].done = exc, True
                return
            for work in batch:
                self._write([work])
            return
        for work, result in zip(batch, results, strict=True):
            work.result, work.done = result, True
