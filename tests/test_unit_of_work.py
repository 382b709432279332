"""`Database.write()`: one transaction, and its outbox dispatched after the commit only."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from tests.outbox import recording
from tidings.db import Outbox, WriteLock, thread_kind
from tidings.kit.time import utcnow
from tidings.models import WorkerLease
from tidings.runtime import Runtime


def _lease(lease_id: str) -> WorkerLease:
    now = utcnow()
    return WorkerLease(id=lease_id, hostname="h", pid=1, started_at=now, heartbeat_at=now)


def _write_then_fail(runtime: Runtime) -> None:
    with runtime.database.write() as (session, outbox):
        session.add(_lease("rolled-back"))
        outbox.add_run(42)
        raise RuntimeError("rolled back")


def test_the_outbox_is_dispatched_after_the_commit_and_dropped_on_a_rollback(
    runtime: Runtime,
) -> None:
    with recording(runtime.database) as dispatched:
        with runtime.database.write() as (session, outbox):
            session.add(_lease("committed"))
            outbox.add_run(41)
        assert [outbox.runs for outbox in dispatched.outboxes] == [[(41, None)]]

        with pytest.raises(RuntimeError):
            _write_then_fail(runtime)
        assert dispatched.runs == [41]

    seen: list[bool] = []

    class Checking:
        def dispatch(self, outbox: Outbox) -> None:
            # Another unit of work already sees the row: the commit came first.
            with runtime.database.read() as session:
                seen.append(session.get(WorkerLease, "visible") is not None)

    runtime.database.dispatcher = Checking()
    with runtime.database.write() as (session, outbox):
        session.add(_lease("visible"))
        outbox.add_run(43)
    assert seen == [True]
    with runtime.database.read() as session:
        assert session.get(WorkerLease, "rolled-back") is None


def test_a_failing_dispatcher_does_not_undo_or_fail_a_committed_unit(
    runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken:
        def dispatch(self, outbox: Outbox) -> None:
            raise ConnectionError("job storage unreachable")

    runtime.database.dispatcher = Broken()
    with (
        caplog.at_level(logging.ERROR, logger="tidings.db"),
        runtime.database.write() as (session, outbox),
    ):
        session.add(_lease("kept"))
        outbox.add_run(44)
    assert "could not dispatch" in caplog.text
    with runtime.database.read() as session:
        assert session.get(WorkerLease, "kept") is not None


def test_an_empty_outbox_is_not_dispatched(runtime: Runtime) -> None:
    with recording(runtime.database) as dispatched, runtime.database.write() as (session, _):
        session.add(_lease("quiet"))
    assert dispatched.outboxes == []


def test_the_write_lock_counts_each_outermost_hold_by_kind_of_thread() -> None:
    lock = WriteLock()
    spans: list[float] = []

    def hold_twice() -> None:
        with lock:
            started = time.perf_counter()
            with lock:  # re-entered: the same hold
                pass
            spans.append(time.perf_counter() - started)

    threads = [threading.Thread(target=hold_twice, name=f"tidings-delivery_{n}") for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with lock:
        pass

    use = lock.use()
    assert set(use) == {"tidings-delivery", threading.current_thread().name}
    pool = use["tidings-delivery"]
    assert pool.acquisitions == 2
    assert pool.held >= sum(spans)
    assert pool.waited >= 0
    assert use[threading.current_thread().name].acquisitions == 1


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("tidings-delivery_3", "tidings-delivery"),
        ("Worker-12", "Worker"),
        ("ingest-writer", "ingest-writer"),
        ("MainThread", "MainThread"),
        ("7", "7"),
    ],
)
def test_a_thread_kind_is_its_name_without_its_number(name: str, kind: str) -> None:
    assert thread_kind(name) == kind


def test_units_of_work_take_the_write_lock_on_sqlite_only(runtime: Runtime) -> None:
    database = runtime.database
    if not database.is_sqlite:
        assert database.write_lock is None  # the server orders its writers itself
        return
    assert database.write_lock is not None
    before = database.write_lock.use().get(threading.current_thread().name)
    with database.write() as (session, _):
        session.add(_lease("counted"))
    after = database.write_lock.use()[threading.current_thread().name]
    assert after.acquisitions == (before.acquisitions if before else 0) + 1
