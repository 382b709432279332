"""Declarative base, naming convention and column types shared by every table."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    TypeDecorator,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

if TYPE_CHECKING:
    from sqlalchemy.types import TypeEngine

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class JSONDocument(TypeDecorator[Any]):
    """JSONB on Postgres, JSON text elsewhere: `JSON().with_variant(JSONB(), "postgresql")`,
    with the Postgres type made only when a Postgres dialect asks for it, so that a process
    on SQLite never imports the Postgres dialect."""

    impl = JSON()
    cache_ok = True
    # JSON's, which a TypeDecorator does not take from its impl: Python's None is stored as
    # JSON null, and values are not hashed.
    should_evaluate_none = True
    hashable = False

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import JSONB

            return dialect.type_descriptor(JSONB())
        return dialect.type_descriptor(self.impl_instance)

    def coerce_compared_value(self, op: Any, value: Any) -> TypeEngine[Any]:
        """JSON's choice (a string compared with a JSON element binds as a string), where a
        TypeDecorator's default would bind every compared value as JSON."""
        coerced = self.impl_instance.coerce_compared_value(op, value)
        return self if coerced is self.impl_instance else coerced


JSONValue = JSONDocument()

# A 64-bit autoincrementing key on Postgres; SQLite only autoincrements INTEGER PRIMARY KEY.
BigIntegerKey = BigInteger().with_variant(Integer(), "sqlite")


# `YYYY-MM-DD HH:MM:SS.ffffff`: an aware datetime's isoformat without its `+00:00`.
_SQLITE_DATETIME_LENGTH = 26


class UTCDateTime(TypeDecorator[datetime]):
    """Stores UTC; always returns timezone-aware UTC datetimes, on SQLite too."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def bind_processor(self, dialect: Dialect) -> Any:
        """On SQLite, one step from a datetime to the text SQLAlchemy's SQLite `DateTime`
        stores (`YYYY-MM-DD HH:MM:SS.ffffff`, naive UTC): `datetime.isoformat` writes that
        same text in C, where the default is two Python steps per value (the conversion
        above, then the dialect's formatting). `process_bind_param` still serves literal
        rendering and the other dialects."""
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)

        def process(value: datetime | None) -> str | None:
            if value is None:
                return None
            if value.tzinfo is None:
                return value.isoformat(" ", "microseconds")
            if value.tzinfo is not UTC:
                value = value.astimezone(UTC)
            return value.isoformat(" ", "microseconds")[:_SQLITE_DATETIME_LENGTH]

        return process

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


# Columns with a lower sort order come first in their table; the default is 0.
FIRST = -1


class KeyedRow:
    """The column that begins a table whose rows have a number of their own: `id`, a 64-bit
    autoincrementing key. `sort_order` keeps it first in the table, before the other
    columns kept first (`EnvironmentRow`'s), where the migrations created it."""

    id: Mapped[int] = mapped_column(
        BigIntegerKey, primary_key=True, autoincrement=True, sort_order=FIRST - 1
    )


class EnvironmentRow(KeyedRow):
    """The columns that begin each table of an environment's data: the row's own key, and
    the workspace and environment it belongs to (deleting either deletes the row).
    `sort_order` keeps them first in the table, where the migrations created them."""

    workspace_id: Mapped[str] = mapped_column(
        ForeignKey("workspace.id", ondelete="CASCADE"), sort_order=FIRST
    )
    environment_id: Mapped[str] = mapped_column(
        ForeignKey("environment.id", ondelete="CASCADE"), sort_order=FIRST
    )


def partial_index(name: str, *columns: str, where: str, unique: bool = False) -> Index:
    """An index of only the rows that meet `where`, on Postgres and SQLite alike."""
    return Index(
        name, *columns, unique=unique, postgresql_where=text(where), sqlite_where=text(where)
    )
