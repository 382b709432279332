"""The ingest writer thread: group commit, failures, revocation and shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy.event
from sqlalchemy import text

from tests.conftest import Keys, wait_for
from tests.outbox import recording
from tests.payloads import track
from tests.processes import WAIT_SECONDS, scaled
from tidings.errors import BadRequest
from tidings.ingest import writer as writer_module
from tidings.ingest.pressure import IngestPressure
from tidings.ingest.validation import validate_segment_event
from tidings.ingest.writer import IngestItem, IngestResult, IngestWriter, Outcome
from tidings.models import Event
from tidings.runtime import Runtime
from tidings.workspace import service as workspace_service


def item(key: str, message_id: str) -> IngestItem:
    return IngestItem(key, validate_segment_event(track(messageId=message_id)))


def stored(runtime: Runtime) -> list[str]:
    with runtime.database.read() as session:
        return sorted(event.message_id for event in session.query(Event))


def test_concurrent_requests_share_transactions(runtime: Runtime, keys: Keys) -> None:
    writer = IngestWriter(runtime.database, runtime.cipher)

    async def scenario() -> list[list[IngestResult]]:
        writer.start()
        try:
            return await asyncio.gather(
                *(writer.submit([item(keys.test, f"m-{n:02d}")]) for n in range(40))
            )
        finally:
            await writer.stop()

    with recording(runtime.database) as dispatched:
        answers = asyncio.run(scenario())
    committed = dispatched.outboxes
    assert [answer[0].outcome for answer in answers] == [Outcome.ACCEPTED] * 40
    assert [answer[0].message_id for answer in answers] == [f"m-{n:02d}" for n in range(40)]
    assert stored(runtime) == [f"m-{n:02d}" for n in range(40)]
    # Every new event was handed to the job engine once, in fewer batches than requests.
    assert sorted(dispatched.event_ids) == sorted(
        answer[0].event_id for answer in answers if answer[0].event_id is not None
    )
    assert len(committed) < 40


class Saturated(IngestPressure):
    def saturated(self) -> bool:
        return True


def test_under_a_burst_the_enqueuer_hands_many_batches_over_in_one_job(
    runtime: Runtime, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = IngestWriter(runtime.database, runtime.cipher, Saturated())

    def pause(seconds: float) -> None:
        """The enqueuer's pause (ENQUEUE_PAUSE_SECONDS, the module's only sleep): it lasts
        until the other four batches have handed over their ids, however long the machine
        takes to commit them."""
        wait_for(lambda: writer._new_ids.qsize() >= 4, what="the other batches' ids")

    monkeypatch.setattr(writer_module, "time", SimpleNamespace(sleep=pause))

    async def scenario() -> list[list[IngestResult]]:
        writer.start()
        try:
            # One after another: five batches, each committed before the next is sent.
            return [await writer.submit([item(keys.test, f"burst-{n}")]) for n in range(5)]
        finally:
            await writer.stop()

    with recording(runtime.database) as dispatched:
        answers = asyncio.run(scenario())
    assert [answer[0].outcome for answer in answers] == [Outcome.ACCEPTED] * 5
    (job,) = dispatched.outboxes
    assert [ids for _, ids in job.events] == [[answer[0].event_id for answer in answers]]


def test_duplicates_and_bad_keys_in_one_batch(runtime: Runtime, keys: Keys) -> None:
    writer = IngestWriter(runtime.database, runtime.cipher)
    writer.write([item(keys.test, "first")])
    results = writer.write(
        [
            item(keys.test, "first"),
            item(keys.test, "second"),
            item(keys.test, "second"),
            item("not-a-key", "third"),
            item(keys.production, "first"),
        ]
    )
    assert [result.outcome for result in results] == [
        Outcome.DUPLICATE,
        Outcome.ACCEPTED,
        Outcome.DUPLICATE,
        Outcome.UNAUTHORIZED,
        Outcome.ACCEPTED,
    ]
    assert stored(runtime) == ["first", "first", "second"]


def test_a_revoked_key_is_refused_by_the_next_batch(runtime: Runtime, keys: Keys) -> None:
    writer = IngestWriter(runtime.database, runtime.cipher)
    assert writer.write([item(keys.test, "before")])[0].outcome is Outcome.ACCEPTED
    with runtime.database.write() as (session, _):
        workspace_service.revoke_key(session, keys.test_id)
    assert writer.write([item(keys.test, "after")])[0].outcome is Outcome.UNAUTHORIZED
    # In a batch with another key's events, and with a duplicate of a stored event.
    results = writer.write(
        [item(keys.test, "after"), item(keys.production, "other"), item(keys.test, "before")]
    )
    assert [result.outcome for result in results] == [
        Outcome.UNAUTHORIZED,
        Outcome.ACCEPTED,
        Outcome.UNAUTHORIZED,
    ]
    assert stored(runtime) == ["before", "other"]


@contextlib.contextmanager
def statements(runtime: Runtime, writer: IngestWriter) -> Iterator[list[str]]:
    """The first word of each SQL statement the writer runs: on SQLite those on its own
    connection's driver cursor, which SQLAlchemy does not see; elsewhere the engine's."""
    log: list[str] = []
    if runtime.database.is_sqlite:
        driver = writer._own_connection().connection.driver_connection
        assert isinstance(driver, sqlite3.Connection)
        driver.set_trace_callback(lambda sql: log.append(sql.split()[0]))
        try:
            yield log
        finally:
            driver.set_trace_callback(None)
        return

    def record(connection: Any, cursor: Any, statement: str, *args: Any) -> None:
        log.append(statement.split()[0])

    sqlalchemy.event.listen(runtime.database.engine, "before_cursor_execute", record)
    try:
        yield log
    finally:
        sqlalchemy.event.remove(runtime.database.engine, "before_cursor_execute", record)


def test_a_batch_is_as_few_statements_as_can_be(runtime: Runtime, keys: Keys) -> None:
    """On SQLite up to 64 events are one INSERT that checks their key and commits by itself;
    a larger batch is a few INSERTs in one transaction. Elsewhere the keys are checked, then
    the events inserted by one statement."""
    writer = IngestWriter(runtime.database, runtime.cipher)
    writer.write([item(keys.test, "warm-up")])  # the key verified, the connection open
    with statements(runtime, writer) as small:
        writer.write([item(keys.test, f"small-{n}") for n in range(64)])
    with statements(runtime, writer) as large:
        writer.write([item(keys.test, f"large-{n}") for n in range(300)])
    if runtime.database.is_sqlite:
        assert small == ["INSERT"]
        assert large == ["BEGIN", "INSERT", "INSERT", "COMMIT"]
    else:
        assert small == large == ["SELECT", "INSERT"]
    assert len(stored(runtime)) == 365


def test_the_writer_stores_values_as_the_orm_does(runtime: Runtime, keys: Keys) -> None:
    """The same event, once inserted by the writer and once by the ORM, is stored alike
    (on SQLite: the same text for its times and its JSON)."""
    (result,) = IngestWriter(runtime.database, runtime.cipher).write([item(keys.test, "by-writer")])
    with runtime.database.write() as (session, _):
        written = session.get(Event, result.event_id)
        assert written is not None
        again = Event(
            **{
                column.key: getattr(written, column.key)
                for column in Event.__table__.columns
                if column.key not in ("id", "message_id")
            },
            message_id="by-orm",
        )
        session.add(again)
    columns = ", ".join(column.name for column in Event.__table__.columns if column.name != "id")
    query = text(f"SELECT {columns} FROM event WHERE message_id = :message_id")
    with runtime.database.read() as session:
        by_writer = session.execute(query, {"message_id": "by-writer"}).one()._asdict()
        by_orm = session.execute(query, {"message_id": "by-orm"}).one()._asdict()
    assert by_writer.pop("message_id") == "by-writer"
    assert by_orm.pop("message_id") == "by-orm"
    assert by_writer == by_orm
    assert by_writer["status"] == "received"
    assert by_writer["attempts"] == 0


def test_a_failed_batch_fails_its_requests_and_the_next_one_succeeds(
    runtime: Runtime, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = IngestWriter(runtime.database, runtime.cipher)
    real_write = writer._write
    calls = 0

    def flaky(items: Sequence[IngestItem]) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise OSError("disk I/O error")
        return real_write(items)

    monkeypatch.setattr(writer, "_write", flaky)

    async def scenario() -> tuple[BaseException | None, list[IngestResult]]:
        writer.start()
        try:
            try:
                await writer.submit([item(keys.test, "lost")])
                error = None
            except OSError as exc:
                error = exc
            return error, await writer.submit([item(keys.test, "kept")])
        finally:
            await writer.stop()

    error, results = asyncio.run(scenario())
    assert isinstance(error, OSError)
    assert results[0].outcome is Outcome.ACCEPTED
    assert stored(runtime) == ["kept"]


def test_stop_finishes_queued_requests_and_refuses_new_ones(
    runtime: Runtime, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = IngestWriter(runtime.database, runtime.cipher)
    real_write = writer._write
    writing = threading.Event()
    release = threading.Event()

    def slow(items: Sequence[IngestItem]) -> Any:
        writing.set()
        release.wait(scaled(WAIT_SECONDS))
        return real_write(items)

    monkeypatch.setattr(writer, "_write", slow)

    async def scenario() -> tuple[list[IngestResult], list[IngestResult], str]:
        writer.start()
        first = asyncio.ensure_future(writer.submit([item(keys.test, "in-flight")]))
        await asyncio.to_thread(writing.wait, 10)
        second = asyncio.ensure_future(writer.submit([item(keys.test, "queued")]))
        await asyncio.sleep(0)  # the second request is queued before stop() is called
        stopping = asyncio.ensure_future(writer.stop())
        await asyncio.sleep(0.05)
        release.set()
        await stopping
        try:
            await writer.submit([item(keys.test, "late")])
            refused = ""
        except RuntimeError as exc:
            refused = str(exc)
        return await first, await second, refused

    first, second, refused = asyncio.run(scenario())
    assert first[0].outcome is Outcome.ACCEPTED
    assert second[0].outcome is Outcome.ACCEPTED
    assert "shutting down" in refused
    assert stored(runtime) == ["in-flight", "queued"]


@pytest.mark.parametrize("size", [1, 63, 64, 65, 300, 600])
def test_each_new_event_gets_its_own_id(runtime: Runtime, keys: Keys, size: int) -> None:
    """Batches of every shape (one statement, several in a transaction), with duplicates
    of stored events mixed in: each result names the row that holds its event."""
    writer = IngestWriter(runtime.database, runtime.cipher)
    stored_before = [item(keys.test, f"old-{n}") for n in range(0, size, 7)]
    writer.write(stored_before)
    batch = [item(keys.test, f"old-{n}" if n % 7 == 0 else f"new-{n}") for n in range(size)]
    results = writer.write(batch)
    with runtime.database.read() as session:
        ids = {event.message_id: event.id for event in session.query(Event)}
    for n, result in enumerate(results):
        if n % 7 == 0:
            assert (result.outcome, result.event_id) == (Outcome.DUPLICATE, None)
        else:
            assert result.outcome is Outcome.ACCEPTED
            assert result.event_id == ids[f"new-{n}"]
    assert len(ids) == size


def test_one_unstorable_event_is_refused_alone_and_its_batch_is_stored(
    runtime: Runtime, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An event the database cannot take (here nested past what orjson serialises, as the
    parse-time limits now refuse) used to fail its whole group commit: every request in it,
    from every environment, got 503."""
    writer = IngestWriter(runtime.database, runtime.cipher)
    real_write = writer._write
    sizes: list[int] = []

    def observed(items: Sequence[IngestItem]) -> Any:
        sizes.append(len(items))
        if len(sizes) == 1:  # hold the first batch until all 21 requests are taken or queued
            wait_for(lambda: len(items) + writer._queue.qsize() >= 21, what="requests queued")
        return real_write(items)

    monkeypatch.setattr(writer, "_write", observed)
    deep: dict[str, Any] = {}
    for _ in range(300):
        deep = {"a": deep}
    bad = IngestItem(keys.production, validate_segment_event(track(messageId="deep")))
    bad.event.payload["properties"] = deep

    async def scenario() -> list[Any]:
        writer.start()
        try:
            return await asyncio.gather(
                writer.submit([item(keys.test, "first")]),
                *(writer.submit([item(keys.test, f"t-{n:02d}")]) for n in range(10)),
                writer.submit([bad]),
                *(writer.submit([item(keys.production, f"p-{n:02d}")]) for n in range(9)),
                return_exceptions=True,
            )
        finally:
            await writer.stop()

    answers = asyncio.run(scenario())
    refused = answers[11]
    assert isinstance(refused, BadRequest)
    assert refused.code == "unstorable_event"
    good = answers[:11] + answers[12:]
    assert all(answer[0].outcome is Outcome.ACCEPTED for answer in good), good
    # The batch holding the bad event was tried whole, then request by request.
    failed = 21 if sizes[0] == 21 else 20
    assert failed in sizes
    assert sizes[sizes.index(failed) + 1 :][:failed] == [1] * failed
    assert stored(runtime) == sorted(
        ["first", *(f"t-{n:02d}" for n in range(10)), *(f"p-{n:02d}" for n in range(9))]
    )
