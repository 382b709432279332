"""The migrations make the schema and the models describe it: after the migrations, Alembic
finds nothing to change, and the partial indexes carry the models' conditions, on SQLite and,
with TIDINGS_TEST_DATABASE_URL, on Postgres."""

from __future__ import annotations

import pkgutil
import re
import subprocess
import sys

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from tidings import models
from tidings.models import Base
from tidings.runtime import Runtime


def test_the_models_match_the_migrated_schema(runtime: Runtime) -> None:
    with runtime.database.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def _predicate(sql: str) -> str:
    """An index predicate without the casts and parentheses Postgres adds when it stores one."""
    return re.sub(r"::\w+|[()]", "", sql)


def test_the_partial_indexes_are_the_migrated_ones(runtime: Runtime) -> None:
    # Alembic's comparison above leaves index predicates out.
    dialect = runtime.database.engine.dialect.name
    inspector = inspect(runtime.database.engine)
    partial = set()
    for table in Base.metadata.sorted_tables:
        reflected = {index["name"]: index for index in inspector.get_indexes(table.name)}
        for index in table.indexes:
            assert index.name is not None
            where = index.dialect_options[dialect]["where"]
            stored = reflected[index.name]["dialect_options"].get(f"{dialect}_where")
            assert (where is None) == (stored is None), index.name
            if where is not None:
                partial.add(index.name)
                assert _predicate(str(stored)) == _predicate(str(where)), index.name
    assert partial == {
        "ix_event_user",
        "ix_event_pending",
        "ix_inbox_message_unread",
        "uq_automation_batch_open",
        "ix_audience_member_current",
        "ix_audience_member_page",
    }


def test_the_models_package_offers_each_name_its_modules_define() -> None:
    # The package imports a name's module when the name is first asked for.
    for name in models.__all__:
        assert getattr(models, name).__name__ == name


# Resolves every foreign key of the loaded tables, as a flush does.
_RESOLVE_FOREIGN_KEYS = """
import importlib, sys
importlib.import_module(sys.argv[1])
from tidings.models.base import Base
for table in Base.metadata.tables.values():
    for key in table.foreign_keys:
        key.column
"""


@pytest.mark.parametrize(
    "module", [module.name for module in pkgutil.iter_modules(models.__path__)]
)
def test_a_model_module_loads_the_tables_its_foreign_keys_name(module: str) -> None:
    # In a fresh interpreter: a process loads only the model modules it uses.
    subprocess.run(
        [sys.executable, "-c", _RESOLVE_FOREIGN_KEYS, f"tidings.models.{module}"],
        check=True,
        capture_output=True,
        timeout=60,
    )
