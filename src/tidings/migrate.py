"""Apply Alembic migrations from code, serialised across processes."""

from __future__ import annotations

from importlib.resources import files

from alembic import command
from alembic.config import Config
from sqlalchemy import text

from tidings.db import Database

# Any fixed 64-bit number: the advisory lock that serialises migrations on Postgres.
_MIGRATION_LOCK = 7_340_211_991


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(files("tidings") / "migrations"))
    return config


def upgrade(database: Database) -> None:
    """Bring the schema to the newest revision. Safe to call from several processes at once."""
    config = alembic_config()
    with database.write_engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _MIGRATION_LOCK})
            connection.commit()
        try:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
            connection.commit()
        finally:
            if connection.dialect.name == "postgresql":
                connection.execute(
                    text("SELECT pg_advisory_unlock(:key)"), {"key": _MIGRATION_LOCK}
                )
                connection.commit()
