"""Apply Alembic migrations from code, serialised across processes.

A database already at the newest revision is told apart without Alembic: its stored revision
is compared with the head read from the revision files' text. Loading Alembic, and through it
every revision module, costs a short command such as `tidings keys list` most of its time.
"""

from __future__ import annotations

import re
from importlib.resources import files
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from tidings.db import Database

if TYPE_CHECKING:
    from alembic.config import Config

# Any fixed 64-bit number: the advisory lock that serialises migrations on Postgres.
_MIGRATION_LOCK = 7_340_211_991

# The module-level `revision` and `down_revision` lines the revision template writes. A value
# of another form (a merge's tuple) is not read, and Alembic then decides.
_REVISION_LINE = re.compile(
    r"^(revision|down_revision)\b[^=\n]*=[ \t]*(?:None|[\"']([0-9A-Za-z_]+)[\"'])[ \t]*$",
    re.MULTILINE,
)


def alembic_config() -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(files("tidings") / "migrations"))
    return config


def head_revision() -> str | None:
    """The newest revision, read from the files in migrations/versions without importing
    them; None unless every file names its revision and they form one line."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (files("tidings") / "migrations" / "versions").iterdir():
        if not path.name.endswith(".py") or path.name.startswith(("_", ".")):
            continue
        values = {match[1]: match[2] for match in _REVISION_LINE.finditer(path.read_text())}
        if not values.get("revision") or "down_revision" not in values:
            return None
        revisions.add(values["revision"])
        if values["down_revision"]:
            parents.add(values["down_revision"])
    heads = revisions - parents
    if len(heads) != 1 or not parents <= revisions:
        return None
    return heads.pop()


def _stored_revisions(database: Database) -> set[str] | None:
    """The revisions the database records; None when it has no record yet."""
    try:
        with database.engine.connect() as connection:
            return set(connection.scalars(text("SELECT version_num FROM alembic_version")))
    except DBAPIError:
        return None


def upgrade(database: Database) -> None:
    """Bring the schema to the newest revision. Safe to call from several processes at once."""
    head = head_revision()
    if head is not None and _stored_revisions(database) == {head}:
        return
    _alembic_upgrade(database)


def _alembic_upgrade(database: Database) -> None:
    from alembic import command

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
