"""`Database.write_driver`: fixed statements on the driver's cursor, committed before it
returns; on SQLite, the works of threads that arrive while a transaction is being written
share the next one (group commit)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from tests.conftest import wait_for
from tidings.db import Database
from tidings.kit.time import utcnow
from tidings.models import WorkerLease
from tidings.runtime import Runtime


def _insert(lease_id: str, hold: threading.Event | None = None) -> Any:
    """A work that stores a lease row (after waiting for `hold`, if given) and returns its id."""

    def work(cursor: Any) -> str:
        if hold is not None:
            hold.wait()
        marker = "?" if type(cursor).__module__.startswith("sqlite3") else "%s"
        now = utcnow().replace(tzinfo=None).isoformat(sep=" ")
        cursor.execute(
            "INSERT INTO worker_lease (id, hostname, pid, started_at, heartbeat_at)"
            f" VALUES ({', '.join([marker] * 5)})",
            (lease_id, "h", 1, now, now),
        )
        return lease_id

    return work


def _stored(runtime: Runtime) -> set[str]:
    with runtime.database.read() as session:
        return {lease.id for lease in session.query(WorkerLease)}


@contextmanager
def _counting_transactions(database: Database) -> Iterator[list[int]]:
    """Counts the transactions `write_driver` opens."""
    opened: list[int] = []
    transaction = database._driver_transaction

    @contextmanager
    def counted() -> Iterator[Any]:
        opened.append(1)
        with transaction() as cursor:
            yield cursor

    target = database._grouped if database._grouped is not None else database
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            target, "_transaction" if target is not database else "_driver_transaction", counted
        )
        yield opened


def _while_one_is_written(database: Database, works: dict[str, Any]) -> dict[str, Any]:
    """Run a first work that holds its transaction open until `works` have all been handed
    over (on SQLite: queued behind it), each from a thread of its own; what each returned or
    raised, by name, "first" included."""
    inside, release = threading.Event(), threading.Event()
    outcomes: dict[str, Any] = {}

    def first(cursor: Any) -> str:
        inside.set()
        return str(_insert("first", release)(cursor))

    def run(name: str, work: Any) -> threading.Thread:
        def target() -> None:
            try:
                outcomes[name] = database.write_driver(work)
            except BaseException as exc:
                outcomes[name] = exc

        thread = threading.Thread(target=target)
        thread.start()
        return thread

    threads = [run("first", first)]
    wait_for(inside.is_set, what="the first transaction to begin")
    threads += [run(name, work) for name, work in works.items()]
    grouped = database._grouped
    if grouped is not None:
        wait_for(lambda: len(grouped._waiting) == len(works), what="the works to queue")
    release.set()
    for thread in threads:
        thread.join()
    return outcomes


def test_works_arriving_during_a_write_share_the_next_transaction(runtime: Runtime) -> None:
    database = runtime.database
    with _counting_transactions(database) as opened:
        outcomes = _while_one_is_written(
            database, {name: _insert(name) for name in ("second", "third")}
        )

    assert outcomes == {"first": "first", "second": "second", "third": "third"}
    assert _stored(runtime) == {"first", "second", "third"}
    # SQLite: the first, then one for the two that queued meanwhile. Elsewhere: one each.
    assert len(opened) == (2 if database.is_sqlite else 3)


def test_a_failing_work_fails_alone(runtime: Runtime) -> None:
    def failing(cursor: Any) -> str:
        _insert("doomed")(cursor)
        raise ValueError("a value that cannot be stored")

    outcomes = _while_one_is_written(
        runtime.database, {"failing": failing, "second": _insert("second")}
    )

    assert outcomes["first"] == "first"
    assert outcomes["second"] == "second"
    assert isinstance(outcomes["failing"], ValueError)
    assert _stored(runtime) == {"first", "second"}
