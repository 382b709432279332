"""Column types: what they write is what SQLAlchemy's own dialect types write."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import DateTime
from sqlalchemy.dialects import sqlite

from tidings.models.base import UTCDateTime

MOMENTS = [
    datetime(2026, 12, 7, 1, 2, 3, 4, tzinfo=UTC),
    datetime(2026, 12, 7, 1, 2, 3, tzinfo=timezone(timedelta(0))),  # UTC, not the same object
    datetime(2026, 3, 29, 1, 30, 0, 999_999, tzinfo=timezone(timedelta(hours=-5))),
    datetime(2026, 3, 29, 23, 59, 59, tzinfo=timezone(timedelta(hours=13, minutes=45))),
    datetime(1, 1, 1, tzinfo=UTC),
    datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
    datetime(2026, 12, 7, 1, 2, 3, 4),  # naive: taken as UTC
]


@pytest.mark.parametrize("moment", MOMENTS, ids=str)
def test_sqlite_stores_utc_datetimes_as_sqlalchemy_formats_them(moment: datetime) -> None:
    dialect = sqlite.dialect()
    ours = UTCDateTime().dialect_impl(dialect).bind_processor(dialect)
    theirs = DateTime().dialect_impl(dialect).bind_processor(dialect)
    assert ours is not None
    assert theirs is not None
    utc = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    assert ours(moment) == theirs(utc.replace(tzinfo=None))
    assert ours(None) is None
