"""Column types: what they write is what SQLAlchemy's own dialect types write."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import JSON, Column, DateTime, Executable, Integer, MetaData, Table, null, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeEngine

from tidings.models.base import JSONValue, UTCDateTime

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


def _json_statements(column_type: TypeEngine[object]) -> list[Executable]:
    table = Table(
        "t", MetaData(), Column("id", Integer, primary_key=True), Column("data", column_type)
    )
    data = table.c.data
    return [
        table.insert().values(data={"a": [1, 2]}),
        table.insert().values(data=None),
        table.insert().values(data=null()),
        table.insert().values(data=JSON.NULL),
        table.update().values(data="text"),
        select(data["provider"].as_string()).where(data["n"].as_integer() > 3),
        select(data["a"]["b"], data[("a", 1)]),
        select(data).where(data["k"] == "v", data == {"a": 1}, data.is_(None)),
    ]


def _compiled(statement: Executable, dialect: Dialect) -> tuple[str, str]:
    """The SQL, and the parameters as the driver receives them."""
    compiled = statement.compile(dialect=dialect)
    parameters = {}
    for name, value in compiled.construct_params().items():
        processor = compiled.binds[name].type._cached_bind_processor(dialect)
        parameters[name] = processor(value) if processor else value
    return str(compiled), repr(parameters)


@pytest.mark.parametrize(
    "dialect", [sqlite.dialect(), postgresql.psycopg.dialect()], ids=lambda d: d.name
)
def test_json_values_are_sqlalchemys_json_with_a_jsonb_variant(dialect: Dialect) -> None:
    variant = JSON().with_variant(postgresql.JSONB(), "postgresql")
    ours, theirs = _json_statements(JSONValue), _json_statements(variant)
    assert [_compiled(s, dialect) for s in ours] == [_compiled(s, dialect) for s in theirs]
    compiler = dialect.type_compiler_instance
    assert compiler.process(JSONValue) == compiler.process(variant)
    for flag in ("should_evaluate_none", "hashable", "_type_affinity"):
        assert getattr(JSONValue, flag) == getattr(variant, flag)
    document = '{"a": [1, null]}'
    ours_result = JSONValue.dialect_impl(dialect).result_processor(dialect, None)
    theirs_result = variant.dialect_impl(dialect).result_processor(dialect, None)
    assert (ours_result and ours_result(document)) == (theirs_result and theirs_result(document))
