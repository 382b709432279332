"""The SQL a block of code runs, and SQLite's plan for a statement: for tests that a query
searches an index rather than scanning its table."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event

from tidings.runtime import Runtime


@contextmanager
def captured(runtime: Runtime, containing: str) -> Iterator[list[tuple[str, Any]]]:
    """The statements (SQL, parameters) run on the runtime's engine inside the block whose
    SQL contains `containing`."""
    statements: list[tuple[str, Any]] = []

    def keep(_c: Any, _cursor: Any, sql: str, parameters: Any, *_: Any) -> None:
        if containing in sql:
            statements.append((sql, parameters))

    engine = runtime.database.engine
    event.listen(engine, "before_cursor_execute", keep)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", keep)


def plan(runtime: Runtime, sql: str, parameters: Any) -> str:
    """SQLite's query plan for the statement, its steps joined by " | "."""
    with runtime.database.engine.connect() as connection:
        rows = connection.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, parameters)
        return " | ".join(str(row[-1]) for row in rows)
