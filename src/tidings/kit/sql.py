"""SQL helpers: those that differ by dialect, and the ORM's costly steps done by statement."""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, NamedTuple, Protocol, TypeVar, cast

from sqlalchemy import (
    ColumnElement,
    Connection,
    CursorResult,
    Executable,
    Select,
    Table,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy import inspect as inspect_mapped
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import QueryableAttribute, Session, make_transient_to_detached
from sqlalchemy.types import TypeEngine

Row = TypeVar("Row")
Query = TypeVar("Query", bound=Select[*tuple[Any, ...]])


def _dialect_insert(bind: Session | Connection, target: Any) -> Any:
    """An INSERT of the dialect of the session or connection, which can take ON CONFLICT.
    Each dialect is imported here when first used, so that a process on SQLite never loads
    the Postgres one."""
    dialect = bind.dialect if isinstance(bind, Connection) else bind.get_bind().dialect
    if dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as postgresql_insert

        return postgresql_insert(target)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(target)


def insert_ignoring_conflicts(bind: Session | Connection, target: Any) -> Any:
    """An `INSERT … ON CONFLICT DO NOTHING` for the dialect of the session or connection."""
    return _dialect_insert(bind, target).on_conflict_do_nothing()


def insert_replacing(
    bind: Session | Connection, target: Any, conflict: Sequence[str], columns: Sequence[str]
) -> Any:
    """An `INSERT … ON CONFLICT (conflict) DO UPDATE SET column = excluded.column` for the
    dialect of the session or connection."""
    statement = _dialect_insert(bind, target)
    return statement.on_conflict_do_update(
        index_elements=list(conflict),
        set_={column: statement.excluded[column] for column in columns},
    )


def execute_counting(session: Session, statement: Executable) -> int:
    """Execute an INSERT, UPDATE or DELETE and return how many rows it touched."""
    # Through the connection, not the ORM: an ORM-enabled INSERT adds RETURNING on Postgres,
    # after which the driver reports rowcount -1.
    result = cast(CursorResult[Any], session.connection().execute(statement))
    return result.rowcount


def insert_loaded(session: Session, row: Any) -> None:
    """Insert a new ORM row (single-column key) with one `INSERT … RETURNING` on the
    session's connection, and attach it to the session as if loaded: later changes to it
    are UPDATEs at the next flush.

    A row's key is often needed at once (other rows point at it), and a flush to get it also
    writes everything else pending in the unit of work. An attribute left unset takes its
    column's default (None without one): a constant, or a new value from a Python callable
    (`default=list`), set on the row too so that nothing is left to load; a column with a
    server default is left to the INSERT, and its attribute is loaded when first read. The
    statement, built once per table and set of columns, runs on the driver's cursor
    (`DriverStatement`): an automation run is inserted this way for each event that starts
    one."""
    state = inspect_mapped(row)
    plan = _insert_plan(state.mapper)
    # Into the row's dict, past the attribute events: the row is about to be marked loaded
    # as it stands (make_transient_to_detached).
    loaded = state.dict
    values = {}
    for column in plan.columns:
        if column.attribute not in loaded:
            if column.in_sql:
                continue
            loaded[column.attribute] = column.default() if column.made else column.default
        values[column.name] = loaded[column.attribute]
    statement = _insert_returning_key(state.mapper.local_table, tuple(values))
    connection = session.connection()
    cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        ((new_key,),) = statement.rows(cursor, connection.dialect, **values)
    finally:
        cursor.close()
    setattr(row, plan.key, new_key)
    make_transient_to_detached(row)
    session.add(row)


class _PlannedColumn(NamedTuple):
    attribute: str
    name: str
    # A server default: the column is left to the INSERT.
    in_sql: bool
    # Otherwise its default: the constant, or (`made`) what makes a new value each time.
    default: Any
    made: bool


@dataclass(frozen=True)
class _InsertPlan:
    """What `insert_loaded` needs of a mapper, read once: the key's attribute, and the other
    columns with their defaults."""

    key: str
    columns: tuple[_PlannedColumn, ...]


@functools.cache
def _insert_plan(mapper: Any) -> _InsertPlan:
    columns = []
    for attribute in mapper.column_attrs:
        column = attribute.columns[0]
        if column.primary_key:
            continue
        default = column.default
        in_sql = column.server_default is not None or (
            default is not None and default.is_clause_element
        )
        made = default is not None and not in_sql and default.is_callable
        # SQLAlchemy wraps a callable default to take the execution context, which a
        # model's `default=list` or `default=dict` ignores.
        value = (
            functools.partial(default.arg, None)
            if made
            else (default.arg if default is not None and not in_sql else None)
        )
        columns.append(_PlannedColumn(attribute.key, column.key, in_sql, value, made))
    (key_column,) = mapper.primary_key
    return _InsertPlan(mapper.get_property_by_column(key_column).key, tuple(columns))


@functools.cache
def _insert_returning_key(table: Table, columns: tuple[str, ...]) -> DriverStatement:
    """Built once per table and set of columns."""
    (key,) = table.primary_key.columns
    return DriverStatement(insert(table).returning(key), columns)


# Rows of one multi-row INSERT, and values of one IN (…) list.
CHUNK = 500


def chunks(values: Sequence[Row], size: int = CHUNK) -> Iterator[Sequence[Row]]:
    """`values` in consecutive slices of at most `size`, for statements of bounded size."""
    for start in range(0, len(values), size):
        yield values[start : start + size]


def by_environment(claimed: list[tuple[int, str]]) -> dict[str, list[int]]:
    """`claim_rows`' answer as the claimed keys of each environment, in key order."""
    grouped: dict[str, list[int]] = {}
    for key, environment_id in claimed:
        grouped.setdefault(environment_id, []).append(key)
    return grouped


def claim_rows(
    session: Session,
    key: Any,
    claimed_at: Any,
    condition: Any,
    *,
    environment: Any,
    now: datetime,
    unclaimed_since: datetime,
    limit: int,
) -> list[tuple[int, str]]:
    """Claim up to `limit` rows matching `condition`, lowest key first: set `claimed_at` to
    `now` on those not claimed since `unclaimed_since`, and return their keys, each with its
    `environment` (so that re-driven work is queued at its environment's fair share).

    One statement, `UPDATE … WHERE key IN (SELECT key … LIMIT n FOR UPDATE SKIP LOCKED)
    RETURNING key`: on Postgres, rows another transaction holds are skipped and two claimers
    never take the same row; SQLite runs one writer at a time, so the second sees the first's
    claims.
    """
    table = key.class_
    candidates = (
        select(key)
        .where(condition, or_(claimed_at.is_(None), claimed_at < unclaimed_since))
        .order_by(key)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    statement = (
        update(table)
        .where(key.in_(candidates.scalar_subquery()))
        .values({claimed_at.key: now})
        .returning(key, environment)
        .execution_options(synchronize_session=False)
    )
    return sorted((row[0], row[1]) for row in session.execute(statement))


class Repository:
    """The base of each domain's repository: its queries run on the caller's session, and the
    caller owns the transaction."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def find_row(self, model: type[Row], **columns: Any) -> Row | None:
        """The `model` row whose columns equal `columns`, or None."""
        return self.session.scalars(select(model).filter_by(**columns)).first()

    def find_rows(
        self, model: type[Row], *conditions: Any, order_by: Sequence[Any] = (), **columns: Any
    ) -> Sequence[Row]:
        """The `model` rows whose columns equal `columns` and that match `conditions`, in
        `order_by` order."""
        statement = select(model).filter_by(**columns).where(*conditions).order_by(*order_by)
        return self.session.scalars(statement).all()

    def delete_rows(self, model: type[Row], **columns: Any) -> int:
        """Delete the `model` rows whose columns equal `columns`; how many there were."""
        return execute_counting(self.session, delete(model).filter_by(**columns))

    def count_rows(self, model: Any, *conditions: Any) -> int:
        """How many `model` rows match `conditions`."""
        count = self.session.scalar(select(func.count()).select_from(model).where(*conditions))
        return int(count or 0)

    def compare_and_set(
        self, model: Any, row_pk: int, expected: dict[str, Any], values: dict[str, Any]
    ) -> bool:
        """Set the `model` row's `values` if it still has the `expected` ones (None: NULL):
        True when it had them (the row is then locked until the commit); False when another
        transaction moved it first."""
        conditions = [model.id == row_pk]
        for name, value in expected.items():
            column = getattr(model, name)
            conditions.append(column.is_(None) if value is None else column == value)
        statement = update(model).where(*conditions).values(**values)
        return execute_counting(self.session, statement) == 1

    def lock_row(self, model: type[Row], **columns: Any) -> Row | None:
        """`find_row`, the row locked until the transaction ends and read afresh."""
        return self.session.scalars(
            select(model)
            .filter_by(**columns)
            .with_for_update()
            .execution_options(populate_existing=True)
        ).first()

    def environment_page(
        self,
        model: type[Row],
        environment_id: str,
        after_id: int | None,
        limit: int,
        *conditions: Any,
    ) -> Sequence[Row]:
        """One `keyset_page` of the environment's `model` rows that match `conditions`."""
        table: Any = model
        query = select(model).where(table.environment_id == environment_id, *conditions)
        return self.session.scalars(keyset_page(query, table.id, after_id, limit)).all()

    def distinct_user_ids_after(
        self, model: Any, environment_id: str, after: str, limit: int
    ) -> list[str]:
        """The next `limit` distinct `user_id`s of the environment's `model` rows (a
        membership table) after `after`, in id order."""
        return list(
            self.session.scalars(
                select(model.user_id)
                .where(model.environment_id == environment_id, model.user_id > after)
                .group_by(model.user_id)
                .order_by(model.user_id)
                .limit(limit)
            )
        )

    def values_by_user(
        self, column: Any, environment_id: str, user_ids: Collection[str]
    ) -> dict[str, set[Any]]:
        """The values of `column` in the environment's rows of each of `user_ids` (a
        membership table's: the lists or tenants each user is in); users with none are
        left out."""
        model = column.class_
        found: dict[str, set[Any]] = {}
        rows = self.session.execute(
            select(model.user_id, column).where(
                model.environment_id == environment_id, model.user_id.in_(sorted(user_ids))
            )
        )
        for user_id, value in rows:
            found.setdefault(user_id, set()).add(value)
        return found


@dataclass(frozen=True, slots=True)
class VersionTable(Generic[Row]):
    """A table of saved versions (automation_version, notification_version): rows of
    `model` numbered by their `version` within the row that `owner` (a column) names."""

    model: type[Row]
    owner: Any

    def after(
        self, session: Session, owner_pk: int, after_version: int | None, limit: int
    ) -> Sequence[Row]:
        """The owner's versions oldest first, after `after_version` when given."""
        version = self.owner.class_.version
        bound = None if after_version is None else version > after_version
        return self._read(session, owner_pk, bound, version, limit)

    def before(
        self, session: Session, owner_pk: int, before_version: int | None, limit: int
    ) -> Sequence[Row]:
        """The owner's versions newest first, before `before_version` when given."""
        version = self.owner.class_.version
        bound = None if before_version is None else version < before_version
        return self._read(session, owner_pk, bound, version.desc(), limit)

    def _read(
        self, session: Session, owner_pk: int, bound: Any, order: Any, limit: int
    ) -> Sequence[Row]:
        query = select(self.model).where(self.owner == owner_pk)
        if bound is not None:
            query = query.where(bound)
        return session.scalars(query.order_by(order).limit(limit)).all()


# The row that owns the versions: an ORM row, keyed by its `id`.
Owner = TypeVar("Owner")


class VersionedRepository(Repository, Generic[Owner, Row]):
    """The repository of rows that keep their saved versions in `versions`: one version by
    its number, and the versions a page at a time."""

    versions: VersionTable[Row]

    def version(self, owner: Owner, number: int) -> Row | None:
        version = self.versions.owner.class_.version
        return self.session.scalars(
            select(self.versions.model).where(self.versions.owner == _id(owner), version == number)
        ).first()

    def version_page(self, owner: Owner, after_version: int | None, limit: int) -> Sequence[Row]:
        return self.versions.after(self.session, _id(owner), after_version, limit)

    def versions_before(
        self, owner: Owner, before_version: int | None, limit: int
    ) -> Sequence[Row]:
        return self.versions.before(self.session, _id(owner), before_version, limit)


def _id(row: Any) -> int:
    # A Protocol cannot name an ORM row's `id`: its class declares it Mapped[int].
    key: int = row.id
    return key


def insert_missing_and_lock(
    session: Session, model: type[Row], key: dict[str, Any], **values: Any
) -> tuple[Row, bool]:
    """The `model` row whose columns equal `key`, locked for this transaction and read
    afresh; inserted first, with `values` for its other columns, when missing. True when
    this call inserted it."""
    # A row comes back only when one was inserted (the rowcount of an ORM-enabled INSERT is
    # -1 on Postgres, so it cannot tell).
    (primary_key,) = inspect_mapped(model).primary_key
    inserted = (
        session.connection()
        .execute(
            insert_ignoring_conflicts(session, model).values(**key, **values).returning(primary_key)
        )
        .first()
        is not None
    )
    row = session.scalars(
        select(model).filter_by(**key).with_for_update().execution_options(populate_existing=True)
    ).one()
    return row, inserted


class InEnvironment(Protocol):
    """Whose rows they are: a workspace and one of its environments (a workspace Scope)."""

    @property
    def workspace_id(self) -> str: ...

    @property
    def environment_id(self) -> str: ...


def insert_missing_in_environment(
    session: Session,
    scope: InEnvironment,
    model: type[Row],
    key: tuple[str, str],
    now: datetime,
    **values: Any,
) -> tuple[Row, bool]:
    """`insert_missing_and_lock` for a row of `scope`'s environment named by one id column
    (`key`: its name and value). A new row belongs to the scope's workspace, is created and
    updated `now`, and takes `values` for its other columns."""
    name, value = key
    return insert_missing_and_lock(
        session,
        model,
        {"environment_id": scope.environment_id, name: value},
        workspace_id=scope.workspace_id,
        created_at=now,
        updated_at=now,
        **values,
    )


def starts_or_contains(key: Any, content: Any, query: str) -> ColumnElement[bool]:
    """The condition of a search box: `key` starts with `query`, or `content` contains it
    ignoring case; LIKE's wildcards in `query` match themselves."""
    escaped = query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return or_(
        key.like(f"{escaped}%", escape="\\"),
        func.lower(content).like(f"%{escaped.lower()}%", escape="\\"),
    )


def keyset_page(
    query: Query, key: QueryableAttribute[int], after_id: int | None, limit: int
) -> Query:
    """`query` cut to one page: at most `limit` rows in `key` order, after `after_id` (the
    key of the previous page's last row) when given."""
    if after_id is not None:
        query = query.where(key > after_id)
    return query.order_by(key).limit(limit)


class DriverStatement:
    """Fixed SQL, compiled once per dialect and run on the driver's own cursor.

    For hot paths (recording a send, inserting a run), where SQLAlchemy's per-execution work
    (building the statement, its cache key, the execution context, result handling) cost
    several times more than SQLite spends on the SQL. Values still go through the column
    types' bind processors, so they are stored exactly as the ORM stores them.
    """

    def __init__(self, clause: Any, columns: Sequence[str] | None = None) -> None:
        """`clause` compiled as it is, or, given `columns` (an INSERT's or UPDATE's), with
        bind parameters for those columns only."""
        self.clause = clause
        self._columns = None if columns is None else list(columns)
        self._compiled: dict[str, tuple[str, Callable[[dict[str, Any]], Any]]] = {}

    @classmethod
    def text(cls, sql: str, **types: TypeEngine[Any]) -> DriverStatement:
        """SQL text whose bind parameters have these types."""
        return cls(text(sql).bindparams(*(bindparam(name, type_=t) for name, t in types.items())))

    def execute(self, cursor: Any, dialect: Dialect, **values: Any) -> int:
        """Run with `values`; returns the driver's row count."""
        compiled = self._compiled.get(dialect.name)
        if compiled is None:
            compiled = self._compiled[dialect.name] = self._compile(dialect)
        sql, parameters = compiled
        cursor.execute(sql, parameters(values))
        count: int = cursor.rowcount
        return count

    def rows(self, cursor: Any, dialect: Dialect, **values: Any) -> list[Any]:
        """Run with `values` (a statement with RETURNING); returns the rows."""
        self.execute(cursor, dialect, **values)
        return list(cursor.fetchall())

    def _compile(self, dialect: Dialect) -> tuple[str, Callable[[dict[str, Any]], Any]]:
        compiled = self.clause.compile(dialect=dialect, column_keys=self._columns)
        processors = {
            name: bind.type.dialect_impl(dialect).bind_processor(dialect)
            for name, bind in compiled.binds.items()
        }

        def convert(name: str, value: Any) -> Any:
            processor = processors.get(name)
            return value if processor is None or value is None else processor(value)

        if compiled.positional:
            order = tuple(compiled.positiontup or ())
            return compiled.string, lambda values: tuple(
                convert(name, values[name]) for name in order
            )
        return compiled.string, lambda values: {
            name: convert(name, value) for name, value in values.items()
        }
