"""SQL helpers that differ by dialect."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import CursorResult, Executable
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def insert_ignoring_conflicts(session: Session, target: Any) -> Any:
    """An `INSERT … ON CONFLICT DO NOTHING` for the session's dialect."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(target).on_conflict_do_nothing()
    return sqlite.insert(target).on_conflict_do_nothing()


def execute_counting(session: Session, statement: Executable) -> int:
    """Execute an INSERT, UPDATE or DELETE and return how many rows it touched."""
    # Through the connection, not the ORM: an ORM-enabled INSERT adds RETURNING on Postgres,
    # after which the driver reports rowcount -1.
    result = cast(CursorResult[Any], session.connection().execute(statement))
    return result.rowcount
