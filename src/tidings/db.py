"""Engine and units of work.

One unit of work is one transaction, committed once at the edge (a request or a job). On
SQLite, a unit that writes starts with `BEGIN IMMEDIATE`, so it takes the write lock before it
reads and never fails half-way on a lock upgrade; readers use plain deferred transactions and
see a WAL snapshot.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext, suppress
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from tidings.config import Settings

_WRITE = "tidings_write"


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


class Database:
    """Hands out units of work: `with db.write() as session:` commits once at the end."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.write_engine = engine.execution_options(**{_WRITE: True})
        self._read = sessionmaker(bind=engine, expire_on_commit=False)
        self._write = sessionmaker(bind=self.write_engine, expire_on_commit=False)
        self._write_lock = threading.RLock() if engine.dialect.name == "sqlite" else None

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def write(self) -> Iterator[Session]:
        if self._write_lock is None:
            with self._write() as session, session.begin():
                yield session
            return
        # SQLite has one writer at a time. Threads of this process queue on a lock, which
        # wakes the next one at once, instead of sleeping in SQLite's busy handler.
        with self._write_lock, self._write() as session, session.begin():
            yield session

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """This process's turn to write, without a transaction: for a writer whose unit of
        work is a single statement on its own connection (SQLite: the same lock that
        `write()` takes; elsewhere nothing)."""
        with self._write_lock or nullcontext():
            yield

    @contextmanager
    def write_driver(self) -> Iterator[Any]:
        """A write transaction on the driver's own connection: yields a DB-API cursor, for a
        hot path of a few fixed statements where a Session's bookkeeping would cost more
        than the SQL. The same lock and `BEGIN IMMEDIATE` as `write()`; committed at the
        end, rolled back on error."""
        with self._write_lock or nullcontext():
            connection = self.engine.raw_connection()
            try:
                cursor = connection.cursor()
                if self._write_lock is not None:
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
