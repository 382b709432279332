"""Event groups lock their rows in one order, and a failed group is logged with its size."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import text, update

from tests.conftest import Keys, wait_for
from tests.event.test_processing import _identify_for, _store_without_job
from tests.processes import WAIT_SECONDS, scaled
from tidings.event import batching
from tidings.eventstore.repository import EventRepository
from tidings.models import Event
from tidings.runtime import Runtime

# On Postgres, the two lockers are made to scan differently: one the table in its physical
# order, the other the primary key in id order. Without ORDER BY, each locks the rows in the
# order its scan meets them.
SEQUENTIAL_SCAN = (
    "enable_indexscan = off",
    "enable_bitmapscan = off",
    "enable_indexonlyscan = off",
)
INDEX_SCAN = ("enable_seqscan = off", "enable_bitmapscan = off")


@dataclass
class Lockers:
    """Threads locking sets of events, each in a unit of work of its own (on Postgres with
    its own query plan), and what each locked."""

    runtime: Runtime
    postgres: bool
    pids: list[int] = field(default_factory=list)
    results: dict[str, list[int]] = field(default_factory=dict)
    errors: list[BaseException] = field(default_factory=list)

    def locker(self, name: str, order: list[int], plan: tuple[str, ...]) -> Callable[[], None]:
        def run() -> None:
            try:
                with self.runtime.database.write() as (session, _):
                    if self.postgres:
                        for setting in plan:
                            session.execute(text(f"SET LOCAL {setting}"))
                        pid = session.execute(text("SELECT pg_backend_pid()")).scalar_one()
                        self.pids.append(pid)
                    locked = EventRepository(session).lock_many(order)
                    self.results[name] = [event.id for event in locked]
            except BaseException as exc:
                self.errors.append(exc)

        return run

    def waiting(self, count: int) -> Callable[[], bool]:
        """Whether `count` lockers wait for a lock (on SQLite, all wait for the one)."""

        def check() -> bool:
            if not self.postgres:
                return True
            with self.runtime.database.read() as session:
                blocked: int = session.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(:pids)"
                        " AND cardinality(pg_blocking_pids(pid)) > 0"
                    ),
                    {"pids": list(self.pids)},
                ).scalar_one()
            return blocked >= count

        return check


def test_overlapping_sets_locked_in_opposite_orders_do_not_deadlock(
    runtime: Runtime, keys: Keys
) -> None:
    low, middle, high = _store_without_job(
        runtime, keys.test, [_identify_for(f"locker-{n}", n) for n in range(3)]
    )
    postgres = runtime.database.engine.dialect.name == "postgresql"
    with runtime.database.write() as (session, _):
        # New row versions go to the end of the table: physical order high, middle, low.
        for event_id in (middle, low):
            session.execute(update(Event).where(Event.id == event_id).values(name="moved"))

    lockers = Lockers(runtime, postgres)
    held, release = threading.Event(), threading.Event()

    def hold_middle() -> None:
        with runtime.database.write() as (session, _):
            EventRepository(session).lock_many([middle])
            held.set()
            release.wait(scaled(WAIT_SECONDS))

    threads = [threading.Thread(target=hold_middle)]
    threads[0].start()
    try:
        assert held.wait(scaled(WAIT_SECONDS))
        threads.append(
            threading.Thread(target=lockers.locker("a", [high, middle, low], SEQUENTIAL_SCAN))
        )
        threads[-1].start()
        wait_for(lockers.waiting(1), what="the first locker to wait")
        threads.append(
            threading.Thread(target=lockers.locker("b", [low, middle, high], INDEX_SCAN))
        )
        threads[-1].start()
        wait_for(lockers.waiting(2), what="both lockers to wait")
        if not postgres:
            time.sleep(0.2)  # SQLite: both wait for the one write lock
    finally:
        release.set()
        for thread in threads:
            thread.join(scaled(WAIT_SECONDS))
    assert not any(thread.is_alive() for thread in threads)
    assert lockers.errors == []
    # Both got every row, each in id order.
    assert lockers.results == {"a": [low, middle, high], "b": [low, middle, high]}


def test_a_group_that_fails_while_locking_logs_its_real_size(
    runtime: Runtime, keys: Keys, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    ids = _store_without_job(runtime, keys.test, [_identify_for(f"group-{n}", n) for n in range(3)])
    real_lock_many = EventRepository.lock_many
    failures = iter([True])

    class DeadlockDetected(Exception):
        pass

    def failing_once(self: EventRepository, event_ids: Any) -> Any:
        if next(failures, False):
            raise DeadlockDetected("deadlock detected")
        return real_lock_many(self, event_ids)

    monkeypatch.setattr(EventRepository, "lock_many", failing_once)
    with caplog.at_level(logging.INFO, logger="tidings.event.batching"):
        outcome = batching.process_events(runtime.database, ids, 5)
    assert outcome.processed == ids
    messages = [record.getMessage() for record in caplog.records]
    assert "a group of 3 events failed (DeadlockDetected); processing each alone" in messages
