"""What SQLite alone spends on an ingested event: the floor's row against the event table's.

`storage.py` times the ingest writer's whole write of a batch. This times only the
statement, with plain sqlite3 on a fresh SQLite data dir (WAL, synchronous FULL as Tidings
sets it, foreign keys on, the writer's page cache), 100 rows a statement, each into a fresh
table, in rounds that alternate:

- **floor**: the batch floor's own table and multi-row INSERT (`floor_app`: id, unique
  messageId, type, user, the event as JSON);
- **unique only**: a copy of Tidings' event table with its primary key and unique
  constraint and none of its indexes, the ingest writer's own statement
  (`EventRepository.insert_new` on SQLite: the key check, ON CONFLICT DO NOTHING);
- **+ix_...**: the same with one of the event table's indexes;
- **all**: the same with all of them, as Tidings stores events.

The rows are the writer's (`NewEvent`s of a Segment track, converted as it converts them),
built before the clock starts. It prints the CPU microseconds per event of each.

    .venv/bin/python bench/batch/tables.py [--batches 200] [--rounds 3]
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy.dialects import sqlite as sqlite_dialect

from tidings.eventstore import repository
from tidings.eventstore.repository import NewEvent
from tidings.kit.time import utcnow
from tidings.workspace.service import Scope

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import floor_app

from common import in_process, open_sqlite

ROWS = 100
PAYLOAD: dict[str, Any] = {
    "type": "track",
    "event": "Order Shipped",
    "userId": "u1",
    "properties": {"order": 123, "total": 42.5, "items": ["a", "b"]},
    "context": {"library": {"name": "analytics-python", "version": "2.3"}},
    "timestamp": "2026-12-07T10:00:00.000Z",
}


class Tables:
    """Fresh tables in one database, each filled with `batches` statements and dropped."""

    def __init__(self, connection: sqlite3.Connection, scope: Scope, batches: int) -> None:
        self.connection = connection
        self.scope = scope
        self.batches = batches
        self.made = 0
        self.event_table = self._sql("SELECT sql FROM sqlite_master WHERE name = 'event'")
        self.indexes = {
            name: sql
            for name, sql in connection.execute(
                "SELECT name, sql FROM sqlite_master "
                "WHERE type = 'index' AND tbl_name = 'event' AND sql IS NOT NULL"
            )
        }

    def _sql(self, query: str) -> str:
        return str(self.connection.execute(query).fetchone()[0])

    def _fresh(self, prefix: str) -> str:
        self.made += 1
        return f"{prefix}{self.made}"

    def _timed(self, table: str, statement: str, batches: list[list[Any]]) -> float:
        started = time.process_time()
        for values in batches:
            self.connection.execute(statement, values)
        spent = time.process_time() - started
        self.connection.execute(f"DROP TABLE {table}")
        return spent * 1e6 / (len(batches) * ROWS)

    def floor(self) -> float:
        """The floor's own table and statement (`floor_app`), its values as it makes them."""
        table = self._fresh("floor_")
        self.connection.execute(
            floor_app.TABLE.replace("TABLE IF NOT EXISTS event", f"TABLE {table}", 1)
        )
        batches = []
        for _ in range(self.batches):
            values: list[Any] = []
            for n in range(ROWS):
                event = {**PAYLOAD, "messageId": uuid.uuid4().hex, "userId": f"u{n}"}
                values += [event["messageId"], event["type"], event["userId"], orjson.dumps(event)]
            batches.append(values)
        statement = floor_app.insert(ROWS).replace("INSERT INTO event ", f"INSERT INTO {table} ", 1)
        return self._timed(table, statement, batches)

    def events(self, indexes: list[str]) -> float:
        table = self._fresh("event_")
        self.connection.execute(self.event_table.replace("TABLE event", f"TABLE {table}", 1))
        for name in indexes:
            sql = self.indexes[name].replace(f"{name} ON event", f"{name}_{table} ON {table}", 1)
            self.connection.execute(sql)
        dialect = sqlite_dialect.dialect()
        batches = []
        for _ in range(self.batches):
            filled, values = repository._sqlite_values(dialect, self._rows(), utcnow())
            batches.append(filled + values)
        statement = repository._sqlite_insert(ROWS).replace(
            "INSERT INTO event ", f"INSERT INTO {table} ", 1
        )
        return self._timed(table, statement, batches)

    def _rows(self) -> list[NewEvent]:
        scope = self.scope
        return [
            NewEvent(
                workspace_id=scope.workspace_id,
                environment_id=scope.environment_id,
                source="segment",
                message_id=uuid.uuid4().hex,
                type="track",
                name="track/Order Shipped",
                user_id=f"u{n}",
                anonymous_id=None,
                payload=PAYLOAD,
                timestamp=utcnow(),
                key_id=scope.key_id,
            )
            for n in range(ROWS)
        ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=200, help="statements a table, a round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tidings-bench-tables-") as data_dir:
        with in_process(Path(data_dir)) as tidings:
            scope = tidings.scope
            synchronous = tidings.runtime.settings.sqlite_synchronous.upper()
        connection = open_sqlite(Path(data_dir) / "tidings.db", synchronous)
        connection.execute("PRAGMA foreign_keys=ON")
        connection.execute("PRAGMA cache_size=-16384")
        tables = Tables(connection, scope, args.batches)
        parts: list[tuple[str, Callable[[], float]]] = [
            ("floor", tables.floor),
            ("unique only", lambda: tables.events([])),
        ]
        parts += [(f"+{name}", lambda name=name: tables.events([name])) for name in tables.indexes]
        parts.append(("all", lambda: tables.events(list(tables.indexes))))
        spent: dict[str, list[float]] = {name: [] for name, _ in parts}
        for number in range(args.rounds):
            for name, part in parts:
                spent[name].append(part())
            print(
                f"  round {number + 1}: " + ", ".join(f"{n} {v[-1]:.1f}" for n, v in spent.items())
            )
        connection.close()
    print("CPU us per event in SQLite (median):")
    for name, values in spent.items():
        print(f"  {name:<20} {statistics.median(values):6.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
