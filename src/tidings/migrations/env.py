from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

from tidings.config import Settings
from tidings.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    engine = create_engine(Settings().resolved_database_url())
    with engine.connect() as new_connection:
        _run(new_connection)
    engine.dispose()
